"""Quality benchmark: every architecture (and task attention with every weighting) on the bundled examples,
several seeds, with scikit-learn baselines measured in the same run.

    .venv/bin/python bench/quality.py            # full settings
    .venv/bin/python bench/quality.py --quick    # fewer epochs (fits ~15 minutes on 2 cores)

Prints one table per data set: each task's primary test metric, mean +- std over seeds, and the mean over
tasks. Data, splits and features are exactly the pipeline's (bench/datasets.py); the models use each example's
params.yaml, with only the architecture, weighting, seed and the epoch budget changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import normalize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import Dataset, load_dataset  # noqa: E402
from mtl_core.architectures import build_model  # noqa: E402
from mtl_core.config import LOWER_IS_BETTER  # noqa: E402
from mtl_core.tasks import MISSING_CLASS, TaskSpec  # noqa: E402
from mtl_core.trainer import Trainer  # noqa: E402

METHODS = [
    ("single_task", "equal"), ("shared_bottom", "equal"), ("mmoe", "equal"), ("ple", "equal"),
    ("task_attention", "equal"), ("task_attention", "uncertainty"), ("task_attention", "dwa"),
    ("task_attention", "gradnorm"), ("task_attention", "pcgrad"),
]
# Epoch budgets (early stopping on the validation score still applies). Everything else comes from params.yaml.
BUDGETS = {
    "full": {"adult": {"epochs": 20, "patience": 4}, "clinc150": {"epochs": 30, "patience": 5}},
    "quick": {"adult": {"epochs": 6, "patience": 3},
              "clinc150": {"epochs": 10, "patience": 3, "batch_size": 256, "learning_rate": 0.02}},
}
BASELINE_NAMES = {"adult": "HistGradientBoosting (per task)", "clinc150": "LogisticRegression (per task)"}


@lru_cache(maxsize=2)
def _cached(name: str) -> Dataset:
    return load_dataset(name)


def _job(ds_name: str, architecture: str, weighting: str, seed: int, budget: dict, threads: int) -> tuple:
    """One training run in a worker process: (seconds, metrics)."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    metrics = train_and_test(_cached(ds_name), architecture, weighting, seed, budget)
    return time.perf_counter() - start, metrics


def train_and_test(ds: Dataset, architecture: str, weighting: str, seed: int, budget: dict) -> dict[str, float]:
    """Train one model and return each task's primary metric on the test split."""
    model_cfg = ds.params.model.model_copy(update={"architecture": architecture})
    train_cfg = ds.params.train.model_copy(
        update={"weighting": weighting, "seed": seed, "checkpoint_dir": None, **budget}
    )
    torch.manual_seed(seed)
    model = build_model(schema=ds.schema, tasks=ds.tasks, config=model_cfg)
    trainer = Trainer(model=model, tasks=ds.tasks, config=train_cfg, progress=False)
    trainer.fit(ds.tables["train"], ds.tables["val"])
    metrics, _ = trainer.evaluate(ds.tables["test"])
    return {t.name: metrics[t.name][t.primary_metric] for t in ds.tasks}


def _baseline_features(ds: Dataset) -> dict[str, object]:
    """Adult: the preprocessed numeric columns and categorical codes; CLINC150: the same hashed n-gram counts
    the network's EmbeddingBag reads, l2-normalised per row (the usual input scaling for a linear model)."""
    out = {}
    for split, frame in ds.frames.items():
        if ds.schema.text:
            column = ds.schema.text[0]
            texts = frame[column].astype("string").fillna("").to_numpy(dtype=object)
            out[split] = normalize(ds.preprocessor.text[column].transform(texts))
        else:
            t = ds.tables[split].tensors
            out[split] = np.hstack([t["x_num"].numpy(), t["x_cat"].numpy().astype(np.float64)])
    return out


