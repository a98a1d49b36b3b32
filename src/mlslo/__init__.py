"""mlslo: SRE error budgets for ML systems."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlslo.version import __version__

__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from mlslo.client import Client


def __getattr__(name: str) -> Any:
    if name == "Client":
        from mlslo.client import Client

        return Client
    raise AttributeError(f"module 'mlslo' has no attribute {name!r}")
