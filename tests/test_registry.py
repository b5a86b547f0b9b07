"""The registry on real bundles: numbered immutable versions, atomic promotion, rollback, and a process killed
between the steps of a promotion (the crash hook makes the process exit on the spot, like SIGKILL)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from mtl_core.bundle import BundleError, ModelBundle, bundle_fingerprint
from pipelines.registry import CRASH_ENV, Registry, RegistryError
from tests.bundle_factory import ROOT, make_bundle


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("bundles")
    return make_bundle(base / "a", seed=1), make_bundle(base / "b", seed=2)


def tree_digest(path: Path, skip_tmp: bool = False) -> str:
    """Every file's name and bytes under ``path`` (the lock file aside): "byte for byte unchanged"."""
    digest = hashlib.sha256()
    files = [p for p in path.rglob("*") if p.is_file() and p.name != ".lock"]
    if skip_tmp:
        files = [p for p in files if not any(part.startswith(".tmp-") for part in p.relative_to(path).parts)]
    for file in sorted(files):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def test_register_promote_rollback(tmp_path, bundles):
    a, b = bundles
    registry = Registry(tmp_path / "registry")
    assert registry.production() is None
    with pytest.raises(RegistryError, match="no production model yet"):
        registry.bundle_dir()
    v1 = registry.register(a, {"note": "first"})
    assert (v1, registry.production()) == (1, None)  # registering is not promoting
    registry.promote(v1)
    v2 = registry.register(b, {"note": "second"})
    registry.promote(v2)
    assert registry.production() == 2 and registry.state()["history"] == [1, 2]
    assert registry.record(2)["fingerprint"] == bundle_fingerprint(b)
    assert registry.find(bundle_fingerprint(a)) == 1
    registry.rollback()
    assert registry.production() == 1
    assert bundle_fingerprint(registry.bundle_dir()) == bundle_fingerprint(a)
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    assert [e["action"] for e in registry.events()] == ["register", "promote", "register", "promote", "rollback"]
    with pytest.raises(RegistryError, match="no version 9"):
        registry.record(9)


def test_a_bundle_that_does_not_load_is_never_numbered(tmp_path, bundles):
    a, _ = bundles
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(a, broken)
    (broken / "weights.safetensors").write_bytes(b"not the weights")
    registry = Registry(tmp_path / "registry")
    with pytest.raises(BundleError, match="checksum mismatch"):
        registry.register(broken, {})
    assert registry.versions() == [] and not list((tmp_path / "registry/versions").iterdir())


PROMOTE_SCRIPT = """
import sys
from pathlib import Path
from pipelines.registry import Registry
registry = Registry(Path(sys.argv[1]))
registry.promote(registry.register(Path(sys.argv[2]), {"note": "challenger"}))
"""


@pytest.mark.parametrize("step", ["register-copied", "register-renamed", "pointer-written", "promote-replaced"])
def test_a_crash_between_promotion_steps_leaves_a_loadable_production_model(tmp_path, bundles, step):
    a, b = bundles
    registry = Registry(tmp_path / "registry")
    registry.promote(registry.register(a, {}))
    before = tree_digest(registry.path)
    proc = subprocess.run([sys.executable, "-c", PROMOTE_SCRIPT, str(registry.path), str(b)], cwd=ROOT,
                          env={**__import__("os").environ, CRASH_ENV: step}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 86, proc.stderr  # it really died at the hook
    production = registry.production()
    expected = {"register-copied": 1, "register-renamed": 1, "pointer-written": 1, "promote-replaced": 2}[step]
    assert production == expected
    loaded = ModelBundle.load(registry.bundle_dir())  # whole and verified, old or new
    assert bundle_fingerprint(registry.bundle_dir()) == bundle_fingerprint(a if production == 1 else b)
    assert loaded.tasks
    if step == "register-copied":
        assert list(registry.versions_dir.glob(".tmp-*"))  # the copy it was making is left aside, unnumbered
        assert tree_digest(registry.path, skip_tmp=True) == before
    # The next writer cleans up and carries on.
    registry.promote(registry.register(b, {}))
    assert ModelBundle.load(registry.bundle_dir()).tasks
    assert not list(registry.versions_dir.glob(".tmp-*"))
