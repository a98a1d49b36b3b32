"""What :func:`mlslo.evaluate` and :func:`mlslo.gate` return: read-only views over an
evaluation and a gate decision, whose ``to_dict()`` is the JSON document of
``mlslo evaluate --format json`` and ``mlslo gate --format json``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlslo.decide.policy import GateDecision, Reason
from mlslo.errors import UsageError
from mlslo.measure.candidate import CandidateCheck
from mlslo.measure.evaluate import Evaluation, SLOEvaluation
from mlslo.render.documents import evaluation_json, gate_json, slo_json
from mlslo.render.notebook import burndown_svg, evaluation_html, gate_html, slo_html
from mlslo.scan.files import Sources
from mlslo.spec import Spec
from mlslo.stats.rollup import Rollup

if TYPE_CHECKING:
    import pandas


@dataclass(frozen=True)
class _Basis:
    """What an evaluation was computed from, so a gate can decide on the same records."""

    spec: Spec
    sources: Sources
    rollup: Rollup


class SLOResult:
    """One SLO of an evaluation: its SLI, budget, burn rates and (for fairness) groups.

    Numbers are exact floats; :meth:`to_dict` is this SLO's entry of the JSON document."""

    __slots__ = ("_entry", "_evaluation", "_result")

    def __init__(self, result: SLOEvaluation, evaluation: Evaluation) -> None:
        self._result = result
        self._evaluation = evaluation
        self._entry = slo_json(result)

    def __repr__(self) -> str:
        return (
            f"<SLOResult {self.name}: {self.metric}={self.value!r} status={self.status} "
            f"remaining={self.remaining!r}>"
        )

    @property
    def name(self) -> str:
        """The SLO's name in the spec."""
        return self._result.name

    @property
    def dimension(self) -> str:
        """``accuracy``, ``freshness``, ``availability``, ``latency`` or ``fairness``."""
        return self._result.slo.dimension

    @property
    def metric(self) -> str:
        """What the SLI measures (``f1``, ``good_share``, ``true_positive_rate_difference``…)."""
        return self._result.slo.metric

    @property
    def value(self) -> float | None:
        """The SLI over the window; None when it is undefined (see :attr:`reason`)."""
        return self._result.measurement.value

    @property
    def n(self) -> int:
        """How many samples the SLI was measured on."""
        return self._result.measurement.n

    @property
    def ci(self) -> tuple[float, float] | None:
        """The SLI's 95 % confidence interval."""
        ci = self._result.measurement.ci
        return None if ci is None else (float(ci[0]), float(ci[1]))

    @property
    def label_coverage(self) -> float | None:
        """The share of predictions with a label (labelled SLIs only)."""
        return self._result.measurement.label_coverage

    @property
    def target(self) -> float:
        """The objective's bound, compared with :attr:`value` by :attr:`op`."""
        return float(self._result.slo.target)

    @property
    def op(self) -> str:
        """How the value must compare with the target (``>=`` or ``<=``)."""
        return str(self._result.slo.op)

    @property
    def met(self) -> bool | None:
        """Whether the value meets the objective; None when the budget is not judged."""
        return self._result.met

    @property
    def consumed(self) -> float | None:
        """The share of the error budget spent (above 1: overspent)."""
        return self._result.budget.consumed

    @property
    def remaining(self) -> float | None:
        """``1 - consumed``: the share of the error budget left (negative: overspent)."""
        return self._result.budget.remaining

    @property
    def status(self) -> str:
        """``healthy``, ``low``, ``exhausted``, ``no_data`` or ``insufficient_data``."""
        return self._result.budget.status

    @property
    def reason(self) -> str | None:
        """Why the SLI or the budget has no value, if so."""
        return self._result.measurement.reason or self._result.budget.reason

    @property
    def burn_rates(self) -> dict[str, float | None]:
        """The burn rate over each alert window, by window (``1h``, ``6h``, …)."""
        return {rate.key: rate.value for rate in self._result.burn_rates}

    @property
    def time_to_exhaustion_hours(self) -> float | None:
        """Hours until the budget is gone at the last hour's burn rate (None: never)."""
        return self._result.time_to_exhaustion.get("1h")

    @property
    def groups(self) -> list[dict[str, Any]]:
        """A fairness SLO's groups, each with its rates, sample counts and intervals, as in
        the JSON document; empty for other dimensions."""
        return list(self._entry["sli"].get("groups", []))

    @property
    def unattributed(self) -> int | None:
        """A fairness SLO's records left out of every group (no value for its attribute)."""
        value = self._entry["sli"].get("unattributed")
        return None if value is None else int(value)

    @property
    def burndown(self) -> list[tuple[datetime, float | None]]:
        """The budget left at each step of the window; empty unless evaluated with a
        ``series`` step."""
        return list(self._result.burndown or ())

    def burndown_svg(self) -> str:
        """The burn-down as an SVG chart (display it with ``IPython.display.SVG``)."""
        if not self._result.burndown:
            raise UsageError(
                "the burn-down needs a series; evaluate with series='1d' (or another step)",
                parameter="series",
            )
        return burndown_svg(self._entry, self._result, self._evaluation)

    def to_dict(self) -> dict[str, Any]:
        """This SLO's entry of :meth:`EvaluationResult.to_dict`."""
        return slo_json(self._result)

    def _repr_html_(self) -> str:
        return slo_html(self._evaluation, self.name)


