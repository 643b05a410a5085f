"""Synthetic colour images: the renderer the `image` model trains on, and a CLI
that writes a few fixed test JPEGs plus expected.json (file -> expected top-1 class).

    python make_test_images.py --out data/images

The class of an image is its background colour; small shapes of other colours
and pixel noise are drawn on top so the classifier has to look past them.
build_models.py imports COLOURS and render_jpeg from here, so the training data
and the test images come from one definition (and this file is part of the
image model's build hash).
"""

import argparse
import io
import json
import os

import numpy as np
from PIL import Image, ImageDraw

# Class name -> nominal RGB. The order is the model's class index order.
COLOURS = {
    "red": (215, 35, 35),
    "green": (40, 165, 50),
    "blue": (35, 65, 205),
    "yellow": (235, 215, 45),
    "black": (20, 20, 20),
    "white": (240, 240, 240),
}

# Fixed so the committed test images are reproducible byte for byte.
TEST_IMAGE_SEED = 20240611
TEST_IMAGE_SIZE = 64


def render_jpeg(colour, rng, size=None, quality=None):
    """Encode one image of class `colour` as JPEG bytes.

    rng: a numpy Generator (all randomness comes from it). size/quality are
    drawn from rng when not given. Background is the class colour jittered by
    up to +-30 per channel; 0-2 shapes, each at most a third of a side, in a
    random colour; Gaussian pixel noise on top.
    """
    size = size or int(rng.integers(24, 97))
    quality = quality or int(rng.integers(70, 96))
    base = np.array(COLOURS[colour], dtype=np.int16) + rng.integers(-30, 31, 3)
    img = Image.new("RGB", (size, size), tuple(int(c) for c in np.clip(base, 0, 255)))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 3))):
        w, h = (int(v) for v in rng.integers(size // 8, size // 3 + 1, 2))
        x, y = (int(v) for v in rng.integers(0, size - min(w, h), 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x, y, x + w, y + h], fill=fill)
    pixels = np.asarray(img, dtype=np.float32) + rng.normal(0.0, 12.0, (size, size, 3))
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    noisy.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_test_images(out_dir):
    """Write <colour>.jpg for every class and expected.json; returns the mapping."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(TEST_IMAGE_SEED)
    expected = {}
    for colour in COLOURS:
        name = f"{colour}.jpg"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(render_jpeg(colour, rng, size=TEST_IMAGE_SIZE, quality=90))
        expected[name] = colour
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    return expected


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to write the JPEGs into")
    args = parser.parse_args()
    expected = write_test_images(args.out)
    print(f"wrote {len(expected)} images + expected.json to {args.out}")


if __name__ == "__main__":
    main()
