"""A small MLServer runtime serving the census scikit-learn Pipeline with one input per column.

MLServer's own sklearn runtime takes a single input tensor; the Pipeline takes a DataFrame of 14
named columns, so this runtime builds that DataFrame from the request's inputs, each named after
its census field (INT64 for the numeric columns, BYTES for the others, shape [-1]: one value per
row). It answers `probability` (FP64, of ">50K") and `predicted_class` (BYTES, ">50K" or
"<=50K"). A request missing an input, with inputs of different lengths, or with an age outside
AGE_RANGE is refused with MLServerError (HTTP 400, gRPC INVALID_ARGUMENT).
"""

import joblib
import numpy as np
import pandas as pd
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

from census_columns import AGE_RANGE, FEATURES, INT_COLUMNS, NEGATIVE, POSITIVE


def score(pipeline, frame: pd.DataFrame):
    """Probability of the positive class and the predicted label, per row (also used by train.py)."""
    classes = list(pipeline.classes_)
    probability = pipeline.predict_proba(frame[FEATURES])[:, classes.index(POSITIVE)]
    predicted = [POSITIVE if p >= 0.5 else NEGATIVE for p in probability]
    return probability.astype(np.float64), predicted


class CensusRuntime(MLModel):
    async def load(self) -> bool:
        self._pipeline = joblib.load(await get_model_uri(self._settings))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        given = {tensor.name: tensor for tensor in payload.inputs}
        missing = [c for c in FEATURES if c not in given]
        if missing:
            raise MLServerError(f"missing inputs: {', '.join(missing)}", 400)
        columns = {}
        for name in FEATURES:
            values = list(given[name].data.root)  # TensorData, a pydantic RootModel
            if name in INT_COLUMNS:
                columns[name] = np.asarray(values, dtype=np.int64)
            else:
                columns[name] = [v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else str(v) for v in values]
        lengths = {name: len(v) for name, v in columns.items()}
        if len(set(lengths.values())) != 1:
            raise MLServerError(f"inputs hold different numbers of rows: {lengths}", 400)
        ages = columns["age"]
        bad = [int(i) for i in np.nonzero((ages < AGE_RANGE[0]) | (ages > AGE_RANGE[1]))[0]]
        if bad:
            raise MLServerError(
                f"age out of range [{AGE_RANGE[0]}, {AGE_RANGE[1]}] in rows {bad[:10]} (e.g. {int(ages[bad[0]])})", 400)
        probability, predicted = score(self._pipeline, pd.DataFrame(columns))
        rows = len(predicted)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                ResponseOutput(name="probability", datatype="FP64", shape=[rows], data=probability.tolist()),
                ResponseOutput(name="predicted_class", datatype="BYTES", shape=[rows],
                               data=[p.encode("utf-8") for p in predicted]),
            ],
        )
