"""Stage 6, render: one formatter (:mod:`.format`), the JSON documents that are the contract,
tables, charts, the report, notification payloads and Prometheus rules."""
