"""Stage 3, the scan: the only O(events) step. The spec's ibis expressions reduce records to
rollups, on DuckDB (compiled once to SQL and cached) or on another engine."""
