"""What an attribution request may name: an SLO of the spec, and columns the spec lists
under ``attribution`` (or ``hour``), which the rollups keep. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from mlslo.errors import NotFoundError, UsageError
from mlslo.spec import HOUR, AnySLO, Spec
from mlslo.stats.rollup import Rollup


def check_by(spec: Spec, rollup: Rollup | None, by: Sequence[str]) -> tuple[str, ...]:
    """The columns of ``by``, each listed under the spec's ``attribution`` (or ``hour``)."""
    if not by:
        raise UsageError(
            f"name at least one column to attribute by ({_listed(spec)})", parameter="by"
        )
    seen: list[str] = []
    for column in by:
        if column in seen:
            raise UsageError(f"'{column}' is named twice", parameter="by")
        if column != HOUR and column not in spec.attribution:
            raise UsageError(
                f"'{column}' is not listed under attribution in the spec ({_listed(spec)}); "
                f"add it there so the rollups keep it",
                parameter="by",
            )
        if rollup is not None and column != HOUR and column not in rollup.slice_columns:
            raise UsageError(
                f"the rollups are not sliced by '{column}'; they keep "
                f"({', '.join(rollup.slice_columns) or 'none'})",
                parameter="by",
            )
        seen.append(column)
    return tuple(seen)


def _listed(spec: Spec) -> str:
    if not spec.attribution:
        return f"it lists none; {HOUR} is always available"
    return "it lists " + ", ".join([*spec.attribution, HOUR])


def slo_named(spec: Spec, name: str) -> AnySLO:
    for slo in spec.slos:
        if slo.name == name:
            return slo
    names = ", ".join(s.name for s in spec.slos)
    raise NotFoundError(f"there is no SLO named '{name}' (the spec has {names})", parameter="slo")
