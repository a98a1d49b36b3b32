"""Engines other than the embedded DuckDB that a scan can run on, opened through ibis."""

from __future__ import annotations

import os
from typing import Any

from mlslo.errors import UsageError


def spark_backend() -> Any:
    """An ibis PySpark backend: the cluster named by ``SPARK_MASTER`` (or spark-submit's
    settings), else a local session on every core."""
    try:
        import ibis
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError(
            "Spark needs PySpark: pip install 'mlslo[spark]'", parameter="engine"
        ) from None
    builder = SparkSession.builder.appName("mlslo").config("spark.sql.session.timeZone", "UTC")
    if "SPARK_MASTER" not in os.environ and "spark.master" not in os.environ.get(
        "PYSPARK_SUBMIT_ARGS", ""
    ):
        builder = builder.master("local[*]").config("spark.ui.enabled", "false")
    return ibis.pyspark.connect(builder.getOrCreate())
