"""Build the dev/test SavedModels into a TF-Serving style model base.

    python build_models.py --base ~/.cache/infer-connect/models [--data data/census]

Layout produced (what tensorflow_model_server and server.py both load):

    BASE/census/1/saved_model.pb (+ variables/, assets/)
    BASE/census/1/assets.extra/metrics.json   {"accuracy": ..., "test_rows": 16281}
    BASE/null/1/..., BASE/null/2/...
    BASE/image/1/...
    BASE/<model>/.build-hash

Each model is cached under a sha256 of everything that determines it: this
file's source, the files it reads (census CSVs; make_test_images.py for the
image renderer), the TensorFlow version and the model's params. A matching
.build-hash skips the build ("cached"). A build is written to a staging
directory and renamed into place, so an interrupted build never leaves a
half-written model that looks current.

Models:
  census v1  adult-income classifier; preprocessing (StringLookup one-hot,
             log/normalisation) lives inside the graph, so clients send raw
             CSV values. serving_default: 14 named [-1] inputs (int64 for the
             integer columns, string for the rest) -> probability (float, P(>50K)),
             predicted_class (string ">50K" | "<=50K").
  null v1,v2 age (int64 [-1]) -> score (float [-1]) = age + (version - 1).
             Near-zero cost; lets tests check row order and which version served.
  image v1   image_bytes (string [-1], encoded JPEG/PNG) -> top_k_classes
             (string [-1,3]), top_k_scores (float [-1,3], softmax, descending).
             A small CNN trained on synthetic colour images.
"""

import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import make_test_images  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "data", "census"))

CENSUS_INT_COLUMNS = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CENSUS_STRING_COLUMNS = ["workclass", "education", "marital_status", "occupation",
                         "relationship", "race", "sex", "native_country"]
# Heavy-tailed columns get log1p before normalisation.
CENSUS_LOG_COLUMNS = {"fnlwgt", "capital_gain", "capital_loss"}
CENSUS_LABEL = "income"
CENSUS_POSITIVE = ">50K"
CENSUS_NEGATIVE = "<=50K"

CENSUS_PARAMS = {"seed": 42, "epochs": 20, "batch_size": 256, "learning_rate": 1e-3,
                 "hidden": [64, 32], "dropout": 0.1}
NULL_PARAMS = {"versions": [1, 2]}
IMAGE_PARAMS = {"seed": 7, "per_class": 300, "side": 32, "epochs": 15, "batch_size": 64,
                "learning_rate": 3e-3, "top_k": 3}


# ---------------------------------------------------------------- build cache

def sha256_of(paths, params):
    """Hash of file contents (in the given order), the TF version and params."""
    h = hashlib.sha256()
    for path in paths:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    h.update(tf.__version__.encode() + b"\0")
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