TABLE_COLUMNS = (
    ("name", pa.string()),
    ("dimension", pa.string()),
    ("metric", pa.string()),
    ("value", pa.float64()),
    ("n", pa.int64()),
    ("op", pa.string()),
    ("target", pa.float64()),
    ("met", pa.bool_()),
    ("consumed", pa.float64()),
    ("remaining", pa.float64()),
    ("status", pa.string()),
    ("label_coverage", pa.float64()),
    ("time_to_exhaustion_hours", pa.float64()),
)


class EvaluationResult(Mapping[str, SLOResult]):
    """Every SLO of a spec evaluated at one moment, by SLO name.

    ``result["accuracy"].remaining``; ``to_dict()`` is the document of
    ``mlslo evaluate --format json``; in Jupyter it shows as the table ``mlslo evaluate``
    prints."""

    def __init__(self, evaluation: Evaluation, basis: _Basis) -> None:
        self._evaluation = evaluation
        self._basis = basis
        self._slos = {r.name: SLOResult(r, evaluation) for r in evaluation.slos}

    def __getitem__(self, name: str) -> SLOResult:
        try:
            return self._slos[name]
        except KeyError:
            raise KeyError(f"no SLO named {name!r}; the spec has {', '.join(self._slos)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._slos)

    def __len__(self) -> int:
        return len(self._slos)

    def __repr__(self) -> str:
        statuses = ", ".join(f"{s.name}={s.status}" for s in self._slos.values())
        return f"<EvaluationResult {self.service} at {self.evaluated_at.isoformat()}: {statuses}>"

    @property
    def service(self) -> str:
        """The spec's service."""
        return self._evaluation.service

    @property
    def evaluated_at(self) -> datetime:
        """The moment evaluated (UTC): only records that had arrived by then count."""
        return self._evaluation.evaluated_at

    @property
    def spec(self) -> Spec:
        """The spec evaluated."""
        return self._basis.spec

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``mlslo evaluate --format json``, exactly."""
        return evaluation_json(self._evaluation)

    def to_arrow(self) -> pa.Table:
        """One row per SLO: SLI, objective, budget and status."""
        rows = [
            {column: getattr(slo, column) for column, _ in TABLE_COLUMNS}
            for slo in self._slos.values()
        ]
        return pa.Table.from_pylist(rows, schema=pa.schema(TABLE_COLUMNS))

    def to_pandas(self) -> pandas.DataFrame:
        """:meth:`to_arrow` as a pandas DataFrame (needs pandas)."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise UsageError("to_pandas needs pandas: pip install pandas") from None
        return self.to_arrow().to_pandas()

    def _repr_html_(self) -> str:
        return evaluation_html(self._evaluation)


class GateResult:
    """A deployment decision: ``allow``, ``warn`` or ``block``, every reason, the risk score,
    and the evaluation it was made from. ``to_dict()`` is the document of
    ``mlslo gate --format json``."""

    def __init__(
        self,
        decision: GateDecision,
        evaluation: EvaluationResult,
        candidate: CandidateCheck | None = None,
    ) -> None:
        self._decision = decision
        self._evaluation = evaluation
        self._candidate = candidate

    def __repr__(self) -> str:
        count = len(self.reasons)
        return (
            f"<GateResult {self.decision} (policy {self.policy}, {count} "
            f"reason{'' if count == 1 else 's'}, risk score {self.risk_score!r})>"
        )

    @property
    def decision(self) -> str:
        """``allow``, ``warn`` or ``block``."""
        return self._decision.decision

    @property
    def allowed(self) -> bool:
        """True unless the decision is ``block`` (a ``warn`` lets the deployment through)."""
        return self._decision.decision != "block"

    @property
    def policy(self) -> str:
        """The name of the policy applied."""
        return self._decision.policy

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """Every rule that warned or blocked, with the SLO, the value and the threshold."""
        return self._decision.reasons

    @property
    def risk_score(self) -> float | None:
        """The weighted share of budgets consumed, in [0, 1] (None: the policy sets none)."""
        return self._decision.risk_score

    @property
    def evaluation(self) -> EvaluationResult:
        """The evaluation the decision was made from."""
        return self._evaluation

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``mlslo gate --format json``, exactly."""
        return gate_json(self._evaluation._evaluation, self._decision, self._candidate)

    def _repr_html_(self) -> str:
        return gate_html(self.to_dict(), self._evaluation._evaluation)
