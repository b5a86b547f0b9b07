"""Incoming batches: discover, validate, accept as a new DVC data version, or quarantine. Nothing is deleted.

    data/incoming/<name>                         dropped here by whoever delivers data
    data/batches/<UTC time>-<name>  (+ .dvc)     accepted: moved here byte for byte, `dvc add`-ed, committed
    data/quarantine/<UTC time>-<name>/<name>     rejected: moved here byte for byte, beside report.json
    reports/drift/<UTC time>-<name>.json         drift of every batch (PSI per feature and label)

One function per step, so the scheduled-retraining flow can run each as a Prefect task::

    for path in discover(root):
        result = validate_batch(path, params, root)
        accept(result, params, root) if result.accepted else quarantine(result, root)

Each accepted batch has its own ``.dvc`` file (with ``meta``: rows, source name, sha256), committed to git
alone, so every acceptance is one data version in ``git log``, ``dvc status`` and ``mtl data versions``, and
``dvc push``/``dvc pull`` carry it to and from the remote. The ``preprocess`` stage appends the batches to the
training file (``data.batches`` in params.yaml), and ``dvc.yaml`` lists that folder as a dependency, so the
next ``dvc repro`` retrains on the new version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from mtl_core.bundle import sha256
from pipelines.contract import ValidationReport, validate_frame
from pipelines.drift import DriftReport, drift_report, write_drift_report
from pipelines.io import DRIFT_DIR, INCOMING_DIR, QUARANTINE_DIR, DataReadError, read_table
from pipelines.params import Params
from pipelines.profile import file_md5, profile_for


class DatasetError(RuntimeError):
    """Accepting or quarantining a batch failed (DVC or git refused, or the file changed since validation)."""


@dataclass
class BatchResult:
    """The verdict on one incoming file; ``report`` is what accept/quarantine write beside it."""

    path: Path
    stamp: str
    sha256: str
    accepted: bool
    rows: int | None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    drift: DriftReport | None = None

    @property
    def target_name(self) -> str:
        return f"{self.stamp}-{self.path.name}"


@dataclass
class DataVersion:
    """One version of the training data set: the training file (version 0) or one accepted batch."""

    version: int
    path: str
    rev: str
    time: str
    md5: str
    rows: int | None
    total_rows: int | None
    present: bool


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def discover(root: Path) -> list[Path]:
    """Every regular file waiting in ``data/incoming/`` (oldest name first), except hidden files and README.md.

    Files that are not tables are returned too: validation rejects them into quarantine with a reason, rather
    than leaving them unexplained in the inbox.
    """
    folder = Path(root) / INCOMING_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name != "README.md")


def validate_batch(path: Path, params: Params, root: Path, *, profile: dict | None = None) -> BatchResult:
    """Read ``path``, run the contract and the drift check; decide accepted or rejected. The file is only read.

    Args:
        path: the incoming file.
        params: the project parameters.
        root: the project root.
        profile: the reference profile (read from ``validate.profile`` when None).

    Returns:
        The verdict, with every failed rule (file, column, rule) in ``reasons`` and the full report.
    """
    root = Path(root)
    path = Path(path)
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    result = BatchResult(path=path, stamp=_stamp(), sha256=sha256(path), accepted=False, rows=None)
    base = {"file": rel, "sha256": result.sha256, "validated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        frame = read_table(path, params)
    except DataReadError as exc:
        result.reasons = [str(exc).replace(str(path), rel, 1)]
        result.report = {**base, "status": "rejected", "reasons": result.reasons,
                         "read_error": {"column": exc.column, "rule": exc.rule, "examples": exc.examples}}
        return result
    profile = profile if profile is not None else profile_for(params, root)
    report: ValidationReport = validate_frame(frame, params, file=rel, profile=profile, root=root)
    result.rows = len(frame)
    result.reasons = report.messages()
    result.warnings = report.messages(warnings=True)
    if profile is not None:
        result.drift = drift_report(frame, profile, params, file=rel)
        label_drift, feature_drift = result.drift.messages("label"), result.drift.messages("feature")
        if params.drift.reject_on_label_drift:
            result.reasons += label_drift
        else:
            result.warnings += label_drift
        result.warnings += feature_drift
    result.accepted = not result.reasons
    result.report = {**base, "status": "accepted" if result.accepted else "rejected", "rows": result.rows,
                     "reasons": result.reasons, "warnings": result.warnings, "validation": report.to_dict(),
                     "drift": result.drift.to_dict() if result.drift else None}
    if result.drift is not None:
        write_drift_report(result.drift, root / DRIFT_DIR / f"{result.target_name}.json")
    return result


def _check_unchanged(result: BatchResult) -> None:
    if not result.path.is_file():
        raise DatasetError(f"{result.path}: gone since it was validated")
    if sha256(result.path) != result.sha256:
        raise DatasetError(f"{result.path}: changed since it was validated; validate it again")


def _move(src: Path, dest: Path, digest: str) -> None:
    """Move byte for byte (rename on one file system; else copy, verify, then remove the source)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise DatasetError(f"{dest}: already exists; refusing to overwrite")
    try:
        os.replace(src, dest)
    except OSError:
        shutil.copy2(src, dest)
        if sha256(dest) != digest:
            dest.unlink()
            raise DatasetError(f"copying {src} to {dest} did not preserve its bytes; the source is untouched") from None
        src.unlink()


