"""Small real model bundles for tests, built with mtl_core on a few hundred Adult rows (untrained weights:
the tests here are about files, safety and plumbing, not quality)."""

from __future__ import annotations

from pathlib import Path

import torch

from mtl_core.architectures import build_model
from mtl_core.bundle import ModelBundle
from mtl_core.preprocessing import FeaturePreprocessor
from mtl_core.tasks import fit_tasks
from pipelines.io import read_table
from pipelines.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def adult_rows(n: int = 400):
    params = load_params(ROOT / "params.yaml")
    return read_table(ROOT / params.data.test, params).head(n).reset_index(drop=True)


def make_bundle(dest: Path, seed: int = 0, rows: int = 400) -> Path:
    params = load_params(ROOT / "params.yaml")
    frame = adult_rows(rows)
    preprocessor = FeaturePreprocessor(params.features).fit(frame)
    tasks = fit_tasks(params.tasks, frame)
    torch.manual_seed(seed)
    model = build_model(schema=preprocessor.schema, tasks=tasks, config=params.model)
    bundle = ModelBundle(model, tasks, preprocessor.schema, params.model, params.features, preprocessor,
                         {"seed": seed})
    return bundle.save(dest)
