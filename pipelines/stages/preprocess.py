"""Stage preprocess: split, fit the scikit-learn transforms on the training split only, write tensors.

    python -m pipelines.stages.preprocess

Outputs (data/features/): train/val/test.safetensors, preprocessor.skops, meta.json (task specs,
feature schema, row counts). The validation split is carved out of the training file by a seeded,
stratified split, so the same params give the same rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from mtl_core.bundle import ModelBundle
from mtl_core.data import TARGET_PREFIX
from mtl_core.preprocessing import FeaturePreprocessor
from mtl_core.tasks import encode_targets, fit_tasks
from pipelines.io import FEATURES_DIR, read_table, table_files
from pipelines.params import Params
from pipelines.stages._entry import StageError, console, stage_main


def with_batches(source: pd.DataFrame, params: Params, root: Path) -> pd.DataFrame:
    """The training file's rows followed by those of each accepted batch in ``data.batches``, in arrival order.

    With no batches (no folder, or no table files in it) the training file is returned as it is, so the
    demo's split and results are unchanged. Batches may carry extra columns; only the training file's are kept.
    """
    if params.data.batches is None:
        return source
    frames = {path: read_table(path, params) for path in table_files(root / params.data.batches)}
    if not frames:
        return source
    for path, frame in frames.items():
        missing = sorted(set(source.columns) - set(frame.columns))
        if missing:
            raise StageError(f"{path}: accepted batch lacks training columns {missing}")
    return pd.concat([source] + [f[source.columns] for f in frames.values()], ignore_index=True)


def split_frames(params: Params, root: Path) -> dict[str, pd.DataFrame]:
    """train / val / test frames, deterministic for the same params."""
    data = params.data
    source = with_batches(read_table(root / data.train, params), params, root)
    if data.split_column:
        if data.split_column not in source.columns:
            raise StageError(f"{data.train}: split column {data.split_column!r} not found")
        labels = source[data.split_column].astype("string").replace(data.split_values)
        frames = {s: source[labels == s].reset_index(drop=True) for s in ("train", "val", "test")}
    else:
        test = read_table(root / data.test, params)
        stratify = None
        if data.stratify:
            task = params.tasks[data.stratify]
            stratify = source[task.column].astype("string").fillna("<missing>")
        train, val = train_test_split(
            source, test_size=data.val_fraction, random_state=data.split_seed, stratify=stratify
        )
        frames = {"train": train.reset_index(drop=True), "val": val.reset_index(drop=True), "test": test}
    if data.subsample:
        frames = {k: f.sample(n=min(len(f), data.subsample), random_state=data.split_seed).reset_index(drop=True)
                  for k, f in frames.items()}
    empty = [k for k, f in frames.items() if f.empty]
    if empty:
        raise StageError(f"split(s) {empty} have no rows; check data.{data.split_column or 'test'}")
    return frames


def run(params: Params, root: Path) -> dict[str, int]:
    frames = split_frames(params, root)
    if params.data.preprocessor_from is not None:
        # Fine-tuning: encode exactly as the starting model's data was encoded (category codes, scaling).
        source = ModelBundle.load(params.data.preprocessor_from)
        preprocessor, specs = source.preprocessor, source.tasks
    else:
        preprocessor = FeaturePreprocessor(params.features).fit(frames["train"])
        specs = fit_tasks(params.tasks, frames["train"])
    out = root / FEATURES_DIR
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, frame in frames.items():
        table = preprocessor.transform(frame)
        for name, target in encode_targets(specs, frame).items():
            table.tensors[TARGET_PREFIX + name] = torch.from_numpy(np.array(target, copy=True))
        table.save(out / f"{split}.safetensors")
        counts[split] = len(frame)
    preprocessor.save(out / "preprocessor.skops")
    meta = {"rows": counts, "tasks": [asdict(s) for s in specs], "feature_schema": preprocessor.schema.to_dict()}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    console.print(f"preprocess: {counts} rows -> {FEATURES_DIR}/")
    return counts


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
