"""Evaluate an SLO spec on a Spark cluster: the job that spark-submit runs.

    spark-submit --master spark://HOST:7077 evaluate_job.py \
        --spec slos.yaml --data /shared/predictions/ --at 2026-11-04T00:00:00Z \
        --output evaluation.json

The scan runs on the cluster's executors; only the minute rollup comes back to the driver,
which evaluates it exactly as ``mlslo evaluate --format json`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from mlslo.api import evaluate_files
from mlslo.inputs.engines import spark_backend
from mlslo.moments import parse_moment
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.spec import load_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--spec", required=True, help="the SLO spec (YAML)")
    parser.add_argument("--data", required=True, help="prediction records every executor can read")
    parser.add_argument("--labels", help="labels in a separate table (id, ts, label)")
    parser.add_argument("--at", help="evaluate as of this time (ISO-8601); default: now")
    parser.add_argument("--output", help="write the JSON here instead of to stdout")
    options = parser.parse_args(argv)

    at = parse_moment(options.at, lambda: datetime.now(UTC))
    spark = spark_backend()
    try:
        evaluation = evaluate_files(
            load_spec(options.spec), Sources(options.data, options.labels), at, con=spark
        )
    finally:
        session = SparkSession.getActiveSession()
        if session is not None:
            session.stop()
    document = json.dumps(evaluation_json(evaluation), indent=2)
    if options.output:
        with open(options.output, "w", encoding="utf-8") as out:
            out.write(document + "\n")
    else:
        print(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