def _unique(path: Path) -> Path:
    candidate, i = path, 1
    while candidate.exists() or candidate.with_name(candidate.name + ".dvc").exists():
        candidate = path.with_name(f"{path.name}.{i}")
        i += 1
    return candidate


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)


def _dvc(*args: str) -> list[str]:
    # The dvc of this interpreter's environment, whatever PATH says.
    return [sys.executable, "-m", "dvc", *args]


def _is_git_repo(root: Path) -> bool:
    return _run(["git", "rev-parse", "--is-inside-work-tree"], root).returncode == 0


def accept(result: BatchResult, params: Params, root: Path, *, commit: bool = True) -> DataVersion:
    """Move an accepted batch into ``data.batches``, ``dvc add`` it and commit its ``.dvc`` file to git.

    Args:
        result: a verdict from :func:`validate_batch` with ``accepted`` true.
        params: the project parameters (``data.batches``).
        root: the project root (a git + DVC repository).
        commit: commit the new ``.dvc`` file (and the folder's .gitignore) in a commit of its own.

    Returns:
        The new data version.

    Raises:
        DatasetError: the batch was rejected, changed since validation, or DVC/git failed (the batch is
            then moved back to where it was).
    """
    root = Path(root)
    if not result.accepted:
        raise DatasetError(f"{result.path}: was rejected; quarantine it instead")
    if params.data.batches is None:
        raise DatasetError("data.batches is not set in params.yaml: nowhere to keep accepted batches")
    with FileLock(str(root / ".dvc" / "tmp" / "mtl-datasets.lock")):
        _check_unchanged(result)
        dest = _unique(root / params.data.batches / result.target_name)
        rel = dest.relative_to(root)
        _move(result.path, dest, result.sha256)
        added = _run(_dvc("add", str(rel)), root)
        if added.returncode != 0:
            _move(dest, result.path, result.sha256)
            raise DatasetError(f"dvc add {rel} failed; the batch is back in {result.path}:\n{added.stderr[-2000:]}")
        dvc_file = root / f"{rel}.dvc"
        spec = yaml.safe_load(dvc_file.read_text())
        # DVC keeps `meta` as it is: rows and provenance travel with the version.
        spec["meta"] = {"rows": result.rows, "source": result.path.name, "sha256": result.sha256,
                        "accepted_at": datetime.now(UTC).isoformat(timespec="seconds")}
        dvc_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        report_path = root / "reports" / "validation" / "batches" / f"{dest.name}.json"
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps({**result.report, "stored_as": str(rel)}, indent=2, default=str) + "\n")
        if commit and _is_git_repo(root):
            paths = [f"{rel}.dvc", str(rel.parent / ".gitignore")]
            staged = _run(["git", "add", "--", *paths], root)
            done = staged.returncode == 0 and _run(
                ["git", "commit", "-q", "-m", f"data: accept batch {result.path.name} ({result.rows} rows) as {rel}",
                 "--", *paths], root).returncode == 0
            if not done:
                raise DatasetError(f"{rel} is DVC-tracked but the git commit failed; commit {rel}.dvc by hand")
    return next(v for v in list_versions(params, root) if v.path == str(rel))


