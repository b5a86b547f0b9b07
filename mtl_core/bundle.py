"""The model bundle: a directory that holds everything needed to score raw rows, and loads without pickle.

    model.json            architecture and model config, task specs, feature schema, library versions,
                          sha256 of the other files, free-form lineage
    weights.safetensors   model state (tensors only)
    preprocessor.skops    fitted scikit-learn transforms (allow-listed types only)

Loading refuses, with a ``BundleError`` that names the file: any other file (a dropped-in ``.pkl``/``.pt`` is
exactly what an attacker would add), symlinks and sub-directories, a checksum that differs or is absent, a
preprocessor holding a type outside the skops allow-list, weights that do not fit the described model, and a
feature schema that disagrees with the fitted preprocessing.
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
from mtl_core.preprocessing import FeaturePreprocessor, FeatureSchema, UnsafeArtifactError
from mtl_core.tasks import TaskSpec
from mtl_core.trainer import predict

FORMAT_VERSION = 1
WEIGHTS, PREPROCESSOR, DESCRIPTION = "weights.safetensors", "preprocessor.skops", "model.json"
BUNDLE_FILES = (DESCRIPTION, WEIGHTS, PREPROCESSOR)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib", ".ckpt", ".npy", ".npz")


class BundleError(ValueError):
    """The bundle is incomplete, tampered with, or does not match what it describes."""


class UnsafeBundleError(BundleError):
    """The bundle carries something that could run code when loaded (a pickle payload, a foreign type)."""


def _looks_like_pickle(path: Path) -> bool:
    # Protocol 2+ pickles start with 0x80; torch.save writes a zip whose members are pickles.
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return path.suffix.lower() in PICKLE_SUFFIXES or head[:1] == b"\x80" or head == b"PK\x03\x04"


def check_bundle_files(directory: Path) -> None:
    """Exactly the three bundle files, as regular files: anything else is refused before any byte is parsed.

    Raises:
        UnsafeBundleError: an extra file (named as a pickle payload when it looks like one), a symlink or a
            sub-directory.
        BundleError: a required file is missing.
    """
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a model bundle directory")
    for entry in sorted(directory.iterdir()):
        if entry.is_symlink():
            raise UnsafeBundleError(f"{entry}: symlinks are not allowed in a model bundle")
        if entry.name not in BUNDLE_FILES:
            what = "a pickle payload (refused: loading it could run code)" if _looks_like_pickle(entry) \
                else "not part of a model bundle"
            raise UnsafeBundleError(f"{entry}: unexpected {'directory' if entry.is_dir() else 'file'}, {what}; "
                                    f"a bundle holds only {', '.join(BUNDLE_FILES)}")
        if not entry.is_file():
            raise UnsafeBundleError(f"{entry}: expected a regular file")
    for name in BUNDLE_FILES:
        if not (directory / name).is_file():
            raise BundleError(f"{directory}: missing {name}")


def bundle_fingerprint(directory: str | Path) -> str:
    """sha256 of model.json, which itself holds the sha256 of the weights and the preprocessor: one id for the
    whole content of a bundle."""
    return sha256(Path(directory) / DESCRIPTION)


def prediction_columns(tasks: list[TaskSpec], predictions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The output columns for each task type: binary ``<task>_proba`` and ``<task>_pred`` (0/1); multiclass
    ``<task>_proba_<class>`` per class and ``<task>_pred`` (class name); regression ``<task>_pred`` (original
    units). The evaluate stage and `mtl predict` both use this, so their files compare column for column."""
    columns: dict[str, np.ndarray] = {}
    for t in tasks:
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
    return columns


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
    def load(cls, directory: str | Path) -> ModelBundle:
        """Load and verify a bundle; nothing in it is unpickled.

        Raises:
            UnsafeBundleError: an extra (possibly pickle) file, or a preprocessor type outside the allow-list.
            BundleError: a file is missing, a checksum differs or is absent, the description is malformed, the
                weights do not fit the described model, or the feature schema disagrees with the preprocessing.
        """
        directory = Path(directory)
        check_bundle_files(directory)
        try:
            description = json.loads((directory / DESCRIPTION).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{directory / DESCRIPTION}: not valid JSON ({exc})") from exc
        if not isinstance(description, dict) or description.get("format_version") != FORMAT_VERSION:
            version = description.get("format_version") if isinstance(description, dict) else None
            raise BundleError(f"{directory}: unsupported bundle format {version!r}")
        checksums = description.get("checksums")
        if not isinstance(checksums, dict) or set(checksums) != {WEIGHTS, PREPROCESSOR}:
            raise BundleError(f"{directory / DESCRIPTION}: checksums must cover exactly {WEIGHTS} and {PREPROCESSOR}")
        for name, expected in checksums.items():
            actual = sha256(directory / name)
            if actual != expected:
                raise BundleError(f"{directory / name}: checksum mismatch (expected {str(expected)[:12]}, "
                                  f"got {actual[:12]}): the file was changed after the bundle was written")
        try:
            tasks = [TaskSpec(**t) for t in description["tasks"]]
            schema = FeatureSchema(**description["feature_schema"])
            model_config = ModelConfig.model_validate(description["model_config"])
            features_config = FeaturesConfig.model_validate(description["features_config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{directory / DESCRIPTION}: malformed description: {exc}") from exc
        try:  # FeaturePreprocessor.load audits every type in the file against the allow-list first
            preprocessor = FeaturePreprocessor.load(directory / PREPROCESSOR, features_config)
        except UnsafeArtifactError as exc:
            raise UnsafeBundleError(str(exc)) from exc
        except Exception as exc:  # a corrupt zip or a foreign object layout: refuse, whatever skops raised
            raise BundleError(f"{directory / PREPROCESSOR}: cannot be read as a preprocessor: {exc}") from exc
        fitted = preprocessor.schema
        if fitted != schema:
            raise BundleError(f"{directory}: feature schema mismatch: model.json describes {schema.to_dict()}, "
                              f"the fitted preprocessor gives {fitted.to_dict()}")
        model = build_model(schema=schema, tasks=tasks, config=model_config)
        try:
            model.load_state_dict(load_file(str(directory / WEIGHTS)))
        except Exception as exc:  # safetensors raises its own error types for a corrupt header
            raise BundleError(f"{directory / WEIGHTS}: weights do not match the described model: {exc}") from exc
        model.eval()
        return cls(model, tasks, schema, model_config, features_config, preprocessor, description.get("lineage", {}))

    @property
    def input_columns(self) -> list[str]:
        return self.schema.numeric + self.schema.categorical + self.schema.text

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score raw rows; the columns are those of ``prediction_columns``."""
        table = self.preprocessor.transform(frame)
        predictions, _ = predict(self.model, self.tasks, table)
        return pd.DataFrame(prediction_columns(self.tasks, predictions), index=frame.index)
