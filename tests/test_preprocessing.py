"""The fast categorical path gives exactly the fitted OrdinalEncoder's codes, edge cases included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtl_core.config import FeaturesConfig
from mtl_core.preprocessing import FeaturePreprocessor


def test_category_codes_match_the_ordinal_encoder_for_unseen_missing_and_padded_values():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": pd.array(["a", "b", None, "c"], dtype="string")})
    pre = FeaturePreprocessor(FeaturesConfig(numeric=["x"], categorical=["c"])).fit(train)
    new = pd.DataFrame({"x": [0.0] * 7,
                        "c": pd.array(["a", " b ", None, "zzz", "", "c", "a"], dtype="string")})
    fast = pre.transform(new).tensors["x_cat"].numpy()
    reference = pre.categorical.transform(pre._categorical_frame(new)) + 1
    np.testing.assert_array_equal(fast, reference)
    assert fast[3, 0] == 0  # unseen -> the unknown bucket
    assert fast[1, 0] == fast[0, 0] + 1  # " b " is "b"