def quarantine(result: BatchResult, root: Path) -> Path:
    """Move a rejected batch, unchanged, to ``data/quarantine/<time>-<name>/`` and write ``report.json`` beside it.

    Returns:
        The quarantine folder.

    Raises:
        DatasetError: the file changed since validation or cannot be moved (it is then left where it was).
    """
    root = Path(root)
    with FileLock(str(root / ".dvc" / "tmp" / "mtl-datasets.lock")):
        _check_unchanged(result)
        folder = _unique(root / QUARANTINE_DIR / result.target_name)
        _move(result.path, folder / result.path.name, result.sha256)
        report = {**result.report, "quarantined_as": str((folder / result.path.name).relative_to(root))}
        (folder / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return folder


def process_incoming(params: Params, root: Path, *, commit: bool = True) -> list[dict[str, Any]]:
    """Validate every incoming file, then accept or quarantine it. One outcome per file, in order."""
    profile = profile_for(params, root)
    outcomes = []
    for path in discover(root):
        result = validate_batch(path, params, root, profile=profile)
        if result.accepted:
            version = accept(result, params, root, commit=commit)
            outcomes.append({"file": path.name, "status": "accepted", "rows": result.rows,
                             "warnings": result.warnings, "version": asdict(version)})
        else:
            folder = quarantine(result, root)
            outcomes.append({"file": path.name, "status": "rejected", "rows": result.rows,
                             "reasons": result.reasons, "quarantine": str(folder.relative_to(root))})
    return outcomes


def _git_added(root: Path, rel: str) -> tuple[str, str]:
    """(revision, time) of the commit that added ``rel``; ("", "") when it is not committed."""
    proc = _run(["git", "log", "--diff-filter=A", "--format=%h %cI", "-1", "--", rel], root)
    parts = proc.stdout.split() if proc.returncode == 0 else []
    return (parts[0], parts[1]) if len(parts) == 2 else ("", "")


def list_versions(params: Params, root: Path) -> list[DataVersion]:
    """The data set's versions: the training file, then each accepted batch in arrival order.

    ``rows`` is per version, ``total_rows`` the training rows once that version is in; ``present`` is false
    for a batch whose file is not in the workspace (``dvc pull`` fetches it).
    """
    root = Path(root)
    train = params.data.train
    proc = _run(["git", "log", "-1", "--format=%h %cI", "--", str(train)], root)
    rev, time = (proc.stdout.split() + ["", ""])[:2] if proc.returncode == 0 else ("", "")
    rows = len(read_table(root / train, params)) if (root / train).is_file() else None
    versions = [DataVersion(0, str(train), rev, time, file_md5(root / train) if rows is not None else "",
                            rows, rows, rows is not None)]
    total = rows
    folder = root / params.data.batches if params.data.batches is not None else None
    specs = sorted(folder.glob("*.dvc")) if folder is not None and folder.is_dir() else []
    for i, dvc_file in enumerate(specs, start=1):
        spec = yaml.safe_load(dvc_file.read_text()) or {}
        out = (spec.get("outs") or [{}])[0]
        rel = str(dvc_file.relative_to(root))
        rev, time = _git_added(root, rel)
        batch_rows = (spec.get("meta") or {}).get("rows")
        total = None if total is None or batch_rows is None else total + batch_rows
        data_path = dvc_file.with_suffix("")
        versions.append(DataVersion(i, str(data_path.relative_to(root)), rev or "(uncommitted)",
                                    time or (spec.get("meta") or {}).get("accepted_at", ""), out.get("md5", ""),
                                    batch_rows, total, data_path.is_file()))
    return versions
