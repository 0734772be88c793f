"""Statistics of the repeats against hand-computed values and SciPy's reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from vdes_tune.evaluation.stats import holm, mean_ci, paired_test, paired_tests, rank_biserial, table3


def test_mean_ci_matches_hand_computed_t_interval():
    out = mean_ci([1, 2, 3, 4, 5])
    # s = sqrt(2.5); t(0.975, 4) = 2.7764451; half width = t * s / sqrt(5)
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert out["n"] == 5 and out["mean"] == 3.0
    assert out["std"] == pytest.approx(math.sqrt(2.5))
    assert out["ci_low"] == pytest.approx(3 - half, abs=1e-6) and out["ci_high"] == pytest.approx(3 + half, abs=1e-6)
    one = mean_ci([0.7])
    assert one["mean"] == 0.7 and math.isnan(one["std"]) and math.isnan(one["ci_low"])


def test_rank_biserial_by_hand():
    # |d| = 1, 2, 3, 4 -> ranks 1..4; positive: ranks 2 and 4 (d=2, 4) = 6; negative: 1 and 3 = 4
    assert rank_biserial(np.array([-1.0, 2.0, -3.0, 4.0])) == pytest.approx((6 - 4) / 10)
    # zeros are dropped, ties get average ranks: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3, all positive
    assert rank_biserial(np.array([0.0, 1.0, 1.0, 2.0])) == 1.0
    assert rank_biserial(np.zeros(4)) == 0.0


def test_paired_test_agrees_with_scipy_and_effect_sizes():
    rng = np.random.default_rng(3)
    y = rng.uniform(0.4, 0.8, 30)
    x = y + rng.normal(0.03, 0.02, 30)
    out = paired_test(x, y)
    ref = sp.wilcoxon(x - y)
    assert out["statistic"] == pytest.approx(float(ref.statistic))
    assert out["p_value"] == pytest.approx(float(ref.pvalue))
    d = x - y
    assert out["mean_diff"] == pytest.approx(d.mean())
    assert out["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert out["diff_ci_low"] < d.mean() < out["diff_ci_high"]
    assert out["pairs"] == 30


def test_paired_test_identical_samples_give_no_evidence():
    out = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert out["p_value"] == 1.0 and out["mean_diff"] == 0.0 and out["rank_biserial"] == 0.0
    with pytest.raises(ValueError, match="length"):
        paired_test([1, 2], [1, 2, 3])


def test_holm_by_hand():
    # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04, monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])
    out = holm([float("nan"), 0.01])
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.01)


def _results(values: dict[int, list[float]]) -> pd.DataFrame:
    rows = []
    for arch, f1s in values.items():
        for r, f1 in enumerate(f1s):
            rows.append({"arch": arch, "arch_name": f"A{arch}", "repeat": r, "test_f1": f1, "val_f1": f1,
                         "test_accuracy": f1, "val_accuracy": f1, "test_macro_f1": f1, "val_macro_f1": f1,
                         "test_roc_auc": f1, "val_roc_auc": f1})
    return pd.DataFrame(rows)


def test_table3_and_paired_tests_pair_by_repeat():
    results = _results({2: [0.5, 0.6, 0.7, 0.4], 3: [0.6, 0.8, 0.7, 0.5], 4: [0.55, 0.65, 0.75, 0.45]})
    t3 = table3(results)
    assert list(t3["arch"]) == [2, 3, 4] and list(t3["repeats"]) == [4, 4, 4]
    assert t3.loc[t3["arch"] == 3, "test_f1_mean"].item() == pytest.approx(0.65)
    tests = paired_tests(results, metrics=("test_f1",))
    vs3 = tests[tests["reference"] == 3].set_index("arch")
    # shuffling the rows must not change the pairing: it is by repeat, not by position
    shuffled = paired_tests(results.sample(frac=1, random_state=0), metrics=("test_f1",))
    assert shuffled[shuffled["reference"] == 3].set_index("arch")["mean_diff"].to_dict() == \
        pytest.approx(vs3["mean_diff"].to_dict())
    assert vs3.loc[4, "mean_diff"] == pytest.approx(np.mean([-0.05, -0.15, 0.05, -0.05]))
    assert vs3.loc[2, "p_value"] == pytest.approx(float(sp.wilcoxon([-0.1, -0.2, 0.0, -0.1]).pvalue))
    assert set(tests["reference"]) == {2, 3} and (tests["p_holm"] >= tests["p_value"] - 1e-12).all()
