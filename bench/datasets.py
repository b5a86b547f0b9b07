"""Load a bundled example into tensors exactly as the pipeline's preprocess stage does (same split, same
transforms fitted on the training split), without DVC: the benchmarks measure the library, not the workflow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtl_core.data import TARGET_PREFIX, TensorTable
from mtl_core.preprocessing import FeaturePreprocessor, FeatureSchema
from mtl_core.tasks import TaskSpec, encode_targets, fit_tasks
from pipelines.params import Params, load_params
from pipelines.stages.preprocess import split_frames

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"adult": ROOT / "params.yaml", "clinc150": ROOT / "examples" / "clinc150" / "params.yaml"}


@dataclass
class Dataset:
    name: str
    params: Params
    tasks: list[TaskSpec]
    schema: FeatureSchema
    preprocessor: FeaturePreprocessor
    frames: dict[str, pd.DataFrame]
    tables: dict[str, TensorTable]


def load_dataset(name: str) -> Dataset:
    """Split, fit the preprocessing on train, and encode every split of a bundled example.

    Raises:
        ValueError: ``name`` is not a bundled example.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}")
    path = DATASETS[name]
    params = load_params(path)
    frames = split_frames(params, path.parent)
    preprocessor = FeaturePreprocessor(params.features).fit(frames["train"])
    tasks = fit_tasks(params.tasks, frames["train"])
    tables = {}
    for split, frame in frames.items():
        table = preprocessor.transform(frame)
        for task, target in encode_targets(tasks, frame).items():
            table.tensors[TARGET_PREFIX + task] = torch.from_numpy(np.array(target, copy=True))
        tables[split] = table
    return Dataset(name, params, tasks, preprocessor.schema, preprocessor, frames, tables)
