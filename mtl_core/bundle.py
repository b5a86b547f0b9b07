"""The model bundle: a directory that holds everything needed to score raw rows, and loads without pickle.

    model.json            architecture and model config, task specs, feature schema, library versions,
                          sha256 of the other files, free-form lineage
    weights.safetensors   model state (tensors only)
    preprocessor.skops    fitted scikit-learn transforms (allow-listed types only)
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch
from safetensors.torch import load_file, save_file

from mtl_core.architectures import MultiTaskModel, build_model
from mtl_core.config import FeaturesConfig, ModelConfig
from mtl_core.preprocessing import FeaturePreprocessor, FeatureSchema
from mtl_core.tasks import TaskSpec
from mtl_core.trainer import predict

FORMAT_VERSION = 1
WEIGHTS, PREPROCESSOR, DESCRIPTION = "weights.safetensors", "preprocessor.skops", "model.json"


class BundleError(ValueError):
    """The bundle is incomplete, tampered with, or does not match what it describes."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelBundle:
    model: MultiTaskModel
    tasks: list[TaskSpec]
    schema: FeatureSchema
    model_config: ModelConfig
    features_config: FeaturesConfig
    preprocessor: FeaturePreprocessor
    lineage: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(directory / WEIGHTS))
        self.preprocessor.save(directory / PREPROCESSOR)
        description = {
            "format_version": FORMAT_VERSION,
            "architecture": self.model_config.architecture,
            "model_config": self.model_config.model_dump(by_alias=True),
            "features_config": self.features_config.model_dump(),
            "tasks": [asdict(t) for t in self.tasks],
            "feature_schema": self.schema.to_dict(),
            "versions": {"torch": torch.__version__, "sklearn": sklearn.__version__,
                         "python": platform.python_version()},
            "checksums": {WEIGHTS: sha256(directory / WEIGHTS), PREPROCESSOR: sha256(directory / PREPROCESSOR)},
            "lineage": self.lineage,
        }
        (directory / DESCRIPTION).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "ModelBundle":
        """Load and verify a bundle.

        Raises:
            BundleError: a file is missing, a checksum differs, or the weights do not fit the description.
        """
        directory = Path(directory)
        for name in (DESCRIPTION, WEIGHTS, PREPROCESSOR):
            if not (directory / name).is_file():
                raise BundleError(f"{directory}: missing {name}")
        try:
            description = json.loads((directory / DESCRIPTION).read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{directory / DESCRIPTION}: not valid JSON ({exc})") from exc
        if description.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{directory}: unsupported bundle format {description.get('format_version')!r}")
        for name, expected in description["checksums"].items():
            actual = sha256(directory / name)
            if actual != expected:
                raise BundleError(f"{directory / name}: checksum mismatch (expected {expected[:12]}, got {actual[:12]})")
        tasks = [TaskSpec(**t) for t in description["tasks"]]
        schema = FeatureSchema(**description["feature_schema"])
        model_config = ModelConfig.model_validate(description["model_config"])
        features_config = FeaturesConfig.model_validate(description["features_config"])
        model = build_model(schema=schema, tasks=tasks, config=model_config)
        try:
            model.load_state_dict(load_file(str(directory / WEIGHTS)))
        except (RuntimeError, ValueError) as exc:
            raise BundleError(f"{directory / WEIGHTS}: weights do not match the described model: {exc}") from exc
        model.eval()
        preprocessor = FeaturePreprocessor.load(directory / PREPROCESSOR, features_config)
        return cls(model, tasks, schema, model_config, features_config, preprocessor, description.get("lineage", {}))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score raw rows: per binary task ``<task>_proba`` and ``<task>_pred``; per multiclass task the
        probability of each class and the predicted class; per regression task the value."""
        table = self.preprocessor.transform(frame)
        predictions, _ = predict(self.model, self.tasks, table)
        columns: dict[str, np.ndarray] = {}
        for t in self.tasks:
            p = predictions[t.name]
            if t.type == "binary":
                columns[f"{t.name}_proba"] = p
                columns[f"{t.name}_pred"] = (p >= 0.5).astype(np.int64)
            elif t.type == "multiclass":
                for i, c in enumerate(t.classes):
                    columns[f"{t.name}_proba_{c}"] = p[:, i]
                columns[f"{t.name}_pred"] = np.asarray(t.classes, dtype=object)[p.argmax(axis=1)]
            else:
                columns[f"{t.name}_pred"] = p
        return pd.DataFrame(columns, index=frame.index)
