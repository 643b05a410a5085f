"""Trains the census scikit-learn Pipeline for MLServer and writes an MLServer model folder.

    python train.py <data/census dir> <output model dir>

The Pipeline takes the 14 raw census columns as a DataFrame (one-hot encoding of the string
columns, scaling of the numeric ones, logistic regression). The output folder holds
model.joblib, model-settings.json (the CensusRuntime of census_runtime.py, with one input per
column named after the census field) and metrics.json (accuracy on adult.test.csv, computed with
the runtime's own scoring function, so the served model reproduces it exactly).
"""

import json
import sys
from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from census_columns import FEATURES, INT_COLUMNS, LABEL, STRING_COLUMNS
from census_runtime import score


def read(path: Path) -> pd.DataFrame:
    # keep_default_na=False: "?" and every other category stay strings, as in the Avro records.
    types = {c: "int64" for c in INT_COLUMNS} | {c: str for c in STRING_COLUMNS + [LABEL]}
    return pd.read_csv(path, dtype=types, keep_default_na=False)


def main() -> None:
    data_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    train = read(data_dir / "adult.train.csv")
    test = read(data_dir / "adult.test.csv")
    pipeline = Pipeline([
        ("features", ColumnTransformer([
            ("categorical", OneHotEncoder(handle_unknown="ignore"), STRING_COLUMNS),
            ("numeric", StandardScaler(), INT_COLUMNS),
        ])),
        ("classifier", LogisticRegression(max_iter=2000)),
    ])
    pipeline.fit(train[FEATURES], train[LABEL])
    _, predicted = score(pipeline, test[FEATURES])
    accuracy = float((pd.Series(predicted) == test[LABEL].reset_index(drop=True)).mean())

    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, out_dir / "model.joblib")
    settings = {
        "name": "census",
        "implementation": "census_runtime.CensusRuntime",
        "parameters": {"uri": "./model.joblib", "version": "1"},
        "inputs": [{"name": c, "datatype": "INT64" if c in INT_COLUMNS else "BYTES", "shape": [-1]}
                   for c in FEATURES],
        "outputs": [
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "predicted_class", "datatype": "BYTES", "shape": [-1]},
        ],
    }
    (out_dir / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    metrics = {"accuracy": accuracy, "test_rows": len(test), "train_rows": len(train)}
    (out_dir / "metrics.json").write_text(json.dumps(metrics) + "\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
