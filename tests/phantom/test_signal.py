"""The phantom's signal model: its truth parameters have the designed structure, and the pixels show it.

Truth-level checks draw thousands of lesions from `signal` directly (milliseconds). Pixel-level checks
cut crops out of written datasets at the truth sidecar's positions (no ingest, no Ray) and measure them
with the probe's hand-made features and scikit-learn's ROC-AUC.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vdes_tune.config import SynthConfig
from vdes_tune.phantom import signal
from vdes_tune.phantom.dataset import write_dataset
from vdes_tune.evaluation.probe import crop_features, probe_auc

LE_DIR, DES_DIR = "Low energy images of CDD-CESM", "Subtracted images of CDD-CESM"
HALF = 32  # 64-px crops, the demo's size


def _draws(name: str, n: int = 3000, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """n lesions per class (kind = mass) of preset `name`: labels and their truth parameters."""
    rng = np.random.default_rng(seed)
    sig = signal.preset(name)
    lesions = [signal.new_lesion(rng, sig, "mass", bool(m), 1.0) for m in (0, 1) for _ in range(n)]
    y = np.repeat([0, 1], n)
    params = {k: np.array([getattr(les, k) for les in lesions], float)
              for k in ("suspicion", "look", "le_contrast", "margin_blur", "des_enhancement", "des_predicted")}
    params["spiculated"] = np.array([les.spicules > 0 for les in lesions], float)
    return y, params


def test_paper_preset_overlaps_and_des_adds_what_le_lacks() -> None:
    y, p = _draws("paper")
    auc = {k: roc_auc_score(y, v) for k, v in p.items()}
    # The suspicion separates the classes but they overlap: no parameter is a giveaway.
    assert 0.85 < auc["suspicion"] < 0.99, auc
    for visible in ("le_contrast", "margin_blur", "spiculated"):
        assert 0.65 < auc[visible] < 0.98, (visible, auc)
    # Where LE is ambiguous (a middling look), DES still tells the classes apart: it carries more than LE.
    mid = (p["look"] > 0.3) & (p["look"] < 0.7)
    assert mid.sum() > 200 and 0 < y[mid].mean() < 1
    assert roc_auc_score(y[mid], p["des_enhancement"][mid]) > roc_auc_score(y[mid], p["look"][mid]) + 0.15
    # The DES part LE predicts is a function of the look alone; the rest (class part + noise) is not.
    slope, intercept = np.polyfit(p["look"], p["des_predicted"], 1)
    assert np.allclose(intercept + slope * p["look"], p["des_predicted"], atol=1e-6)
    residual = p["des_enhancement"] - p["des_predicted"]
    assert roc_auc_score(y, residual) > 0.9
    assert abs(np.corrcoef(residual[y == 1], p["look"][y == 1])[0, 1]) < 0.1  # within a class: not from LE


def test_null_preset_parameters_ignore_the_class() -> None:
    y, p = _draws("null")
    for name, values in p.items():
        assert 0.45 < roc_auc_score(y, values) < 0.55, name


def test_des_only_preset_keeps_the_class_out_of_le() -> None:
    y, p = _draws("des-only")
    for visible in ("look", "le_contrast", "margin_blur"):
        assert 0.45 < roc_auc_score(y, p[visible]) < 0.55, visible
    assert roc_auc_score(y, p["des_enhancement"]) > 0.97


@pytest.mark.parametrize("name", ["paper", "null", "des-only"])
def test_breast_plan_class_mix(name: str) -> None:
    rng = np.random.default_rng(1)
    sig = signal.preset(name)
    plans = [signal.plan_breast(rng, sig, 1.0) for _ in range(4000)]
    pathology = np.array([p for p, _ in plans])
    assert abs((pathology == "Normal").mean() - sig.normal) < 0.03
    # Crops: one per lesion of a lesion breast (BI-RADS 3 excluded), one per normal breast.
    crops = {"Normal": 0, "Benign": 0, "Malignant": 0}
    for path, lesions in plans:
        if any(b == 3 for _, b in lesions):
            continue
        crops[path] += max(1, len(lesions))
    share = crops["Malignant"] / sum(crops.values())
    assert 0.38 < share < 0.50, (name, crops)  # the paper's 581 / 1362 = 0.43


# ---- pixels ------------------------------------------------------------------------------------------

def _crops(root: Path) -> dict[str, np.ndarray]:
    """64-px LE and registered-DES crops at every truth lesion and at one tissue point of every normal pair."""
    rows = list(csv.DictReader(open(root / "synthetic_truth.csv", newline="")))
    le_c, des_c, labels, groups, kinds, spic, radii = [], [], [], [], [], [], []
    for r in rows:
        le = cv2.imread(str(root / LE_DIR / r["le_file"]), cv2.IMREAD_GRAYSCALE)
        des = cv2.imread(str(root / DES_DIR / r["des_file"]), cv2.IMREAD_GRAYSCALE)
        tx, ty = int(r["tx"]), int(r["ty"])
        if r["lesion_kind"]:
            cx, cy = int(round(float(r["cx"]))), int(round(float(r["cy"])))
        else:  # normal: the centre of the breast, which lies well inside the tissue of both images
            cx, cy = int(0.35 * le.shape[1]) if r["side"] == "L" else int(0.65 * le.shape[1]), le.shape[0] // 2
        a = le[cy - HALF:cy + HALF, cx - HALF:cx + HALF]
        b = des[cy - ty - HALF:cy - ty + HALF, cx - tx - HALF:cx - tx + HALF]
        if a.shape != (2 * HALF, 2 * HALF) or b.shape != a.shape:
            continue
        le_c.append(a)
        des_c.append(b)
        labels.append(int(r["pathology"] == "Malignant"))
        groups.append(int(r["patient_id"]))
        kinds.append(r["lesion_kind"] or "normal")
        spic.append(int(r["spicules"] or 0))
        radii.append(float(r["radius"] or 0))
    return {"le": np.stack(le_c), "des": np.stack(des_c), "y": np.array(labels), "groups": np.array(groups),
            "kind": np.array(kinds), "spicules": np.array(spic), "radius": np.array(radii)}


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in ("paper", "null"):
        root = write_dataset(SynthConfig(patients=30, seed=21, signal=name), tmp_path_factory.mktemp(name) / "raw").out
        out[name] = _crops(root)
    return out


def _auc(c: dict[str, np.ndarray], mod: str) -> float:
    feats = np.stack([crop_features(img) for img in c[mod]])
    return probe_auc(feats, c["y"], c["groups"], folds=4, seed=0)["auc"]


def test_le_features_separate_classes_on_paper(crops: dict) -> None:
    c = crops["paper"]
    assert 0.35 < c["y"].mean() < 0.55
    assert _auc(c, "le") > 0.75
    assert _auc(c, "des") > 0.8


def test_null_separates_nothing(crops: dict) -> None:
    c = crops["null"]
    assert set(c["kind"]) <= {"mass", "calcification", "non_mass"}  # no normal pair: every crop is a lesion
    for mod in ("le", "des"):
        assert 0.3 < _auc(c, mod) < 0.7, mod


def test_spiculated_masses_reach_beyond_their_margin_on_le(crops: dict) -> None:
    c = crops["paper"]
    masses = c["kind"] == "mass"
    r = np.hypot(*np.mgrid[-HALF:HALF, -HALF:HALF] + 0.5)
    le = c["le"].astype(np.float32)
    # Mean LE just outside each mass's margin (1.4-1.9 radii), above the crop's corners.
    reach = np.array([img[(r > 1.4 * rad) & (r < 1.9 * rad)].mean() - np.median(img[r > 30]) if m else 0.0
                      for img, rad, m in zip(le, c["radius"], masses)])
    spiculated = masses & (c["spicules"] > 0)
    assert spiculated.sum() >= 3 and (masses & (c["spicules"] == 0)).sum() >= 3
    assert roc_auc_score(spiculated[masses], reach[masses]) > 0.7
