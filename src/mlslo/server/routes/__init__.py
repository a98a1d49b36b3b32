"""The API's routes, one router per concern; each route parses, checks the scope and calls
the service.

Their modules do without ``from __future__ import annotations``: FastAPI reads the scope
dependencies in the annotations at run time, and those are local to each router.
"""
