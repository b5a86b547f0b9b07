"""The model registry: immutable numbered versions, an atomic production pointer, lineage with every version.

Layout (``registry.path`` in params.yaml, ``registry/`` by default; see docs/registry.md for why not GTO)::

    registry/
      versions/v1/model/           the bundle, verified loadable before it got its number
      versions/v1/version.json     version, time, git revision, data version (DVC hashes), params, metrics,
                                   gate report, candidate fingerprint
      production.json              {"version": 2, "history": [1, 2], "updated": ...}: the only mutable file
      events.jsonl                 append-only audit log (register, promote, rollback)
      .lock                        one writer at a time (filelock)

Why a crash cannot leave half a model in production:

1. ``register`` copies the candidate into ``versions/.tmp-<uuid>/``, loads it back (checksums, allow-list,
   weights), fsyncs, then renames the directory to ``versions/vN`` (rename is atomic on one file system).
   A crash before the rename leaves only a ``.tmp-`` directory that nothing reads and the next writer removes.
2. ``promote``/``rollback`` write ``production.json`` aside, fsync, then ``os.replace`` it over the old one.
   A reader sees the old pointer or the new one, and both name complete, immutable version directories.

The functions at the bottom (``current_production``, ``register_candidate``, ``promote``, ``rollback``,
``champion_on_test``, ``promote_candidate``) are what the `mtl` commands and the retraining flow call.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from mtl_core.bundle import ModelBundle, bundle_fingerprint
from pipelines.gate import Champion, GateReport, evaluate_gate
from pipelines.io import CANDIDATE_DIR, GATE_REPORT, TEST_METRICS, VALIDATION_SUMMARY
from pipelines.lineage import file_md5, git_revision
from pipelines.params import Params

CRASH_ENV = "MTL_REGISTRY_CRASH_AT"  # test hook: the process dies (os._exit) at the named step


class RegistryError(RuntimeError):
    """A registry operation cannot go ahead (unknown version, nothing to roll back to, gate not passed)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _crash_point(step: str) -> None:
    """Fault injection for the crash tests: die like a killed process, without cleanup or finally blocks."""
    if os.environ.get(CRASH_ENV) == step:
        os._exit(86)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once the directory holding it is flushed.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    _crash_point("pointer-written")
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass
class Registry:
    """A registry directory. Reads need no lock (every file they read is replaced atomically)."""

    path: Path

    @property
    def versions_dir(self) -> Path:
        return self.path / "versions"

    @property
    def pointer(self) -> Path:
        return self.path / "production.json"

    def _lock(self) -> FileLock:
        self.path.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path / ".lock"), timeout=120)

    # ---- reading -------------------------------------------------------------------------------------------

    def versions(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        out = []
        for entry in self.versions_dir.iterdir():
            if entry.is_dir() and entry.name.startswith("v") and entry.name[1:].isdigit():
                out.append(int(entry.name[1:]))
        return sorted(out)

    def version_dir(self, version: int) -> Path:
        return self.versions_dir / f"v{version}"

    def record(self, version: int) -> dict:
        """The version's lineage record.

        Raises:
            RegistryError: no such version.
        """
        path = self.version_dir(version) / "version.json"
        if not path.is_file():
            known = ", ".join(f"v{v}" for v in self.versions()) or "none"
            raise RegistryError(f"{self.path}: no version {version} (versions: {known})")
        return json.loads(path.read_text())

    def state(self) -> dict:
        if not self.pointer.is_file():
            return {"version": None, "history": []}
        return json.loads(self.pointer.read_text())

    def production(self) -> int | None:
        return self.state().get("version")

    def bundle_dir(self, version: int | None = None) -> Path:
        """The bundle directory of ``version`` (default: production).

        Raises:
            RegistryError: no production version, or no such version.
        """
        if version is None:
            version = self.production()
            if version is None:
                raise RegistryError(f"{self.path}: no production model yet; run `mtl promote` after a passing gate")
        self.record(version)
        return self.version_dir(version) / "model"

    def load(self, version: int | None = None) -> ModelBundle:
        return ModelBundle.load(self.bundle_dir(version))

    def find(self, fingerprint: str) -> int | None:
        for v in self.versions():
            if self.record(v).get("fingerprint") == fingerprint:
                return v
        return None

    def events(self) -> list[dict]:
        path = self.path / "events.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # ---- writing -------------------------------------------------------------------------------------------

    def _log(self, event: dict) -> None:
        with open(self.path / "events.jsonl", "a") as f:
            f.write(json.dumps({"time": _now(), **event}, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def register(self, bundle_dir: Path, record: dict) -> int:
        """Copy a bundle in as the next version (not promoted). The copy is loaded back before it is numbered.

        Raises:
            mtl_core.bundle.BundleError: the bundle is incomplete, tampered with or unsafe.
        """
        bundle_dir = Path(bundle_dir)
        with self._lock():
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.versions_dir.glob(".tmp-*"):  # left by a crash; we hold the lock, so nobody owns it
                shutil.rmtree(stale, ignore_errors=True)
            tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
            try:
                shutil.copytree(bundle_dir, tmp / "model")
                ModelBundle.load(tmp / "model")  # refuse to number anything that does not load
                version = max(self.versions(), default=0) + 1
                record = {**record, "version": version, "registered": _now(),
                          "fingerprint": bundle_fingerprint(tmp / "model")}
                (tmp / "version.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
                for file in (tmp / "model").iterdir():
                    _fsync_file(file)
                _fsync_file(tmp / "version.json")
                _fsync_dir(tmp / "model")
                _fsync_dir(tmp)
                _crash_point("register-copied")
                os.rename(tmp, self.version_dir(version))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_dir(self.versions_dir)
            _crash_point("register-renamed")
            self._log({"action": "register", "version": version})
            return version

    def promote(self, version: int) -> dict:
        """Make ``version`` production (one atomic pointer replacement); returns the new pointer state."""
        with self._lock():
            self.record(version)
            state = self.state()
            if state.get("version") == version:
                return state
            history = [v for v in state.get("history", [])] + [version]
            new = {"version": version, "history": history, "updated": _now(), "previous": state.get("version")}
            _write_json_atomic(self.pointer, new)
            _crash_point("promote-replaced")
            self._log({"action": "promote", "version": version, "from": state.get("version")})
            return new

    def rollback(self) -> dict:
        """Back to the previous production version.

        Raises:
            RegistryError: no production version, or none before it.
        """
        with self._lock():
            state = self.state()
            history = list(state.get("history", []))
            if len(history) < 2:
                raise RegistryError(f"{self.path}: nothing to roll back to "
                                    f"(production history: {history or 'empty'})")
            history.pop()
            new = {"version": history[-1], "history": history, "updated": _now(), "previous": state["version"]}
            _write_json_atomic(self.pointer, new)
            self._log({"action": "rollback", "version": history[-1], "from": state["version"]})
            return new


# ---- the functions the CLI and the retraining flow call ------------------------------------------------------


def open_registry(params: Params, root: Path) -> Registry:
    path = params.registry.path
    return Registry(path if path.is_absolute() else Path(root) / path)


def current_production(registry: Registry) -> int | None:
    """The production version number, or None before the first promotion."""
    return registry.production()


def data_version(params: Params, root: Path) -> dict:
    """The data this model was built from: md5 of the raw files now, and the DVC hashes recorded in dvc.lock
    for every data and model path (so ``dvc checkout`` at the recorded git revision restores them)."""
    root = Path(root)
    files = {str(p): file_md5(root / p) for p in (params.data.train, params.data.test) if p and (root / p).is_file()}
    lock: dict[str, str] = {}
    lock_path = root / "dvc.lock"
    if lock_path.is_file():
        stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for entry in stage.get("deps", []) + stage.get("outs", []):
                path = entry.get("path", "")
                if path.startswith(("data/", "models/")) and "md5" in entry:
                    lock[path] = entry["md5"]
    return {"files": files, "dvc_lock": lock}


def champion_on_test(params: Params, root: Path, registry: Registry | None = None) -> Champion | None:
    """Score the production model on the same raw test rows as the candidate (its own preprocessing).

    Returns:
        The champion's version and metrics, or None when there is no production model.
    """
    from mtl_core.tasks import encode_targets
    from mtl_core.trainer import predict
    from pipelines.stages.preprocess import split_frames

    registry = registry or open_registry(params, root)
    version = registry.production()
    if version is None:
        return None
    bundle = registry.load(version)
    frame = split_frames(params, Path(root))["test"]
    tasks = [t for t in bundle.tasks if t.column in frame.columns]
    predictions, _ = predict(bundle.model, bundle.tasks, bundle.preprocessor.transform(frame))
    targets = encode_targets(tasks, frame)
    metrics = {t.name: t.kind.metrics(t, targets[t.name], predictions[t.name]) for t in tasks}
    return Champion(version, metrics, registry.record(version).get("fingerprint"))


def run_gate(params: Params, root: Path, registry: Registry | None = None) -> GateReport:
    """The whole gate for the candidate in ``root``: thresholds, champion on the same rows, data validation.

    Raises:
        FileNotFoundError: metrics/test.json is missing (run the evaluate stage first).
    """
    root = Path(root)
    metrics_path = root / TEST_METRICS
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{TEST_METRICS}: not found; run the evaluate stage first")
    metrics = json.loads(metrics_path.read_text())
    summary_path = root / VALIDATION_SUMMARY
    validation = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    candidate = root / CANDIDATE_DIR
    fingerprint = bundle_fingerprint(candidate) if (candidate / "model.json").is_file() else None
    primary = {name: task.primary_metric for name, task in params.tasks.items()}
    champion = champion_on_test(params, root, registry)
    return evaluate_gate(metrics, params.gate, champion=champion, primary=primary, validation=validation,
                         candidate=fingerprint)


def register_candidate(params: Params, root: Path, gate: GateReport | dict,
                       registry: Registry | None = None, bundle_dir: Path | None = None) -> int:
    """Register the candidate bundle (default ``models/candidate``) with its lineage; does not promote."""
    root = Path(root)
    registry = registry or open_registry(params, root)
    bundle_dir = Path(bundle_dir) if bundle_dir else root / CANDIDATE_DIR
    gate_dict = gate.to_dict() if isinstance(gate, GateReport) else gate
    metrics_path = root / TEST_METRICS
    description = json.loads((bundle_dir / "model.json").read_text())
    record = {
        "created": _now(),
        "git_revision": git_revision(root),
        "trained_at_revision": description.get("lineage", {}).get("git_revision"),
        "data_version": data_version(params, root),
        "params": params.model_dump(mode="json", by_alias=True),
        "metrics": json.loads(metrics_path.read_text()) if metrics_path.is_file() else {},
        "gate": gate_dict,
        "library_versions": description.get("versions", {}),
    }
    return registry.register(bundle_dir, record)


def promote(registry: Registry, version: int) -> dict:
    """Make a registered version production (atomic)."""
    return registry.promote(version)


def rollback(registry: Registry) -> dict:
    """Back to the previous production version (atomic)."""
    return registry.rollback()


@dataclass
class PromotionResult:
    version: int
    promoted: bool
    message: str
    gate: GateReport | None = None


def promote_candidate(params: Params, root: Path, registry: Registry | None = None) -> PromotionResult:
    """Gate-checked promotion of ``models/candidate``: the one entry point for `mtl promote` and the flow.

    The gate is re-run here against the *current* champion (the stage's reports/gate.json may predate a
    promotion), and the stage's report must be a pass for this very candidate. Nothing in the registry is
    touched unless both pass.

    Raises:
        RegistryError: the gate did not pass, or its report belongs to another candidate.
    """
    root = Path(root)
    registry = registry or open_registry(params, root)
    candidate = root / CANDIDATE_DIR
    report_path = root / GATE_REPORT
    if not report_path.is_file():
        raise RegistryError(f"{GATE_REPORT}: not found; run the gate (`dvc repro` or `mtl gate`) first")
    staged = json.loads(report_path.read_text())
    fingerprint = bundle_fingerprint(candidate)
    if not staged.get("passed"):
        failed = ", ".join(r["rule"] for r in staged.get("rules", []) if not r["passed"])
        raise RegistryError(f"{GATE_REPORT}: the gate failed ({failed}); production is unchanged")
    if staged.get("candidate") != fingerprint:
        raise RegistryError(f"{GATE_REPORT} is for another candidate than {CANDIDATE_DIR}; re-run the gate")
    existing = registry.find(fingerprint)
    if existing is not None and existing == registry.production():
        return PromotionResult(existing, False, f"candidate is already production (v{existing})")
    report = run_gate(params, root, registry)
    if not report.passed:
        failed = ", ".join(r.rule for r in report.failed)
        raise RegistryError(f"gate failed against the current production model ({failed}); production is unchanged")
    version = existing if existing is not None else register_candidate(params, root, report, registry, candidate)
    registry.promote(version)
    return PromotionResult(version, True, f"v{version} is now production", report)
