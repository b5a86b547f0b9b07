"""A bundle loads without unpickling anything, and anything that could run code or was changed is refused."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import skops.io as sio
import torch
from sklearn.linear_model import LogisticRegression

from mtl_core.bundle import (
    DESCRIPTION,
    PREPROCESSOR,
    WEIGHTS,
    BundleError,
    ModelBundle,
    UnsafeBundleError,
    prediction_columns,
    sha256,
)
from tests.bundle_factory import adult_rows, make_bundle


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle") / "model")


@pytest.fixture
def bundle_dir(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "model"))


def _rewrite_description(directory: Path, change) -> None:
    description = json.loads((directory / DESCRIPTION).read_text())
    change(description)
    (directory / DESCRIPTION).write_text(json.dumps(description))


class Payload:
    """Unpickling this would run a command: the reason a bundle must never unpickle anything."""

    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/mtl-pwned",))


def test_a_clean_bundle_loads_and_scores(bundle_dir):
    bundle = ModelBundle.load(bundle_dir)
    frame = adult_rows(50)
    out = bundle.predict_frame(frame)
    assert len(out) == 50
    assert {"income_proba", "income_pred", "relationship_pred", "relationship_proba_Wife"} <= set(out.columns)
    assert out["relationship_pred"].isin(bundle.tasks[2].classes).all()


@pytest.mark.parametrize("name", ["payload.pkl", "model.pt", "extra"])
def test_a_dropped_in_pickle_file_is_refused(bundle_dir, name):
    if name == "model.pt":
        torch.save({"w": torch.zeros(2)}, bundle_dir / name)  # a zip of pickles
    else:
        (bundle_dir / name).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UnsafeBundleError, match="pickle payload") as err:
        ModelBundle.load(bundle_dir)
    assert name in str(err.value)
    assert not Path("/tmp/mtl-pwned").exists()


def test_a_tampered_weight_file_is_refused(bundle_dir):
    raw = bytearray((bundle_dir / WEIGHTS).read_bytes())
    raw[-1] ^= 0x01
    (bundle_dir / WEIGHTS).write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="weights.safetensors: checksum mismatch"):
        ModelBundle.load(bundle_dir)


def test_removing_the_checksums_does_not_skip_verification(bundle_dir):
    _rewrite_description(bundle_dir, lambda d: d.__setitem__("checksums", {}))
    with pytest.raises(BundleError, match="checksums must cover"):
        ModelBundle.load(bundle_dir)


def test_a_preprocessor_with_a_type_outside_the_allow_list_is_refused_even_with_a_matching_checksum(bundle_dir):
    sio.dump({"numeric": LogisticRegression(), "categorical": None, "text": {}, "fitted": True},
             bundle_dir / PREPROCESSOR)
    new = sha256(bundle_dir / PREPROCESSOR)
    _rewrite_description(bundle_dir, lambda d: d["checksums"].__setitem__(PREPROCESSOR, new))
    with pytest.raises(UnsafeBundleError, match="LogisticRegression"):
        ModelBundle.load(bundle_dir)


def test_a_mismatched_feature_schema_is_refused(bundle_dir):
    _rewrite_description(bundle_dir, lambda d: d["feature_schema"]["cardinalities"].__setitem__(0, 999))
    with pytest.raises(BundleError, match="feature schema mismatch"):
        ModelBundle.load(bundle_dir)


def test_weights_that_do_not_fit_the_description_are_refused(bundle_dir, tmp_path):
    other = make_bundle(tmp_path / "other", rows=60)  # fewer categories seen: other embedding sizes
    shutil.copy(other / WEIGHTS, bundle_dir / WEIGHTS)
    new = sha256(bundle_dir / WEIGHTS)
    _rewrite_description(bundle_dir, lambda d: d["checksums"].__setitem__(WEIGHTS, new))
    with pytest.raises(BundleError, match="weights do not match"):
        ModelBundle.load(bundle_dir)


def test_symlinks_and_missing_files_are_refused(bundle_dir, tmp_path):
    (tmp_path / "elsewhere.json").write_text("{}")
    (bundle_dir / "notes.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(UnsafeBundleError, match="symlinks"):
        ModelBundle.load(bundle_dir)
    (bundle_dir / "notes.json").unlink()
    (bundle_dir / PREPROCESSOR).unlink()
    with pytest.raises(BundleError, match="missing preprocessor.skops"):
        ModelBundle.load(bundle_dir)


def test_prediction_columns_per_task_type(bundle_dir):
    bundle = ModelBundle.load(bundle_dir)
    import numpy as np

    preds = {"income": np.array([0.2, 0.7]), "never_married": np.array([0.5, 0.1]),
             "relationship": np.eye(6)[[1, 5]]}
    cols = prediction_columns(bundle.tasks, preds)
    assert cols["income_pred"].tolist() == [0, 1] and cols["never_married_pred"].tolist() == [1, 0]
    assert cols["relationship_pred"].tolist() == ["Not-in-family", "Wife"]
