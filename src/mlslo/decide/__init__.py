"""Stage 5, decide: the deployment gate (:func:`.gate.gate`, the one composition every caller
uses) and the alert checks and state machine. Pure functions of evaluations and state."""
