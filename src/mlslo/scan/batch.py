"""The scan compiled once for the store's incremental rollups: each ingested batch runs the
same SQL and gives its rollup delta."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import pyarrow as pa

from mlslo.errors import DataError
from mlslo.scan.compiled import rows_of
from mlslo.scan.expressions import bucket_of
from mlslo.scan.histograms import histogram_queries
from mlslo.scan.outcomes import outcome_statistics
from mlslo.scan.plan import build_plan
from mlslo.scan.prepare import slices_of
from mlslo.spec import (
    AccuracySLO,
    Spec,
)
from mlslo.stats.rollup import (
    BUCKET,
    Rollup,
    histogram_tables,
    stat_table,
)

# --- the scan compiled once, for the store's incremental rollups ------------------------------


BATCH_TABLE = "mlslo_batch"


@dataclass(frozen=True)
class BatchScan:
    """The scan compiled to DuckDB SQL once, over a table named ``mlslo_batch`` in the store's
    canonical columns; running it on each ingested batch gives that batch's rollup delta."""

    bucket_seconds: int
    slices: tuple[str, ...]
    sql: str
    names: Mapping[str, str]
    histogram_sql: tuple[tuple[str, tuple[str, ...]], ...]
    outcome_sql: str | None
    outcome_names: Mapping[str, str]

    @property
    def stat_columns(self) -> list[str]:
        return list(self.names)

    def run(self, con: Any, batch: pa.Table) -> Rollup:
        """The rollup of ``batch`` (a DuckDB connection runs the compiled SQL over it)."""
        con.register(BATCH_TABLE, batch)
        try:
            rows = rows_of(con, self.sql)
            histograms: dict[str, pa.Table] = {}
            for sql, names in self.histogram_sql:
                histograms.update(histogram_tables(rows_of(con, sql), names))
        finally:
            con.unregister(BATCH_TABLE)
        rows = stat_table(
            rows.select([BUCKET, *self.slices, *set(self.names.values())]), self.names
        )
        return Rollup(self.bucket_seconds, self.slices, rows, histograms)

    def run_outcomes(self, con: Any, batch: pa.Table) -> Rollup | None:
        """The rollup of a batch of outcome counts (None when no SLO counts them)."""
        if self.outcome_sql is None:
            return None
        con.register(BATCH_TABLE, batch)
        try:
            rows = rows_of(con, self.outcome_sql)
        finally:
            con.unregister(BATCH_TABLE)
        rows = stat_table(
            rows.select([BUCKET, *self.slices, *self.outcome_names.values()]), self.outcome_names
        )
        return Rollup(self.bucket_seconds, self.slices, rows, {})


def compile_batch_scan(
    spec: Spec,
    schema: Mapping[str, Any],
    slices: Sequence[str],
    outcome_schema: Mapping[str, Any],
) -> BatchScan:
    """Compile the spec's scan for batches with the given (canonical) ibis schemas of
    predictions and of outcome counts."""
    classes: dict[str, list[Any]] = {}
    for slo in spec.slos:
        if isinstance(slo, AccuracySLO) and slo.sli.multiclass:
            if slo.sli.classes is None:
                raise DataError(
                    f"SLO '{slo.name}' is multiclass; list its classes (sli.classes) so the "
                    "service keeps one statistic per class from the first record on",
                    source="spec",
                )
            classes[slo.name] = list(slo.sli.classes)
    raw = ibis.table(ibis.schema(dict(schema)), name=BATCH_TABLE)
    table = raw.filter(raw.ts.notnull())
    bucket_seconds = int(spec.bucket.total_seconds())
    all_slices = slices_of(spec, slices)
    plan = build_plan(spec, table, classes, [], with_checks=False)
    keys = [bucket_of(table, bucket_seconds).name(BUCKET), *(table[c] for c in all_slices)]
    query = table.group_by(keys).aggregate(**plan.aggregates)
    histogram_sql = tuple(
        (ibis.to_sql(q, dialect="duckdb"), tuple(names))
        for q, names in histogram_queries(spec, table, bucket_seconds)
    )
    outcomes = ibis.table(ibis.schema(dict(outcome_schema)), name=BATCH_TABLE)
    outcomes = outcomes.filter(outcomes.ts.notnull())
    outcome_aggregates, outcome_names = outcome_statistics(spec, outcomes)
    outcome_keys = [
        bucket_of(outcomes, bucket_seconds).name(BUCKET),
        *(outcomes[c] for c in all_slices),
    ]
    outcome_query = outcomes.group_by(outcome_keys).aggregate(**outcome_aggregates)
    return BatchScan(
        bucket_seconds,
        tuple(all_slices),
        ibis.to_sql(query, dialect="duckdb"),
        dict(plan.names),
        histogram_sql,
        ibis.to_sql(outcome_query, dialect="duckdb") if outcome_aggregates else None,
        outcome_names,
    )
