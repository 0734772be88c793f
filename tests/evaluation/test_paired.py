"""The answer's statistics against independent computations: weighted F1 and ROC-AUC against scikit-learn with
sample weights, the combined interval against hand values, the patient bootstrap's clusters, and the whole
analysis on simulated studies: at the nominal rate on a null, covering a known difference, verdicts right."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from vdes_tune.config import EvaluateConfig
from vdes_tune.errors import BadInputError
from vdes_tune.evaluation import paired
from vdes_tune.config import AnalysisConfig, analysis_config
from vdes_tune.evaluation.paired import analyse, score_table
from vdes_tune.evaluation.simulate import simulated_study


def test_weighted_metrics_match_scikit_learn_with_sample_weights() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(60) < 0.4).astype(int)
    scores = np.round(rng.random((3, 60)), 1)  # rounded: ties between classes
    weights = np.vstack([np.ones(60), rng.integers(0, 4, size=(4, 60))]).astype(float)
    f1 = paired.weighted_f1(labels, scores >= 0.5, weights)
    auc = paired.weighted_auc(labels, scores, weights)
    for b, w in enumerate(weights):
        for k, s in enumerate(scores):
            assert f1[b, k] == pytest.approx(f1_score(labels, s >= 0.5, sample_weight=w, zero_division=0))
            assert auc[b, k] == pytest.approx(roc_auc_score(labels, s, sample_weight=w))


def test_sensitivity_and_specificity_match_scikit_learns_weighted_confusion_matrix() -> None:
    rng = np.random.default_rng(12)
    labels = (rng.random(50) < 0.4).astype(int)
    predicted = (rng.random((3, 50)) < 0.5).astype(int)
    weights = np.vstack([np.ones(50), rng.integers(0, 4, size=(4, 50)), np.where(labels == 1, 0, 1)]).astype(float)
    sens = paired.weighted_recall(labels, predicted, weights, 1)
    spec = paired.weighted_recall(labels, predicted, weights, 0)
    for b, w in enumerate(weights[:-1]):
        for k, yhat in enumerate(predicted):
            (tn, fp), (fn, tp) = confusion_matrix(labels, yhat, labels=[0, 1], sample_weight=w)
            assert sens[b, k] == pytest.approx(tp / (tp + fn)) and spec[b, k] == pytest.approx(tn / (tn + fp))
    assert np.isnan(sens[-1]).all() and np.isfinite(spec[-1]).all()  # a draw without malignant crops


def test_patient_bootstrap_moves_a_patients_crops_together() -> None:
    frame = simulated_study(np.random.default_rng(1), patients=12, repeats=2)
    table = score_table(frame)
    weights = paired.patient_weights(table, 500, np.random.default_rng(2))
    for p in range(len(table.patients)):
        crops = weights[:, table.patient_index == p]
        assert (crops == crops[:, :1]).all()  # one count per patient per draw
    per_patient = np.stack([weights[:, table.patient_index == p][:, 0] for p in range(len(table.patients))], 1)
    assert (per_patient.sum(axis=1) == len(table.patients)).all()  # a draw has as many patients as the split
    assert per_patient.mean() == pytest.approx(1.0, abs=0.05)


def test_difference_combines_repeat_and_shared_patient_variance_by_hand() -> None:
    point = np.array([[0.6, 0.7, 0.8], [0.5, 0.5, 0.6]])  # 2 architectures x 3 repeats
    shift = np.tile([0.03, -0.03], 50)  # the same patient-sampling shift for every repeat of arch 0
    boot = np.repeat(point[None], 100, axis=0)
    boot[:, 0, :] += shift[:, None]
    c = paired.difference(point, boot, 0, 1, 0.95)
    d = np.array([0.1, 0.2, 0.2])
    var_r, var_p = d.var(ddof=1) / 3, np.var(shift, ddof=1)  # shared by all repeats: it all counts
    df = 2 * ((var_r + var_p) / var_r) ** 2
    half = sps.t.ppf(0.975, df) * math.sqrt(var_r + var_p)
    assert c["diff"] == pytest.approx(d.mean())
    assert c["se_repeats"] ** 2 == pytest.approx(var_r) and c["se_patients"] ** 2 == pytest.approx(var_p)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert c["p_value"] == pytest.approx(2 * sps.t.sf(d.mean() / math.sqrt(var_r + var_p), df))
    # A shift particular to each repeat is already in the spread between repeats: not counted again.
    own = np.random.default_rng(3).normal(0, 0.03, size=(100, 3))
    boot2 = np.repeat(point[None], 100, axis=0)
    boot2[:, 0, :] += own  # independent per repeat, each of sd 0.03
    assert paired.difference(point, boot2, 0, 1, 0.95)["se_patients"] < 0.015


def test_verdicts_follow_the_interval_and_margin() -> None:
    assert paired.versus_real({"ci_low": -0.015, "ci_high": 0.02}, 0.02) == "non-inferior"
    assert paired.versus_real({"ci_low": -0.09, "ci_high": -0.03}, 0.02) == "inferior"
    assert paired.versus_real({"ci_low": -0.05, "ci_high": 0.01}, 0.02) == "inconclusive"
    assert paired.versus_none({"ci_low": 0.01, "ci_high": 0.2}) == "better"
    assert paired.versus_none({"ci_low": -0.2, "ci_high": -0.01}) == "worse"
    assert paired.versus_none({"ci_low": -0.01, "ci_high": 0.2}) == "no clear difference"


def test_point_differences_and_fraction_match_a_direct_computation() -> None:
    frame = simulated_study(np.random.default_rng(4), repeats=4, archs=(2, 3, 4), effects={3: 2.0, 4: 1.0})
    answer = analyse(frame, AnalysisConfig(bootstrap=300, virtual=(4,)))
    f1 = {(a, r): f1_score(g["label"], g["score"] >= 0.5) for (a, r), g in frame.groupby(["arch", "repeat"])}
    d = {a: np.mean([f1[(a, r)] - f1[(2, r)] for r in range(4)]) for a in (3, 4)}
    gain = answer["real_gain"]["f1"]
    assert gain["diff"] == pytest.approx(d[3])
    c = next(c for c in answer["comparisons"] if (c["metric"], c["arch"], c["reference"]) == ("f1", 4, 2))
    assert c["diff"] == pytest.approx(d[4])
    assert answer["recovered"]["4"]["f1"]["fraction"] == pytest.approx(d[4] / d[3])
    lo, hi = answer["recovered"]["4"]["f1"]["ci_low"], answer["recovered"]["4"]["f1"]["ci_high"]
    assert lo < d[4] / d[3] < hi
    auc = {(a, r): roc_auc_score(g["label"], g["score"]) for (a, r), g in frame.groupby(["arch", "repeat"])}
    assert answer["means"]["roc_auc"]["3"] == pytest.approx(np.mean([auc[(3, r)] for r in range(4)]))
    for metric, cls in (("sensitivity", 1), ("specificity", 0)):
        rate = {(a, r): confusion_matrix(g["label"], g["score"] >= 0.5, normalize="true")[cls, cls]
                for (a, r), g in frame.groupby(["arch", "repeat"])}
        c = answer["real_gain"][metric]
        assert c["diff"] == pytest.approx(np.mean([rate[(3, r)] - rate[(2, r)] for r in range(4)]))
        assert c["ci_low"] < c["diff"] < c["ci_high"] and c["verdict"] in ("better", "worse", "no clear difference")
        vs_real = next(x for x in answer["comparisons"] if (x["metric"], x["arch"], x["reference"]) == (metric, 4, 3))
        assert vs_real["verdict"] == paired.versus_real(vs_real, 0.05)  # the rate margin, 5 points by default
    assert answer["margins"] == {"f1": 0.02, "roc_auc": 0.02, "sensitivity": 0.05, "specificity": 0.05}
    assert "At probability 0.5, real DES changes sensitivity by " in answer["sentence"]


def test_null_says_no_difference_at_the_nominal_rate() -> None:
    """200 null studies (every architecture the same model up to training noise): the real-DES 'gain' interval
    excludes 0 in about 5% of them, and the sentence says "no clear difference" otherwise."""
    rng = np.random.default_rng(5)
    studies, flagged, said = 200, {"f1": 0, "roc_auc": 0}, 0
    for _ in range(studies):
        answer = analyse(simulated_study(rng), AnalysisConfig(bootstrap=300, virtual=(4,)))
        for metric in flagged:
            flagged[metric] += answer["real_gain"][metric]["verdict"] != "no clear difference"
        said += "no clear difference" in answer["sentence"]
    for metric, count in flagged.items():
        # Binomial(200, 0.05): 2.5th-97.5th percentile 4-17; an interval that ignored the patients or the
        # repeats would flag far more, one that double-counted them far fewer.
        assert 2 <= count <= 18, (metric, count)
    assert said >= studies - flagged["f1"]


def test_intervals_cover_a_known_difference() -> None:
    """With a real effect the interval covers the population difference (from a 3000-patient, 40-repeat
    study) in about 95% of 120 studies, and the gain is found in nearly all with 10 repeats."""
    big = score_table(simulated_study(np.random.default_rng(6), patients=3000, repeats=40, effects={3: 1.0}))
    unit = np.ones((1, len(big.crop_ids)))
    values = paired.metric_values(big, "f1", unit, 0.5)[0]
    truth = float(np.mean(values[big.index(3)] - values[big.index(2)]))
    rng = np.random.default_rng(7)
    covered = found = 0
    for _ in range(120):
        gain = analyse(simulated_study(rng, repeats=10, effects={3: 1.0}),
                       AnalysisConfig(bootstrap=300, virtual=(4,)))["real_gain"]["f1"]
        covered += gain["ci_low"] <= truth <= gain["ci_high"]
        found += gain["verdict"] == "better"
    assert 106 <= covered <= 120  # Binomial(120, 0.95): 2.5th percentile 109; a little slack for the df
    assert found >= 110


def test_verdicts_on_clear_cases_and_the_sentence() -> None:
    rng = np.random.default_rng(8)
    frame = simulated_study(rng, patients=60, repeats=6, archs=(2, 3, 4, 6), effects={3: 3.0, 4: 3.0})
    same = frame[frame["arch"] == 3].assign(arch=4)  # #4 scores exactly as real DES: non-inferior
    frame = pd.concat([frame[frame["arch"] != 4], same], ignore_index=True)
    answer = analyse(frame, AnalysisConfig(bootstrap=300, virtual=(4, 6)),
                     names={4: "#4 U-Net/PT", 6: "#6 CycleGAN"})
    assert answer["verdicts"]["4"] == {"vs_real": "non-inferior", "vs_no_des": "better"}
    assert answer["verdicts"]["6"]["vs_real"] == "inferior"  # #6 is no DES, far below real
    assert answer["recovered"]["4"]["f1"]["fraction"] == pytest.approx(1.0)
    assert answer["sentence"].startswith(f"On {answer['crops']} test crops of 60 patients over 6 repeats, "
                                         "#4 U-Net/PT (+0.0 vs real DES")
    assert "can replace the real DES at a 2-point F1 margin" in answer["sentence"]


def test_margin_is_a_validated_config_field() -> None:
    assert analysis_config({"margin": 0.05}, margin=None).margin == 0.05
    assert analysis_config({"margin": 0.05}, margin=0.01).margin == 0.01
    with pytest.raises(BadInputError, match="margin"):
        analysis_config({"margin": 2})
    with pytest.raises(BadInputError, match="unknown config field"):
        analysis_config({"margn": 0.02})
    with pytest.raises(BadInputError, match="evaluate config field 'analysis'.*'margin'"):
        EvaluateConfig(analysis={"margin": 2})  # an evaluation config is refused before any job runs


def test_unpaired_predictions_are_refused_by_name() -> None:
    frame = simulated_study(np.random.default_rng(9), repeats=2)
    broken = frame.drop(frame[(frame["arch"] == 4) & (frame["repeat"] == 1)].index[:3])
    with pytest.raises(BadInputError, match="#4 repeat 1 lack"):
        score_table(broken)


def test_an_undecided_answer_says_what_would_decide_it() -> None:
    from vdes_tune.evaluation import power

    frame = simulated_study(np.random.default_rng(11), patients=12, repeats=3, effects={3: 2.0})
    answer = analyse(frame, AnalysisConfig(bootstrap=300, virtual=(4,)))
    gain, patients = answer["real_gain"]["f1"], answer["patients"]
    assert gain["verdict"] == "no clear difference"
    comp = power.components(gain, patients)
    # Here the repeats dominate: 3 repeats never decide it, 30 do with this run's patients.
    assert power.patients_needed(comp, 3, "none", fewest=patients) is None
    assert power.patients_needed(comp, 30, "none", fewest=patients) == patients
    assert power.decisive(power.verdict_chances(comp, patients, 30, "none")) >= 0.8
    assert f"you need 30 repeats with this run's {patients} test patients; more repeats alone could" in \
        answer["sentence"]
    # The projection at the run's own size is the answer's interval.
    assert power.half_width(comp, patients, 3) == pytest.approx((gain["ci_high"] - gain["ci_low"]) / 2)


def test_a_repeats_own_test_sample_noise_is_the_interaction_not_the_shared_patient_part() -> None:
    point = np.array([[0.6, 0.7, 0.8], [0.5, 0.5, 0.6]])
    a, b, c = (np.tile(np.array(p) * 0.03, 25) for p in ([1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]))
    boot = np.repeat(point[None], 100, axis=0)
    boot[:, 0, :] += np.stack([a, b, c], axis=1)  # each repeat its own shift, uncorrelated with the others'
    found = paired.difference(point, boot, 0, 1, 0.95)
    assert found["se_patients"] == pytest.approx(0.0, abs=1e-12)
    assert found["se_interaction"] ** 2 == pytest.approx(np.var(a, ddof=1))


def test_an_undecided_non_inferiority_says_what_would_decide_it_at_the_margin() -> None:
    from vdes_tune.evaluation import power

    frame = simulated_study(np.random.default_rng(13), patients=40, repeats=5, effects={3: 2.5, 4: 2.0})
    answer = analyse(frame, AnalysisConfig(bootstrap=300, virtual=(4,)), names={4: "#4 U-Net/PT"})
    c = next(c for c in answer["comparisons"] if (c["metric"], c["arch"], c["reference"]) == ("f1", 4, 3))
    assert answer["real_gain"]["f1"]["verdict"] == "better" and c["verdict"] == "inconclusive"
    comp = power.components(c, 40)
    # It sits 0.2 points from the -2-point margin: thousands of test patients, never more repeats alone.
    needed = [power.patients_needed(comp, r, "real", 0.02, fewest=40) for r in (5, 30)]
    assert needed[0] > needed[1] > 1000
    assert (f"To decide #4 U-Net/PT at the 2-point margin with 80% power (its difference taken as the truth) you "
            f"need about {needed[0]} test patients at 5 repeats or about {needed[1]} test patients at 30 repeats; "
            f"this run had 40 test patients; more repeats alone cannot") in answer["sentence"]
