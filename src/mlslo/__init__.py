"""mlslo: SRE error budgets for ML systems.

``import mlslo`` stays cheap: each public name is imported on first use.

    spec = mlslo.load_spec("spec.yaml")
    result = mlslo.evaluate(spec, predictions=df, labels=labels_df, at="2026-03-01T00:00Z")
    decision = mlslo.gate(spec, result, policy="release")
"""

import importlib as _importlib
import typing as _typing

from mlslo.version import __version__

__all__ = [
    "Client",
    "DataError",
    "EvaluationResult",
    "GateResult",
    "MlsloError",
    "NotFoundError",
    "Reason",
    "SLOResult",
    "Spec",
    "SpecError",
    "UsageError",
    "__version__",
    "evaluate",
    "gate",
    "load_spec",
]

if _typing.TYPE_CHECKING:
    from mlslo.api.public import evaluate, gate, load_spec
    from mlslo.api.results import EvaluationResult, GateResult, SLOResult
    from mlslo.client import Client
    from mlslo.decide.policy import Reason
    from mlslo.errors import DataError, MlsloError, NotFoundError, SpecError, UsageError
    from mlslo.spec import Spec

_HOMES = {
    "Client": "mlslo.client",
    "DataError": "mlslo.errors",
    "EvaluationResult": "mlslo.api.results",
    "GateResult": "mlslo.api.results",
    "MlsloError": "mlslo.errors",
    "NotFoundError": "mlslo.errors",
    "Reason": "mlslo.decide.policy",
    "SLOResult": "mlslo.api.results",
    "Spec": "mlslo.spec",
    "SpecError": "mlslo.errors",
    "UsageError": "mlslo.errors",
    "evaluate": "mlslo.api.public",
    "gate": "mlslo.api.public",
    "load_spec": "mlslo.api.public",
}


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mlslo' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