def build_cached(base, name, digest, build_fn):
    """Run build_fn(staging_dir) unless BASE/name/.build-hash == digest.

    build_fn writes version subdirectories into staging_dir; on success the
    staging dir replaces BASE/name and the hash is recorded inside it.
    """
    target = os.path.join(base, name)
    hash_file = os.path.join(target, ".build-hash")
    start = time.monotonic()
    if os.path.exists(hash_file) and open(hash_file).read().strip() == digest:
        print(f"{name}: cached ({time.monotonic() - start:.1f}s)", flush=True)
        return
    staging = os.path.join(base, f".staging-{name}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    build_fn(staging)
    with open(os.path.join(staging, ".build-hash"), "w") as f:
        f.write(digest + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)
    print(f"{name}: built in {time.monotonic() - start:.1f}s", flush=True)


def seed_everything(seed):
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# --------------------------------------------------------------------- census

def read_census(path):
    """CSV -> ({column: np.array}, labels float32 0/1). Ints as int64, rest as bytes."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    features = {c: np.array([int(r[c]) for r in rows], dtype=np.int64) for c in CENSUS_INT_COLUMNS}
    features.update({c: np.array([r[c].encode() for r in rows], dtype=object)
                     for c in CENSUS_STRING_COLUMNS})
    labels = np.array([r[CENSUS_LABEL] == CENSUS_POSITIVE for r in rows], dtype=np.float32)
    return features, labels


def census_keras_model(train_features, params):
    """Functional Keras model taking the raw 14 columns (dict of [batch] tensors).

    Vocabularies and normalisation statistics are computed from the training
    split here (not with adapt()) so they are exact and order-independent;
    unseen categories (including '?') map to the OOV bucket.
    """
    inputs, encoded = {}, []
    numeric = []
    for col in CENSUS_INT_COLUMNS:
        inputs[col] = keras.Input(shape=(), dtype="int64", name=col)
        x = keras.ops.cast(inputs[col], "float32")
        values = train_features[col].astype(np.float32)
        if col in CENSUS_LOG_COLUMNS:
            x, values = keras.ops.log1p(x), np.log1p(values)
        norm = keras.layers.Normalization(axis=None, mean=float(values.mean()),
                                          variance=float(values.var()), name=f"norm_{col}")
        numeric.append(keras.ops.expand_dims(norm(x), -1))
    encoded.append(keras.layers.Concatenate(name="numeric")(numeric))
    for col in CENSUS_STRING_COLUMNS:
        inputs[col] = keras.Input(shape=(), dtype="string", name=col)
        vocab = sorted({v.decode() for v in train_features[col]})
        lookup = keras.layers.StringLookup(vocabulary=vocab, output_mode="one_hot", name=f"lookup_{col}")
        encoded.append(lookup(inputs[col]))
    x = keras.layers.Concatenate(name="features")(encoded)
    for i, units in enumerate(params["hidden"]):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        x = keras.layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.Model(inputs, output, name="census")


class CensusServing(tf.Module):
    """Wraps the Keras model with the serving signature (14 named inputs)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[{
        **{c: tf.TensorSpec([None], tf.int64, name=c) for c in CENSUS_INT_COLUMNS},
        **{c: tf.TensorSpec([None], tf.string, name=c) for c in CENSUS_STRING_COLUMNS},
    }])
    def serve(self, columns):
        probability = tf.reshape(self.model(columns, training=False), [-1])
        predicted = tf.where(probability >= 0.5, CENSUS_POSITIVE, CENSUS_NEGATIVE)
        return {"probability": probability, "predicted_class": predicted}


def build_census(data_dir, staging):
    params = CENSUS_PARAMS
    seed_everything(params["seed"])
    train_x, train_y = read_census(os.path.join(data_dir, "adult.train.csv"))
    test_x, test_y = read_census(os.path.join(data_dir, "adult.test.csv"))

    model = census_keras_model(train_x, params)
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                  loss="binary_crossentropy", metrics=["accuracy"])
    train = (tf.data.Dataset.from_tensor_slices((train_x, train_y))
             .shuffle(len(train_y), seed=params["seed"], reshuffle_each_iteration=True)
             .batch(params["batch_size"]))
    model.fit(train, epochs=params["epochs"], shuffle=False, verbose=0)  # the dataset shuffles

    export_dir = os.path.join(staging, "1")
    serving = CensusServing(model)
    tf.saved_model.save(serving, export_dir,
                        signatures={"serving_default": serving.serve.get_concrete_function()})

    # Score the test split through the exported artifact, as a client would.
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    outputs = signature(**{c: tf.constant(v) for c, v in test_x.items()})
    predicted = outputs["predicted_class"].numpy() == CENSUS_POSITIVE.encode()
    accuracy = float(np.mean(predicted == (test_y == 1.0)))
    metrics_dir = os.path.join(export_dir, "assets.extra")
    os.makedirs(metrics_dir)
    with open(os.path.join(metrics_dir, "metrics.json"), "w") as f:
        json.dump({"accuracy": round(accuracy, 6), "test_rows": int(len(test_y))}, f)
        f.write("\n")
    print(f"census test accuracy: {accuracy:.4f}", flush=True)


# ----------------------------------------------------------------------- null

class NullModel(tf.Module):
    def __init__(self, offset):
        super().__init__()
        self.offset = tf.constant(float(offset), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="age")])
    def serve(self, age):
        return {"score": tf.cast(age, tf.float32) + self.offset}


