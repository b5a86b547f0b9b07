"""The reference profile: what the training data looks like, written once by ``mtl profile`` and reviewed in git.

The contract (pipelines/contract.py) takes category sets and default numeric ranges from it, and drift
(pipelines/drift.py) compares each batch with its binned distributions, so neither needs the training data
at validation time. Regenerate it deliberately (``mtl profile``) when the reference data changes; the diff
in review shows what the contract will accept from then on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lineage import file_md5  # noqa: F401  (re-exported: datasets and tests use it from here)
from pipelines.params import Params

PROFILE_VERSION = 1


class ProfileError(ValueError):
    """The reference profile is missing, unreadable or does not match params.yaml (the message says which)."""


def build_profile(frame: pd.DataFrame, params: Params, *, source: str = "", source_md5: str = "") -> dict[str, Any]:
    """Summarise ``frame``: per column its null fraction and either range + quantile bins or category frequencies.

    Args:
        frame: the reference table (normally the training file, as ``pipelines.io.read_table`` reads it).
        params: the project parameters (feature kinds, labels, ``drift.bins``).
        source: the file it came from, recorded for review.
        source_md5: that file's md5, recorded so a reviewer can tell which data version it describes.

    Returns:
        A JSON-ready dictionary (see ``contracts/*.profile.json``).

    Raises:
        ProfileError: a configured column is absent from ``frame``.
    """
    columns: dict[str, Any] = {}
    labels = set(params.label_columns)
    wanted = list(dict.fromkeys(params.features.numeric + params.features.categorical + params.label_columns))
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ProfileError(f"{source or 'reference data'}: columns {missing} are configured but absent")
    for column in wanted:
        values = frame[column]
        entry: dict[str, Any] = {"role": "label" if column in labels else "feature",
                                 "null_fraction": round(float(values.isna().mean()), 6)}
        if column in params.features.numeric:
            entry.update(_numeric_summary(values.astype("float64"), params.drift.bins))
        else:
            counts = values.dropna().astype("string").value_counts(normalize=True).sort_index()
            entry.update(kind="categorical", frequencies={str(k): round(float(v), 6) for k, v in counts.items()})
        columns[column] = entry
    known = [c for c in frame.columns if c in set(wanted) | set(params.features.drop)]
    return {
        "version": PROFILE_VERSION,
        "source": source,
        "source_md5": source_md5,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": len(frame),
        "duplicate_fraction": round(float(frame[known].duplicated(keep=False).mean()), 6),
        "bins": params.drift.bins,
        "columns": columns,
    }


def _numeric_summary(values: pd.Series, bins: int) -> dict[str, Any]:
    finite = values.dropna().to_numpy()
    if finite.size == 0:
        return {"kind": "numeric", "min": None, "max": None, "mean": None, "std": None, "edges": [], "fractions": []}
    # Interior quantile edges; heavy ties (capital-gain is mostly 0) merge bins, hence the unique.
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    return {
        "kind": "numeric",
        "min": float(finite.min()), "max": float(finite.max()),
        "mean": round(float(finite.mean()), 6), "std": round(float(finite.std()), 6),
        "edges": [float(e) for e in edges],
        "fractions": [round(float(f), 6) for f in bin_fractions(finite, edges)],
    }


def bin_fractions(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Share of ``values`` in each bin (-inf, e1], (e1, e2], ..., (ek, inf); NaN values are ignored."""
    values = np.asarray(values, dtype="float64")
    values = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype="float64"), values, side="left"),
                         minlength=len(edges) + 1)
    return counts / max(1, values.size)


def write_profile(profile: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile, indent=2) + "\n")


def load_profile(path: Path, params: Params) -> dict[str, Any]:
    """Read a profile and check that it covers the configured columns.

    Raises:
        ProfileError: the file is missing (run ``mtl profile``), not JSON, or lacks a configured column.
    """
    try:
        profile = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ProfileError(f"{path}: reference profile not found; run `mtl profile` and commit it") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(profile, dict) or profile.get("version") != PROFILE_VERSION:
        raise ProfileError(f"{path}: not a version-{PROFILE_VERSION} profile; regenerate it with `mtl profile`")
    have = profile.get("columns", {})
    wanted = params.features.numeric + params.features.categorical + params.label_columns
    missing = [c for c in wanted if c not in have]
    if missing:
        raise ProfileError(f"{path}: no entry for configured columns {missing}; regenerate it with `mtl profile`")
    return profile


def profile_for(params: Params, root: Path) -> dict[str, Any] | None:
    """The profile named by ``validate.profile``, or None when none is configured."""
    if params.validate_.profile is None:
        return None
    return load_profile(root / params.validate_.profile, params)
