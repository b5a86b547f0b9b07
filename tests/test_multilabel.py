"""Multi-label targets as several binary tasks, through the real task and preprocessing code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtl_core.multilabel import MultiLabelConfig, add_indicator_columns, expand_multilabel
from mtl_core.tasks import encode_targets, fit_tasks


def test_multilabel_column_becomes_binary_tasks_with_masking():
    cfg = MultiLabelConfig(column="topics", labels=["billing", "refund", "late fee"], none_value="none")
    frame = pd.DataFrame({"topics": ["billing|refund", "refund", "", None, "none", "late fee|billing"]})
    tasks = expand_multilabel("topic", cfg)
    assert list(tasks) == ["topic__billing", "topic__refund", "topic__late_fee"]
    assert all(t.type == "binary" for t in tasks.values())
    wide = add_indicator_columns(frame, cfg)
    specs = fit_tasks(tasks, wide)
    targets = encode_targets(specs, wide)
    nan = np.nan
    np.testing.assert_array_equal(targets["topic__billing"], [1, 0, nan, nan, 0, 1])
    np.testing.assert_array_equal(targets["topic__refund"], [1, 1, nan, nan, 0, 0])
    np.testing.assert_array_equal(targets["topic__late_fee"], [0, 0, nan, nan, 0, 1])
    assert "topics" in wide and "topics" in frame and "topics__billing" not in frame  # the input is not modified


def test_multilabel_rejects_bad_configs_and_unknown_labels():
    with pytest.raises(ValueError, match="separator"):
        MultiLabelConfig(column="c", labels=["a|b"])
    with pytest.raises(ValueError, match="duplicates"):
        MultiLabelConfig(column="c", labels=["a", "a"])
    with pytest.raises(ValueError, match="collide"):
        MultiLabelConfig(column="c", labels=["a b", "a_b"])
    cfg = MultiLabelConfig(column="c", labels=["a", "b"])
    with pytest.raises(ValueError, match=r"outside `labels`: \['zzz'\]"):
        add_indicator_columns(pd.DataFrame({"c": ["a|zzz"]}), cfg)
    with pytest.raises(ValueError, match="not in the table"):
        add_indicator_columns(pd.DataFrame({"x": ["a"]}), cfg)
