#!/usr/bin/env python3
"""Step 2: train a logistic regression by mini-batch gradient descent.

Reads train.csv from the data directory, standardises every feature (the
means and standard deviations are saved with the model), and minimises
the mean log-loss by mini-batch gradient descent from zero weights.
After every epoch it prints and reports the full training-set loss and
accuracy as metrics "loss" and "train_accuracy" with the epoch as step.
Writes model.json into the data directory.

Epochs and learning rate come from the workflow parameters
($QANAT_PARAM_EPOCHS, $QANAT_PARAM_LR); --epochs and --lr override them.
"""

import argparse
import math
import os
import random
import sys
import time

# Keep the source tree clean: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True

import common  # noqa: E402
from qanat_metrics import report  # noqa: E402


def feature_stats(rows, n_features):
    n = len(rows)
    means = [sum(features[j] for features, _ in rows) / n for j in range(n_features)]
    stds = []
    for j in range(n_features):
        var = sum((features[j] - means[j]) ** 2 for features, _ in rows) / n
        # A constant feature would divide by zero; leave it unscaled.
        stds.append(math.sqrt(var) if var > 1e-24 else 1.0)
    return means, stds


def evaluate(weights, bias, rows):
    """Mean log-loss and accuracy over rows."""
    loss = 0.0
    correct = 0
    for features, label in rows:
        p = common.predict(weights, bias, features)
        p = min(max(p, 1e-12), 1.0 - 1e-12)
        loss -= math.log(p) if label else math.log(1.0 - p)
        correct += (p >= 0.5) == (label == 1)
    return loss / len(rows), correct / len(rows)


def train_epoch(weights, bias, rows, order, lr, batch_size):
    n_features = len(weights)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        grad_w = [0.0] * n_features
        grad_b = 0.0
        for i in batch:
            features, label = rows[i]
            err = common.predict(weights, bias, features) - label
            for j in range(n_features):
                grad_w[j] += err * features[j]
            grad_b += err
        step = lr / len(batch)
        for j in range(n_features):
            weights[j] -= step * grad_w[j]
        bias -= step * grad_b
    return bias


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_arg(parser)
    # String defaults go through type= too, so a bad parameter value gives
    # a usage error rather than a traceback.
    parser.add_argument("--epochs", type=common.positive_int,
                        default=os.environ.get("QANAT_PARAM_EPOCHS", "20"))
    parser.add_argument("--lr", type=common.positive_float,
                        default=os.environ.get("QANAT_PARAM_LR", "0.5"))
    parser.add_argument("--batch-size", type=common.positive_int, default=32)
    parser.add_argument("--seed", type=int, default=os.environ.get("QANAT_PARAM_SEED", "7"),
                        help="seed for the order of the mini-batches")
    parser.add_argument("--model", metavar="PATH",
                        help="where to write the model (default: DATA/model.json)")
    args = parser.parse_args(argv)

    train_path = os.path.join(args.data, "train.csv")
    names, raw = common.read_csv(train_path)
    if len(raw) < 2:
        raise ValueError(f"{train_path}: need at least 2 rows, got {len(raw)}")
    print(f"loaded {len(raw)} rows with {len(names)} features from {train_path}", flush=True)

    means, stds = feature_stats(raw, len(names))
    rows = common.standardize(raw, means, stds)
    weights = [0.0] * len(names)
    bias = 0.0
    rng = random.Random(args.seed)
    order = list(range(len(rows)))
    print(f"training: {args.epochs} epochs, learning rate {args.lr:g}, batch size {args.batch_size}",
          flush=True)

    started = time.monotonic()
    loss = accuracy = float("nan")
    for epoch in range(1, args.epochs + 1):
        rng.shuffle(order)
        bias = train_epoch(weights, bias, rows, order, args.lr, args.batch_size)
        loss, accuracy = evaluate(weights, bias, rows)
        print(f"epoch {epoch:3d}/{args.epochs}  loss {loss:.4f}  train_accuracy {accuracy:.4f}",
              flush=True)
        report("loss", loss, epoch)
        report("train_accuracy", accuracy, epoch)
    elapsed = time.monotonic() - started

    model = {
        "features": names,
        "weights": weights,
        "bias": bias,
        "means": means,
        "stds": stds,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "train_rows": len(rows),
        "train_loss": loss,
        "train_accuracy": accuracy,
    }
    model_path = args.model or os.path.join(args.data, "model.json")
    common.write_json(model_path, model)
    print("weights: " + ", ".join(f"{n}={w:+.3f}" for n, w in zip(names, weights))
          + f", bias={bias:+.3f}", flush=True)
    print(f"trained in {elapsed:.2f}s, model written to {model_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