def _fit_predict(ds: Dataset, task: TaskSpec, x_train, y_train, x_test, seed: int) -> np.ndarray:
    n_num = len(ds.schema.numeric)
    categorical = [False] * n_num + [True] * len(ds.schema.categorical)
    keep = ~np.isnan(y_train) if task.type != "multiclass" else y_train != MISSING_CLASS
    x_train, y_train = x_train[keep], y_train[keep]
    if task.type == "regression":
        model = (Ridge() if ds.schema.text else
                 HistGradientBoostingRegressor(categorical_features=categorical, random_state=seed))
        return model.fit(x_train, y_train).predict(x_test) * task.std + task.mean
    if ds.schema.text:
        model = LogisticRegression(C=10.0, max_iter=300)
    else:
        model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=seed)
    model.fit(x_train, y_train.astype(int))
    proba = model.predict_proba(x_test)
    if task.type == "binary":
        return proba[:, list(model.classes_).index(1)]
    full = np.zeros((x_test.shape[0], task.output_dim))
    full[:, model.classes_.astype(int)] = proba  # classes absent from training get probability 0
    return full


def baseline(ds: Dataset, seed: int) -> dict[str, float]:
    x = _baseline_features(ds)
    out = {}
    for task in ds.tasks:
        y_train = ds.tables["train"].targets[task.name].numpy()
        y_test = ds.tables["test"].targets[task.name].numpy()
        prediction = _fit_predict(ds, task, x["train"], y_train, x["test"], seed)
        out[task.name] = task.kind.metrics(task, y_test, prediction)[task.primary_metric]
    return out


def _fmt(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def table(ds_name: str, tasks: list[TaskSpec], results: dict[str, list[dict[str, float]]],
          seconds: dict[str, float]) -> str:
    """Markdown table: one row per method, each task's primary metric and the mean over tasks (mean ± std)."""
    heads = [f"{t.name} ({t.primary_metric})" for t in tasks]
    lines = [f"| {ds_name} | " + " | ".join(heads) + " | mean over tasks | s / run |",
             "|---" * (len(heads) + 3) + "|"]
    for method, runs in results.items():
        cells = [_fmt([r[t.name] for r in runs]) for t in tasks]
        # Lower-is-better metrics would enter the mean negated; every primary metric here is higher-is-better.
        means = [np.mean([(-r[t.name] if t.primary_metric in LOWER_IS_BETTER else r[t.name]) for t in tasks])
                 for r in runs]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {_fmt(means)} | {seconds[method]:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the reduced epoch budget (see BUDGETS)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", default=["adult", "clinc150"])
    parser.add_argument("--methods", nargs="+", default=None, help="e.g. shared_bottom+equal task_attention+dwa")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a shared or small machine: no thread contention)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (worker processes)")
    parser.add_argument("--out", type=Path, default=None, help="also write the raw results as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    methods = [tuple(m.split("+")) for m in args.methods] if args.methods else METHODS
    raw: dict = {"mode": mode, "seeds": args.seeds, "budgets": BUDGETS[mode], "results": {}}
    started = time.perf_counter()
    for ds_name in args.datasets:
        ds = load_dataset(ds_name)
        budget = BUDGETS[mode][ds_name]
        results: dict[str, list[dict[str, float]]] = {}
        seconds: dict[str, float] = {}
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = {(a, w, s): pool.submit(_job, ds_name, a, w, s, budget, args.threads)
                       for a, w in methods for s in range(args.seeds)}
            for architecture, weighting in methods:
                name = f"{architecture} + {weighting}"
                runs = [futures[(architecture, weighting, s)].result() for s in range(args.seeds)]
                results[name] = [metrics for _, metrics in runs]
                seconds[name] = float(np.mean([secs for secs, _ in runs]))
                print(f"  {ds_name}: {name}: {results[name]} ({seconds[name]:.0f} s/run)", file=sys.stderr,
                      flush=True)
        t0 = time.perf_counter()
        label = f"baseline: {BASELINE_NAMES[ds_name]}"
        results[label] = [baseline(ds, s) for s in range(args.seeds)]
        seconds[label] = (time.perf_counter() - t0) / args.seeds
        raw["results"][ds_name] = results
        print(f"\n### {ds_name} ({len(ds.tables['train'])} train / {len(ds.tables['val'])} val / "
              f"{len(ds.tables['test'])} test rows; {mode}: {budget}, {args.seeds} seeds)\n")
        print(table(ds_name, ds.tasks, results, seconds), flush=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s wall, {args.jobs} parallel runs x {args.threads} torch thread(s)")
    if args.out:
        args.out.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