def build_null(staging):
    for version in NULL_PARAMS["versions"]:
        module = NullModel(version - 1)
        tf.saved_model.save(module, os.path.join(staging, str(version)),
                            signatures={"serving_default": module.serve.get_concrete_function()})


# ---------------------------------------------------------------------- image

def decode_and_resize(image_bytes, side):
    """[batch] encoded images -> [batch, side, side, 3] float32 in [0, 1].

    Shared by training and serving so both see identical pixels.
    """
    def one(encoded):
        pixels = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.image.resize(tf.cast(pixels, tf.float32) / 255.0, [side, side])
    return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([side, side, 3], tf.float32))


def image_keras_model(num_classes, side):
    inputs = keras.Input(shape=(side, side, 3), name="pixels")
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="colours")


class ImageServing(tf.Module):
    def __init__(self, model, classes, side, top_k):
        super().__init__()
        self.model = model
        self.classes = tf.constant(classes)
        self.side = side
        self.top_k = top_k

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        scores = self.model(decode_and_resize(image_bytes, self.side), training=False)
        top = tf.math.top_k(scores, k=self.top_k, sorted=True)
        return {"top_k_classes": tf.gather(self.classes, top.indices), "top_k_scores": top.values}


def build_image(staging):
    params = IMAGE_PARAMS
    seed_everything(params["seed"])
    classes = list(make_test_images.COLOURS)
    rng = np.random.default_rng(params["seed"])
    encoded, labels = [], []
    for index, colour in enumerate(classes):
        for _ in range(params["per_class"]):
            encoded.append(make_test_images.render_jpeg(colour, rng))
            labels.append(index)
    pixels = decode_and_resize(tf.constant(encoded), params["side"]).numpy()
    labels = np.array(labels, dtype=np.int64)

    model = image_keras_model(len(classes), params["side"])
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(pixels, labels, epochs=params["epochs"], batch_size=params["batch_size"],
              shuffle=True, verbose=0)

    export_dir = os.path.join(staging, "1")
    serving = ImageServing(model, classes, params["side"], params["top_k"])
    tf.saved_model.save(serving, export_dir,
                        signatures={"serving_default": serving.serve.get_concrete_function()})

    # Fail the build rather than ship a model that misreads the fixed test images.
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    check_rng = np.random.default_rng(make_test_images.TEST_IMAGE_SEED)
    images = [make_test_images.render_jpeg(c, check_rng, size=make_test_images.TEST_IMAGE_SIZE,
                                           quality=90) for c in classes]
    top1 = [c.decode() for c in signature(image_bytes=tf.constant(images))["top_k_classes"].numpy()[:, 0]]
    if top1 != classes:
        raise SystemExit(f"image model misclassifies the test images: expected {classes}, got {top1}")
    print(f"image: test images classified correctly ({', '.join(classes)})", flush=True)


# ----------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description="Build the dev/test SavedModels.")
    parser.add_argument("--base", required=True, help="model base directory (TF Serving layout)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="directory with adult.train.csv / adult.test.csv")
    args = parser.parse_args()
    base = os.path.abspath(os.path.expanduser(args.base))
    os.makedirs(base, exist_ok=True)

    script = os.path.abspath(__file__)
    renderer = os.path.abspath(make_test_images.__file__)
    census_files = [os.path.join(args.data, "adult.train.csv"), os.path.join(args.data, "adult.test.csv")]
    for path in census_files:
        if not os.path.exists(path):
            sys.exit(f"missing census data file: {path}")

    start = time.monotonic()
    build_cached(base, "null", sha256_of([script], NULL_PARAMS), build_null)
    build_cached(base, "census", sha256_of([script] + census_files, CENSUS_PARAMS),
                 lambda staging: build_census(args.data, staging))
    build_cached(base, "image", sha256_of([script, renderer], IMAGE_PARAMS), build_image)
    print(f"all models ready in {base} ({time.monotonic() - start:.1f}s)", flush=True)


if __name__ == "__main__":
    main()
