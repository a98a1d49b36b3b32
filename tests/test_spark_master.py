"""Which master a Spark scan asks for, from the environment the driver runs in."""

from __future__ import annotations

import pytest

from mlslo.inputs.engines import LOCAL, spark_master


@pytest.mark.parametrize(
    ("environment", "master"),
    [
        ({}, LOCAL),
        ({"SPARK_MASTER": "spark://10.0.0.5:7077"}, "spark://10.0.0.5:7077"),
        ({"SPARK_MASTER": " yarn "}, "yarn"),
        ({"SPARK_MASTER": ""}, LOCAL),
        # a job started by spark-submit: its --master is already in the driver's settings
        ({"PYSPARK_GATEWAY_PORT": "40123"}, None),
        ({"PYSPARK_SUBMIT_ARGS": "--master spark://h:7077 pyspark-shell"}, None),
        ({"PYSPARK_SUBMIT_ARGS": "--conf spark.master=yarn pyspark-shell"}, None),
        ({"PYSPARK_SUBMIT_ARGS": "--conf spark.sql.shuffle.partitions=2 pyspark-shell"}, LOCAL),
        ({"SPARK_MASTER": "local[2]", "PYSPARK_GATEWAY_PORT": "40123"}, None),
        ({"SPARK_MASTER": "local[2]", "PYSPARK_SUBMIT_ARGS": "--master yarn x"}, "local[2]"),
    ],
)
def test_master_is_spark_submits_then_spark_master_then_local(
    environment: dict[str, str], master: str | None
) -> None:
    assert spark_master(environment) == master
