"""A nightly deployment gate over yesterday's prediction logs, with mlslo's Python API.

Run it from cron, or as the command of an Airflow ``BashOperator`` (or call ``main`` from a
``PythonOperator``); a non-zero exit fails the task, so the release waits:

    python examples/nightly_gate.py --spec spec.yaml \\
        --predictions 'logs/predictions/*.parquet' --labels 'logs/labels/*.parquet' \\
        --policy release --summary gate.json

Exit status: 0 when the deployment may go (allow, or warn without --strict), 1 when the gate
blocks (or warns, with --strict), 2 when the spec, the records or an argument are wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import mlslo


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="the SLO spec (YAML)")
    parser.add_argument("--predictions", required=True, help="a file, glob or folder")
    parser.add_argument("--labels", help="labels: a file, glob or folder")
    parser.add_argument("--outcomes", help="outcome counts: a file, glob or folder")
    parser.add_argument("--policy", help="the policy to apply (default: the spec's)")
    parser.add_argument("--at", help="the moment to decide at (default: now), ISO-8601")
    parser.add_argument("--candidate", help="also check a version, e.g. model_version=v2")
    parser.add_argument("--summary", type=Path, help="write the decision's JSON here")
    parser.add_argument("--strict", action="store_true", help="fail on warn too")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate, gate, report; the exit status says whether the deployment may go."""
    arguments = parse_arguments(argv)
    try:
        spec = mlslo.load_spec(arguments.spec)
        result = mlslo.evaluate(
            spec,
            arguments.predictions,
            labels=arguments.labels,
            outcomes=arguments.outcomes,
            at=arguments.at,
        )
        decision = mlslo.gate(spec, result, policy=arguments.policy, candidate=arguments.candidate)
    except mlslo.MlsloError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{decision.decision.upper()}: policy {decision.policy} for {result.service}")
    for reason in decision.reasons:
        print(f"  {reason.effect}: {reason.rule}: {reason.message}")
    for slo in result.values():
        print(f"  {slo.name}: {slo.status}, {_share(slo.remaining)} of the budget left")
    if arguments.summary is not None:
        arguments.summary.write_text(json.dumps(decision.to_dict(), indent=2), encoding="utf-8")
    if decision.decision == "block" or (arguments.strict and decision.decision == "warn"):
        return 1
    return 0


def _share(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    sys.exit(main())
