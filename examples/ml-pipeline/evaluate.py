#!/usr/bin/env python3
"""Step 3: evaluate the trained model on the held-out test set.

Loads model.json and test.csv from the data directory, classifies every
test row (probability >= 0.5 means class 1), prints the confusion matrix
and reports the metrics accuracy, precision, recall and f1 (class 1 is
the positive class).  The workflow's checks are evaluated on these.

A missing model (train did not run, or used another data directory) is
an ordinary Python error: the traceback shows up in the task's logs.
"""

import argparse
import os
import sys

# Keep the source tree clean: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True

import common  # noqa: E402
from qanat_metrics import report  # noqa: E402


def confusion(model, rows):
    """Returns (tp, fp, fn, tn)."""
    tp = fp = fn = tn = 0
    for features, label in rows:
        predicted = common.predict(model["weights"], model["bias"], features) >= 0.5
        if predicted and label:
            tp += 1
        elif predicted:
            fp += 1
        elif label:
            fn += 1
        else:
            tn += 1
    return tp, fp, fn, tn


def ratio(num, den):
    # No positive predictions (or no positives) means precision (or
    # recall) of 0, not a division error.
    return num / den if den else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_arg(parser)
    parser.add_argument("--model", metavar="PATH",
                        help="the model to evaluate (default: DATA/model.json)")
    args = parser.parse_args(argv)

    model = common.read_json(args.model or os.path.join(args.data, "model.json"))
    test_path = os.path.join(args.data, "test.csv")
    names, raw = common.read_csv(test_path)
    if names != model["features"]:
        raise ValueError(f"{test_path}: features {names} do not match the model's {model['features']}")
    if not raw:
        raise ValueError(f"{test_path}: no rows")
    rows = common.standardize(raw, model["means"], model["stds"])
    epochs = model["epochs"]
    print(f"evaluating model ({epochs} epoch{'s' if epochs != 1 else ''}, lr {model['lr']:g}) "
          f"on {len(rows)} test rows", flush=True)

    tp, fp, fn, tn = confusion(model, rows)
    accuracy = (tp + tn) / len(rows)
    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1 = ratio(2 * precision * recall, precision + recall)

    print("confusion matrix (rows: actual, columns: predicted)", flush=True)
    print(f"{'':>10} {'pred 0':>8} {'pred 1':>8}")
    print(f"{'actual 0':>10} {tn:>8} {fp:>8}")
    print(f"{'actual 1':>10} {fn:>8} {tp:>8}", flush=True)
    for name, value in (("accuracy", accuracy), ("precision", precision),
                        ("recall", recall), ("f1", f1)):
        print(f"{name:<10} {value:.4f}", flush=True)
        report(name, value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
