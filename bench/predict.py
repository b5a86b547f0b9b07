"""Prediction throughput: `mtl predict`'s code path against a bare torch forward pass of the same model.

    .venv/bin/python bench/predict.py [--rows 1000000] [--repeats 2]

Rows are Adult training rows drawn with replacement. The model is the demo architecture from params.yaml with
its preprocessing fitted on the Adult training file (untrained weights: speed does not depend on them).

- bare forward: the model on tensors prepared beforehand (no preprocessing), batches of EVAL_BATCH, no_grad;
- predict (in memory): ``pipelines.predict.score_frame``: schema check, scikit-learn preprocessing, forward,
  output columns; what `mtl predict` does between reading and writing;
- predict (Parquet file to file): ``pipelines.predict.predict_file``, the whole command: registry lookup,
  bundle load and verification, read, score, write.

The ratio is rows/s of a predict path over rows/s of the bare forward pass (target >= 0.5 in memory).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mtl_core.architectures import build_model  # noqa: E402
from mtl_core.bundle import ModelBundle  # noqa: E402
from mtl_core.data import iter_batches, split_targets  # noqa: E402
from mtl_core.preprocessing import FeaturePreprocessor  # noqa: E402
from mtl_core.tasks import fit_tasks  # noqa: E402
from mtl_core.trainer import EVAL_BATCH  # noqa: E402
from pipelines.io import read_table  # noqa: E402
from pipelines.params import load_params  # noqa: E402
from pipelines.predict import predict_file, score_frame  # noqa: E402
from pipelines.registry import Registry  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def bare_forward(model, table) -> None:
    for batch in iter_batches(table, batch_size=EVAL_BATCH):
        inputs, _ = split_targets(batch)
        model(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    params = load_params(ROOT / "params.yaml")
    source = read_table(ROOT / params.data.train, params)
    preprocessor = FeaturePreprocessor(params.features).fit(source)
    tasks = fit_tasks(params.tasks, source)
    torch.manual_seed(0)
    model = build_model(schema=preprocessor.schema, tasks=tasks, config=params.model).eval()
    bundle = ModelBundle(model, tasks, preprocessor.schema, params.model, params.features, preprocessor)
    frame = source.sample(n=args.rows, replace=True, random_state=0).reset_index(drop=True)
    frame = frame[bundle.input_columns]
    table = preprocessor.transform(frame)  # prepared outside the timing of the bare forward pass

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        registry = Registry(tmp / "registry")
        registry.promote(registry.register(bundle.save(tmp / "bundle"), {"note": "benchmark"}))
        params.registry.path = registry.path
        frame.to_parquet(tmp / "rows.parquet", index=False)
        paths = {
            "bare torch forward (tensors ready)": lambda: bare_forward(model, table),
            "mtl predict path, in memory": lambda: score_frame(bundle, frame),
            "mtl predict, Parquet file to file": lambda: predict_file(tmp / "rows.parquet", tmp / "out.parquet",
                                                                      params, tmp),
        }
        # Interleaved repeats, best of each: on a shared machine, load comes and goes; the paths see the same.
        best = {name: timed(fn) for name, fn in paths.items()}
        for _ in range(args.repeats - 1):
            for name, fn in paths.items():
                best[name] = min(best[name], timed(fn))
    results = list(best.items())
    bare = best["bare torch forward (tensors ready)"]
    print(f"\nPrediction throughput, {args.rows:,} rows, {torch.get_num_threads()} torch threads, "
          f"best of {args.repeats}, torch {torch.__version__}\n")
    print(f"| {'path':<36} | {'seconds':>8} | {'rows/s':>10} | {'ratio to bare':>13} |")
    print(f"|{'-' * 38}|{'-' * 10}:|{'-' * 12}:|{'-' * 15}:|")
    for name, seconds in results:
        print(f"| {name:<36} | {seconds:8.2f} | {args.rows / seconds:10,.0f} | {bare / seconds:13.2f} |")


if __name__ == "__main__":
    main()
