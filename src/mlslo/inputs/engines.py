"""Engines other than the embedded DuckDB that a scan can run on, opened through ibis."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mlslo.errors import UsageError


def spark_backend() -> Any:
    """An ibis PySpark backend on the master :func:`spark_master` picks: spark-submit's,
    ``SPARK_MASTER``, or a local session on every core."""
    try:
        import ibis
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError(
            "Spark needs PySpark: pip install 'mlslo[spark]'", parameter="engine"
        ) from None
    builder = SparkSession.builder.appName("mlslo").config("spark.sql.session.timeZone", "UTC")
    master = spark_master(os.environ)
    if master is not None:
        builder = builder.master(master)
    if master == LOCAL:
        builder = builder.config("spark.ui.enabled", "false")
    return ibis.pyspark.connect(builder.getOrCreate())


LOCAL = "local[*]"


def spark_master(environment: Mapping[str, str]) -> str | None:
    """The master to give the session. None in a driver started by spark-submit (which hands
    its gateway to Python): its ``--master`` holds. Else ``SPARK_MASTER``; else None when
    ``PYSPARK_SUBMIT_ARGS`` names a master; else every local core."""
    if "PYSPARK_GATEWAY_PORT" in environment:
        return None
    master = environment.get("SPARK_MASTER", "").strip()
    if master:
        return master
    arguments = environment.get("PYSPARK_SUBMIT_ARGS", "")
    return None if "--master" in arguments or "spark.master" in arguments else LOCAL
