"""Statistics of the repeats against hand-computed values and SciPy's reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from vdes_tune.evaluation.stats import (
    answer_sentence, des_gain, holm, mean_ci, paired_test, paired_tests, rank_biserial, table3,
)


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


def _runs(f1: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"arch": a, "arch_name": f"A{a}", "repeat": k, "test_f1": v}
                         for a, vals in f1.items() for k, v in enumerate(vals)])


def test_des_gain_by_hand():
    le = [0.50, 0.60, 0.55, 0.65]
    # Real DES adds exactly 0.20 in every repeat; #4 recovers exactly half of it, #6 none, #5 all of it.
    runs = _runs({1: le, 3: [x + 0.2 for x in le], 4: [x + 0.1 for x in le], 5: [x + 0.2 for x in le], 6: le})
    out = des_gain(runs)
    assert out["repeats"] == 4 and out["gain"]["mean_diff"] == pytest.approx(0.2)
    rec = out["recovered"]
    # Constant differences: every bootstrap draw gives the same ratio, so the interval is a point.
    assert rec[4]["fraction"] == pytest.approx(0.5) and rec[4]["ci_low"] == pytest.approx(0.5)
    assert rec[4]["ci_high"] == pytest.approx(0.5)
    assert rec[5]["fraction"] == pytest.approx(1.0) and rec[6]["fraction"] == pytest.approx(0.0)
    sentence = answer_sentence(out, {4: "#4 U-Net/PT"})
    assert "+20.0 points" in sentence and "#4 U-Net/PT 50% (95% CI 50 to 50%)" in sentence


def test_des_gain_interval_is_a_bootstrap_of_paired_repeats():
    rng = np.random.default_rng(3)
    le = rng.uniform(0.5, 0.7, 12)
    real = le + 0.15 + rng.normal(0, 0.03, 12)
    virtual = le + 0.05 + rng.normal(0, 0.03, 12)
    out = des_gain(_runs({1: list(le), 3: list(real), 4: list(virtual)}), boot=3000, seed=1)
    rec = out["recovered"][4]
    # The point estimate is the ratio of mean paired differences, computed here directly.
    assert rec["fraction"] == pytest.approx((virtual - le).mean() / (real - le).mean())
    # Reference bootstrap, written independently: same repeat indices for numerator and denominator.
    draws = np.random.default_rng(1).integers(0, 12, size=(3000, 12))
    ratios = (virtual - le)[draws].mean(1) / (real - le)[draws].mean(1)
    assert rec["ci_low"] == pytest.approx(np.percentile(ratios, 2.5))
    assert rec["ci_high"] == pytest.approx(np.percentile(ratios, 97.5))
    assert rec["ci_low"] < rec["fraction"] < rec["ci_high"]


def test_answer_without_a_clear_gain_compares_with_le():
    le = [0.5, 0.6, 0.7, 0.6]
    out = des_gain(_runs({1: le, 3: [0.52, 0.58, 0.71, 0.59], 4: [0.55, 0.6, 0.7, 0.62]}))
    assert out["gain"]["diff_ci_low"] < 0 < out["gain"]["diff_ci_high"]
    assert "no clear gain" in answer_sentence(out)
    assert des_gain(_runs({2: le, 3: le})) == {} and "No answer" in answer_sentence({})
