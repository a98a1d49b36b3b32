"""Burn-rate alerting: rules, a pure state machine, notifiers and Prometheus rules."""
