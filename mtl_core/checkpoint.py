"""Per-epoch training checkpoints: written atomically by rank 0, loaded without unpickling.

A checkpoint is one ``torch.save`` file of tensors and plain containers (dict, list, str, int, float,
bool, None), read back with ``torch.load(weights_only=True)``, which refuses anything else, so a tampered
file cannot run code. It is written to a temporary file in the same directory, flushed to disk and moved
over the previous one with ``os.replace``: a crash leaves the old checkpoint or the new one, never half.

A checkpoint carries a fingerprint of what it was trained on (model structure, the training settings that
change the result, the data); ``resume: auto`` ignores a checkpoint whose fingerprint differs, so a change
of data or params never continues someone else's run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

FORMAT_VERSION = 1
FILENAME = "last.pt"
# TrainConfig fields that say how a run is launched, not what it computes: changing them keeps the checkpoint
# valid (a run started with 2 processes may resume with 1; the global batch is what matters).
LAUNCH_FIELDS = frozenset({
    "processes", "threads_per_process", "nodes", "rdzv_endpoint", "rdzv_id", "max_restarts", "resume",
    "checkpoint_dir", "collective_timeout_s",
})


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used (corrupt, unknown format, or unsafe content)."""


def checkpoint_path(directory: str | Path) -> Path:
    return Path(directory) / FILENAME


def fingerprint(*, model: torch.nn.Module, train_config: dict[str, Any], tables: list[dict[str, torch.Tensor]]) -> str:
    """sha256 of the model's structure, settings and starting weights, the result-relevant training settings
    and the data tensors (their bytes, names, dtypes and shapes)."""
    digest = hashlib.sha256()
    digest.update(repr(model).encode())
    digest.update(json.dumps(_module_settings(model), sort_keys=True, default=str).encode())
    # The starting weights too (call before training): a warm start from another bundle is another run.
    _hash_tensors(digest, model.state_dict())
    relevant = {k: v for k, v in train_config.items() if k not in LAUNCH_FIELDS}
    digest.update(json.dumps(relevant, sort_keys=True, default=str).encode())
    for table in tables:
        _hash_tensors(digest, table)
    return digest.hexdigest()


def _hash_tensors(digest: Any, tensors: dict[str, torch.Tensor]) -> None:
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def _module_settings(model: torch.nn.Module) -> dict[str, Any]:
    """Plain settings stored on the modules (task attention's temperature, alpha, ...), which ``repr`` does
    not show but which change what training computes."""
    settings: dict[str, Any] = {}
    for name, module in model.named_modules():
        for key, value in vars(module).items():
            if key.startswith("_") or key == "training":
                continue
            if isinstance(value, BaseModel):
                settings[f"{name}.{key}"] = value.model_dump(mode="json")
            elif isinstance(value, (bool, int, float, str)) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value)
            ):
                settings[f"{name}.{key}"] = value
    return settings


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``<directory>/last.pt`` (call on rank 0 only).

    Raises:
        OSError: the directory cannot be created or written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(directory)
    fd, tmp = tempfile.mkstemp(prefix=".last-", suffix=".pt.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(directory: str | Path, *, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The last checkpoint in ``directory``, or None when there is none.

    Raises:
        CheckpointError: the file is unreadable, holds non-tensor objects, or has another format version.
    """
    path = checkpoint_path(directory)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        raise CheckpointError(f"{path}: cannot be loaded safely ({type(exc).__name__}: {exc}); delete it to start over") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown checkpoint format; delete it to start over")
    return state
