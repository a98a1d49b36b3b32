"""The mlslo service: ingestion, status, the gate, alerts, /metrics and the dashboard."""

from mlslo.server.app import create_app
from mlslo.server.service import Service

__all__ = ["Service", "create_app"]
