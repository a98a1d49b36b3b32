"""Write the fixture the CBPE comparison test reads: NannyML's bundled synthetic car-loan and
work-from-home datasets (score, prediction, label per row) and NannyML's own CBPE estimates
of accuracy and F1 per chunk of 5,000 analysis rows.

NannyML pins libraries the project does not need (and imports statsmodels without declaring
it), so it runs in its own environment:

    python -m venv /tmp/nannyml && /tmp/nannyml/bin/pip install nannyml statsmodels
    /tmp/nannyml/bin/python benchmarks/cbpe_nannyml.py tests/data/cbpe_nannyml
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import nannyml as nml
import pandas as pd

CHUNK = 5_000
DATASETS = {
    "car_loan": (nml.load_synthetic_car_loan_dataset, "repaid"),
    "work_from_home": (nml.load_synthetic_binary_classification_dataset, "work_home_actual"),
}


def rows(reference: pd.DataFrame, analysis: pd.DataFrame, target: str) -> pd.DataFrame:
    """One row per prediction, reference first; the analysis labels are the held-back truth."""
    frames = []
    for period, frame in (("reference", reference), ("analysis", analysis)):
        frames.append(
            pd.DataFrame(
                {
                    "period": period,
                    "score": frame["y_pred_proba"].astype("float64"),
                    "prediction": frame["y_pred"].astype("int8"),
                    "label": frame[target].astype("int8"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def estimates(
    name: str, reference: pd.DataFrame, analysis: pd.DataFrame, target: str
) -> pd.DataFrame:
    estimator = nml.CBPE(
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true=target,
        metrics=["accuracy", "f1"],
        chunk_size=CHUNK,
        problem_type="classification_binary",
    )
    estimator.fit(reference)
    result = estimator.estimate(analysis).filter(period="analysis").to_df()
    return pd.DataFrame(
        {
            "dataset": name,
            "chunk": result[("chunk", "chunk_index")],
            "start_row": result[("chunk", "start_index")],
            "end_row": result[("chunk", "end_index")] + 1,
            "nannyml_accuracy": result[("accuracy", "value")],
            "nannyml_f1": result[("f1", "value")],
        }
    )


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chunks = []
    for name, (load, target) in DATASETS.items():
        reference, analysis, targets = load()
        analysis = analysis.merge(targets, on="id")
        rows(reference, analysis, target).to_parquet(folder / f"{name}.parquet", index=False)
        chunks.append(estimates(name, reference, analysis, target))
    table = pd.concat(chunks, ignore_index=True)
    with open(folder / "nannyml_estimates.csv", "w") as out:
        out.write(f"# NannyML {nml.__version__} CBPE (isotonic calibration), chunk_size={CHUNK}\n")
        table.to_csv(out, index=False, float_format="%.10f")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
