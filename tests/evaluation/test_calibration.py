"""Calibration (ECE, reliability bins) against scikit-learn's calibration_curve and hand values, and the
lesion-region image quality against hand-made images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve

from vdes_tune.evaluation.calibration import calibration_table, ece, reliability
from vdes_tune.training.metrics import cnr, image_metrics, lesion_metrics


def test_reliability_bins_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    prob = rng.random(500)
    labels = (rng.random(500) < prob ** 2).astype(int)  # over-confident: true rate below the probability
    table = reliability(labels, prob, bins=10)
    true, predicted = calibration_curve(labels, prob, n_bins=10, strategy="uniform")
    assert np.allclose(table["fraction_malignant"], true) and np.allclose(table["mean_predicted"], predicted)
    counts = np.histogram(prob, bins=np.linspace(0, 1, 11))[0]
    by_hand = sum(c / 500 * abs(t - p) for c, t, p in zip(counts[counts > 0], true, predicted))
    assert ece(labels, prob, 10) == pytest.approx(by_hand)
    assert ece(labels, prob, 10) > 0.1


def test_ece_by_hand() -> None:
    # Two bins used: [0.1, 0.2) holds 0.15 x2 with one malignant (|0.5 - 0.15|), [0.9, 1] holds 0.95 x2 with
    # two malignant (|1 - 0.95|): ECE = 0.5 * 0.35 + 0.5 * 0.05 = 0.2.
    assert ece(np.array([0, 1, 1, 1]), np.array([0.15, 0.15, 0.95, 0.95]), 10) == pytest.approx(0.2)
    assert ece(np.array([0, 1]), np.array([0.0, 1.0]), 10) == pytest.approx(0.0)


def test_calibration_table_per_architecture_and_repeat() -> None:
    rows = []
    for arch, prob in ((1, 0.9), (3, 0.5)):
        for repeat in range(3):
            rows += [{"arch": arch, "repeat": repeat, "split": "test", "label": y, "score": prob}
                     for y in (0, 1, 1, 0)]
    table = calibration_table(pd.DataFrame(rows)).set_index("arch")
    assert table.loc[1, "ece_mean"] == pytest.approx(0.4) and table.loc[3, "ece_mean"] == pytest.approx(0.0)
    assert table.loc[1, "repeats"] == 3 and table.loc[1, "ece_pooled"] == pytest.approx(0.4)


def test_lesion_metrics_see_only_the_lesion() -> None:
    rng = np.random.default_rng(1)
    real = rng.random((4, 32, 32)) * 0.2
    mask = np.zeros((4, 32, 32), bool)
    mask[:, 12:20, 12:20] = True
    mask[3] = False  # a normal crop: left out of the lesion figures
    real[mask] += 0.6
    virtual = real.copy()
    virtual[~mask] += 0.1  # wrong everywhere but inside the lesion
    found = lesion_metrics(virtual, real, mask)
    assert found["lesion_crops"] == 3 and found["lesion_mse"] == 0 and found["lesion_psnr"] == float("inf")
    assert image_metrics(virtual, real)["psnr"] < 25
    blank = virtual.copy()
    blank[mask] = real[~mask].mean()  # the lesion erased: background level inside it
    erased = lesion_metrics(blank, real, mask)
    assert erased["lesion_psnr"] < 6 and erased["lesion_cnr"] < 1 < erased["lesion_cnr_real"]


def test_cnr_by_hand() -> None:
    image = np.zeros((4, 4))
    image[0, 0] = 10.0
    image[3, :] = [1.0, -1.0, 1.0, -1.0]
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    outside = image[~mask]
    assert cnr(image, mask) == pytest.approx((10.0 - outside.mean()) / outside.std())
