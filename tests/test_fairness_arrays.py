"""The fairness SLI with its groups as arrays: the same floats as one group at a time.

Wilson intervals for many groups at once must equal the scalar :func:`wilson` bit for bit, and
leaving out the per-group detail (burn-rate windows, series points) must not change the value,
its interval or the groups compared.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlslo.measure.sli.fairness import measure
from mlslo.spec import FairnessSLI, parse_spec
from mlslo.stats.confidence import wilson, wilson_arrays
from mlslo.stats.timeline import WindowStats


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=50))
def test_wilson_for_many_groups_is_the_scalar_one(pairs: list[tuple[int, int]]) -> None:
    hits = np.array([min(h, n) for h, n in pairs], dtype=np.float64)
    size = np.array([n for _, n in pairs], dtype=np.float64)
    low, high = wilson_arrays(hits, size)
    for i in range(len(pairs)):
        expected = wilson(float(hits[i]), float(size[i]))
        if expected is None:
            assert np.isnan(low[i]) and np.isnan(high[i])
        else:
            assert (float(low[i]), float(high[i])) == expected


METRICS = (
    "true_positive_rate_difference",
    "equalized_odds_difference",
    "demographic_parity_difference",
    "disparate_impact_ratio",
)


@settings(max_examples=40, deadline=None)
@given(
    metric=st.sampled_from(METRICS),
    groups=st.integers(2, 300),
    reference=st.booleans(),
    min_group_size=st.sampled_from([1, 5]),
    seed=st.integers(0, 2**32 - 1),
)
def test_leaving_out_the_detail_changes_nothing_else(
    metric: str, groups: int, reference: bool, min_group_size: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    tp, fp, fn, tn = (rng.integers(0, 6, groups).astype(np.float64) for _ in range(4))
    predictions = tp + fp + fn + tn
    selected = tp + fp
    names = [(f"g{i:03d}",) for i in range(groups)]
    extra = ", reference_group: g000, method: reference" if reference else ""
    sli = (
        parse_spec(
            "service: s\nslos:\n  - {name: f, dimension: fairness, sli: {metric: "
            f"{metric}, attribute: cohort, positive_label: 1, min_group_size: "
            f"{min_group_size}{extra}}}, objective: {{target: 0.5}}}}\n"
        )
        .slos[0]
        .sli
    )
    stats = WindowStats(
        {},
        {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "predictions": predictions, "selected": selected},
        names,
    )
    assert isinstance(sli, FairnessSLI)
    full = measure(sli, stats)
    brief = measure(sli, stats, detail=False)
    assert (brief.value, brief.ci, brief.n, brief.reason) == (
        full.value,
        full.ci,
        full.n,
        full.reason,
    )
    assert "groups" not in brief.detail
    shown = {k: v for k, v in full.detail.items() if k != "groups"}
    assert brief.detail == shown
    listed = full.detail["groups"]
    assert len(listed) == int(np.count_nonzero(predictions))
    for entry in listed:
        index = int(entry["group"]["cohort"][1:])
        for rate in entry["rates"].values():
            assert rate["n"] >= 0
            if rate["n"]:
                assert rate["ci"][0] <= rate["value"] <= rate["ci"][1]
        assert entry["group"] == {"cohort": names[index][0]}
