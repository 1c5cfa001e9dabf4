#!/usr/bin/env python3
"""Step 1: generate a synthetic binary classification data set.

Two overlapping Gaussian classes in 6 dimensions, drawn deterministically
from --seed:

  f1, f2  a strongly correlated pair.  The classes differ a little along
          the pair's long axis and a lot along its short axis, so the
          naive direction (difference of class means) separates them
          poorly; logistic regression has to learn to weigh f1 against f2.
  f3, f4  independent, weakly informative.
  f5, f6  pure noise.

Every feature then gets its own scale and offset (standardisation is part
of the model), and a fraction of labels is flipped at random, so no model
can be perfect.  The rows are split into train.csv and test.csv in the
data directory.
"""

import argparse
import math
import os
import random
import sys

# Keep the source tree clean: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True

import common  # noqa: E402

FEATURES = ["f1", "f2", "f3", "f4", "f5", "f6"]

# Class 1 is a little rarer than class 0.
CLASS1_PRIOR = 0.45
# Correlated pair: standard deviations along its long and short axes, and
# half the class separation along each.
PAIR_SD_LONG, PAIR_SD_SHORT = 3.0, 0.45
PAIR_SHIFT_LONG, PAIR_SHIFT_SHORT = 0.75, 0.8
# Half the class separation of f3 and f4 (unit variance).
SHIFT_F3, SHIFT_F4 = 0.35, 0.15
# Per-feature scale and offset applied last.
SCALES = [12.0, 12.0, 0.5, 3.0, 40.0, 0.01]
OFFSETS = [50.0, 48.0, -2.0, 10.0, 300.0, 0.2]


def draw(rng, label):
    sign = 1.0 if label else -1.0
    along = sign * PAIR_SHIFT_LONG + rng.gauss(0.0, PAIR_SD_LONG)
    across = sign * PAIR_SHIFT_SHORT + rng.gauss(0.0, PAIR_SD_SHORT)
    raw = [
        (along + across) / math.sqrt(2.0),
        (along - across) / math.sqrt(2.0),
        sign * SHIFT_F3 + rng.gauss(0.0, 1.0),
        sign * SHIFT_F4 + rng.gauss(0.0, 1.0),
        rng.gauss(0.0, 1.0),
        rng.gauss(0.0, 1.0),
    ]
    return [x * s + o for x, s, o in zip(raw, SCALES, OFFSETS)]


def generate(seed, rows, noise):
    rng = random.Random(seed)
    data = []
    flipped = 0
    for _ in range(rows):
        label = 1 if rng.random() < CLASS1_PRIOR else 0
        features = draw(rng, label)
        if rng.random() < noise:
            label = 1 - label
            flipped += 1
        data.append((features, label))
    return data, flipped


def balance(rows):
    ones = sum(label for _, label in rows)
    return f"{len(rows)} rows, class 0: {len(rows) - ones}, class 1: {ones} ({ones / len(rows):.1%} positive)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_arg(parser)
    # A string default goes through type= too, so a bad $QANAT_PARAM_SEED
    # gives a usage error rather than a traceback.
    parser.add_argument("--seed", type=int, default=os.environ.get("QANAT_PARAM_SEED", "7"))
    parser.add_argument("--rows", type=common.positive_int, default=2000)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--label-noise", type=float, default=0.03,
                        help="fraction of labels flipped at random")
    args = parser.parse_args(argv)
    if not 0.0 < args.test_fraction < 1.0:
        parser.error("--test-fraction must be between 0 and 1")
    if not 0.0 <= args.label_noise < 0.5:
        parser.error("--label-noise must be in [0, 0.5)")

    print(f"generating {args.rows} rows with seed {args.seed} "
          f"({len(FEATURES)} features, label noise {args.label_noise:.0%})", flush=True)
    data, flipped = generate(args.seed, args.rows, args.label_noise)
    print(f"flipped {flipped} labels", flush=True)

    n_test = max(1, round(args.rows * args.test_fraction))
    train, test = data[:-n_test], data[-n_test:]
    if len(train) < 2:
        parser.error("too few rows left for training")

    os.makedirs(args.data, exist_ok=True)
    header = FEATURES + ["label"]
    train_path = os.path.join(args.data, "train.csv")
    test_path = os.path.join(args.data, "test.csv")
    common.write_csv(train_path, header, train)
    print(f"train: {balance(train)} -> {train_path}", flush=True)
    common.write_csv(test_path, header, test)
    print(f"test:  {balance(test)} -> {test_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
