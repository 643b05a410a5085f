"""The census columns (schemas/census.avsc): what the pipeline is trained on and what the MLServer
runtime declares as its inputs, one input per column, named after the Avro field."""

INT_COLUMNS = [
    "age",
    "fnlwgt",
    "education_num",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
]
STRING_COLUMNS = [
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
]
# In the order of the CSV header and the Avro schema.
FEATURES = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
]
LABEL = "income"
POSITIVE = ">50K"
NEGATIVE = "<=50K"
# The runtime refuses a request holding an age outside this range (INVALID_ARGUMENT): the census
# has none, so such a row is a bad record, and the connector's bisection isolates it.
AGE_RANGE = (0, 150)
