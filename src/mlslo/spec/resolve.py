"""Resolving one policy reference to the SLOs it covers (used by the spec's own validation,
so it needs nothing but the SLOs).

A reference names an SLO or a composite SLO, or ``dimension:<name>`` for every SLO of that
dimension (composites are never in a dimension). A bare
dimension name (``freshness``) still means every SLO of the dimension when no SLO is named
so, but it is deprecated: ``soft_stop: [freshness]`` once matched the SLO named ``freshness``
and silently left a second freshness SLO outside every rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlslo.spec.slos import DIMENSIONS, AnySLO
from mlslo.spec.types import closest

PREFIX = "dimension:"


@dataclass(frozen=True)
class Resolved:
    """The SLOs a reference covers; ``deprecated`` when it is a bare dimension name."""

    names: tuple[str, ...]
    deprecated: bool = False


def resolve(slos: Sequence[AnySLO], ref: str, composites: Sequence[str] = ()) -> Resolved:
    """The SLOs (or the composite, among the ``composites`` named) ``ref`` covers. Raises
    ValueError, with the fix, when it covers none."""
    names = [slo.name for slo in slos]
    if ref in composites:
        return Resolved((ref,))
    if ref.startswith(PREFIX):
        dimension = ref[len(PREFIX) :]
        if dimension not in DIMENSIONS:
            raise ValueError(
                f"'{dimension}' is not a dimension{closest(dimension, DIMENSIONS)}; "
                f"use one of {', '.join(DIMENSIONS)}"
            )
        covered = tuple(s.name for s in slos if s.dimension == dimension)
        if not covered:
            raise ValueError(f"no SLO of the spec has dimension {dimension}")
        return Resolved(covered)
    if ref in names:
        return Resolved((ref,))
    if ref in DIMENSIONS:
        covered = tuple(s.name for s in slos if s.dimension == ref)
        if not covered:
            raise ValueError(f"no SLO of the spec has dimension {ref}")
        return Resolved(covered, deprecated=True)
    hint = closest(ref, [*names, *composites, *(PREFIX + d for d in DIMENSIONS)])
    raise ValueError(
        f"'{ref}' names no SLO{hint}; name an SLO or a composite, or write dimension:<name> "
        "for every SLO of a dimension"
    )
