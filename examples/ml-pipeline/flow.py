#!/usr/bin/env python3
"""The ml-pipeline example as a Python flow: the same three steps as
workflow.yaml (prepare, train, evaluate), the same parameters and the
same numbers (accuracy 0.9325 with the defaults), written as ops.

    python3 examples/ml-pipeline/flow.py preview   # here, now, no coordinator
    python3 examples/ml-pipeline/flow.py yaml      # the workflow it generates
    python3 examples/ml-pipeline/flow.py run [epochs=2 lr=0.1]   # on the agents

`run` talks to the coordinator's HTTP API: set QANAT_URL and QANAT_TOKEN
(an API token, `qanat apitoken create me`) or use a `qanat context`.
The step scripts beside this file (prepare.py, train.py, evaluate.py)
hold the maths; the ops call their functions.
"""

import os
import random
import sys

try:
    import qanat
except ImportError:     # a checkout without `pip install ./python`: its own package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "python"))
    import qanat

import common
import evaluate as evaluate_step
import prepare as prepare_step
import train as train_step


@qanat.op(cache=True)
def prepare(seed: int, rows: int = 2000, test_fraction: float = 0.2,
            label_noise: float = 0.03) -> qanat.Dir:
    """Draws the synthetic data set; returns the folder with train.csv
    and test.csv."""
    data, flipped = prepare_step.generate(seed, rows, label_noise)
    print(f"generated {rows} rows with seed {seed}, flipped {flipped} labels", flush=True)
    n_test = max(1, round(rows * test_fraction))
    train, test = data[:-n_test], data[-n_test:]
    os.makedirs("dataset", exist_ok=True)
    header = prepare_step.FEATURES + ["label"]
    common.write_csv(os.path.join("dataset", "train.csv"), header, train)
    common.write_csv(os.path.join("dataset", "test.csv"), header, test)
    print(f"train: {prepare_step.balance(train)}", flush=True)
    print(f"test:  {prepare_step.balance(test)}", flush=True)
    return qanat.Dir("dataset")


@qanat.op(retries=1, timeout="10m")
def train(data: qanat.Dir, epochs: int, lr: float, seed: int,
          batch_size: int = 32) -> qanat.File:
    """Fits a logistic regression by mini-batch gradient descent,
    reporting loss and train_accuracy per epoch; returns model.json."""
    names, raw = common.read_csv(os.path.join(data, "train.csv"))
    means, stds = train_step.feature_stats(raw, len(names))
    rows = common.standardize(raw, means, stds)
    weights, bias = [0.0] * len(names), 0.0
    rng = random.Random(seed)
    order = list(range(len(rows)))
    loss = accuracy = float("nan")
    for epoch in range(1, epochs + 1):
        rng.shuffle(order)
        bias = train_step.train_epoch(weights, bias, rows, order, lr, batch_size)
        loss, accuracy = train_step.evaluate(weights, bias, rows)
        print(f"epoch {epoch:3d}/{epochs}  loss {loss:.4f}  train_accuracy {accuracy:.4f}",
              flush=True)
        qanat.log_metric("loss", loss, epoch)
        qanat.log_metric("train_accuracy", accuracy, epoch)
    common.write_json("model.json", {
        "features": names, "weights": weights, "bias": bias, "means": means, "stds": stds,
        "epochs": epochs, "lr": lr, "batch_size": batch_size, "train_rows": len(rows),
        "train_loss": loss, "train_accuracy": accuracy})
    return qanat.File("model.json")


@qanat.metric
def evaluate(model: qanat.File, data: qanat.Dir) -> dict:
    """Scores the model on the held-out rows: accuracy, precision,
    recall and f1, each reported as a metric."""
    fitted = common.read_json(model)
    names, raw = common.read_csv(os.path.join(data, "test.csv"))
    rows = common.standardize(raw, fitted["means"], fitted["stds"])
    tp, fp, fn, tn = evaluate_step.confusion(fitted, rows)
    precision = evaluate_step.ratio(tp, tp + fp)
    recall = evaluate_step.ratio(tp, tp + fn)
    print(f"confusion matrix: tn {tn} fp {fp} / fn {fn} tp {tp}", flush=True)
    return {"accuracy": (tp + tn) / len(rows), "precision": precision, "recall": recall,
            "f1": evaluate_step.ratio(2 * precision * recall, precision + recall)}


@qanat.check(severity="error")
def accurate_enough(scores: dict) -> bool:
    """The run fails below 85% test accuracy."""
    return scores["accuracy"] >= 0.85


@qanat.check(severity="warning")
def f1_good(scores: dict) -> bool:
    """Only a warning below an f1 of 0.85."""
    return scores["f1"] >= 0.85


with qanat.Flow("ml-pipeline-py", params={"epochs": 20, "lr": 0.5, "seed": 7},
                description="The ml-pipeline example, written as Python ops") as flow:
    dataset = prepare(flow.params.seed)
    model = train(dataset, flow.params.epochs, flow.params.lr, flow.params.seed)
    scores = evaluate(model, dataset)
    accurate_enough(scores)
    f1_good(scores)


def main(argv):
    command = argv[0] if argv else "preview"
    params = dict(arg.split("=", 1) for arg in argv[1:])
    if command == "preview":
        result = flow.preview(params=params)
        return 0 if result.status != "failed" else 1
    if command == "yaml":
        print(flow.to_yaml(), end="")
        return 0
    if command == "run":
        run = flow.run(params=params, follow=True)
        for name in ("accuracy", "precision", "recall", "f1"):
            points = run.metrics().get(name) or [{"value": float("nan")}]
            print(f"{name:<10} {points[-1]['value']:.4f}")
        return 0 if run.status.startswith("succeeded") else 1
    if command == "publish":
        stored = flow.publish()
        print(f"{stored['name']} v{stored['version']} "
              f"({'new' if stored['created'] else 'unchanged'}): "
              f"run it by name with 'qanat run {stored['name']}'")
        return 0
    print("usage: flow.py preview|yaml|run|publish [NAME=VALUE ...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
