"""Signal probe: hand-made features of a crop and a patient-grouped logistic-regression ROC-AUC, no CNN.

It answers "how much malignant-vs-non-malignant information does this image modality carry?" cheaply, so
the phantom (or a real dataset) can be checked before any network is trained on it.
"""

from __future__ import annotations

import functools
import math
from typing import Iterator

import cv2
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# Radii are fractions of the crop side, so a 64 px and a 224 px crop of the same lesion field agree.
RINGS = ((0.0, 0.06), (0.06, 0.12), (0.12, 0.20), (0.20, 0.30))
ANNULUS = (0.34, 0.48)
CENTRE = 0.30  # the zone where the lesion (if any) lies
BORDER = (0.06, 0.30)  # where a blob's margin is for the lesion sizes of a crop
# Calcifications and spicules are a pixel or two wide whatever the crop size, so the fine scale is in pixels.
FINE_SIGMA = 1.0
PEAK_SIGMAS = 4.0  # a DoG local maximum counts above this many robust noise sigmas
TEXTURE_WINDOW = 7

FEATURE_NAMES = (
    *(f"ring{i}_minus_annulus" for i in range(len(RINGS))),
    "annulus_mean", "annulus_std", "centre_std", "centre_p90_minus_annulus_p50", "centre_p10_minus_annulus_p50",
    "contrast_over_background_std", "crop_mean", "crop_std",
    "border_grad_mean", "border_grad_over_annulus_grad", "border_radial_alignment", "border_coherence",
    "fine_dog_max_centre", "fine_dog_p99_centre_minus_annulus", "fine_peaks_centre", "fine_peaks_annulus_density",
    "fine_blobs", "fine_blob_area_mean", "fine_blob_elongation_mean", "fine_blob_elongation_max",
    "fine_linear_blobs",
    "texture_centre", "texture_annulus", "texture_ratio", "texture_crop",
)


@functools.lru_cache(maxsize=8)
def _geometry(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised radius and the unit radial direction (x, y) of every pixel of a size x size crop."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = x - c, y - c
    r = np.sqrt(dx * dx + dy * dy)
    safe = np.maximum(r, 1e-6)
    return r / size, dx / safe, dy / safe


def _zone(r: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (r >= lo) & (r < hi)


def _blob_shapes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area and elongation (1 - minor/major second-moment eigenvalue) of each 8-connected blob of `mask`."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(0), np.zeros(0)
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    # Second moments for all blobs at once with bincount, instead of a Python loop per blob.
    area = np.bincount(lab, minlength=n)[1:].astype(np.float64)
    mx = np.bincount(lab, xs, n)[1:] / area
    my = np.bincount(lab, ys, n)[1:] / area
    sxx = np.bincount(lab, xs * xs, n)[1:] / area - mx * mx + 1 / 12  # + pixel's own extent
    syy = np.bincount(lab, ys * ys, n)[1:] / area - my * my + 1 / 12
    sxy = np.bincount(lab, xs * ys, n)[1:] / area - mx * my
    half_trace, root = (sxx + syy) / 2, np.sqrt(((sxx - syy) / 2) ** 2 + sxy**2)
    major, minor = half_trace + root, np.maximum(half_trace - root, 0.0)
    return area, 1.0 - minor / np.maximum(major, 1e-9)


def crop_features(img: np.ndarray) -> np.ndarray:
    """A fixed-length float vector (see FEATURE_NAMES) of one square uint8 grayscale crop, lesion at the centre."""
    if img.ndim != 2 or img.shape[0] != img.shape[1]:
        raise ValueError(f"crop_features needs a square 2-D crop, got shape {img.shape}")
    size = img.shape[0]
    r, ux, uy = _geometry(size)
    f = img.astype(np.float32)
    annulus, centre, border = _zone(r, *ANNULUS), r < CENTRE, _zone(r, *BORDER)
    ann = f[annulus]
    ann_mean, ann_std, ann_p50 = float(ann.mean()), float(ann.std()), float(np.median(ann))
    rings = [float(f[_zone(r, lo, hi)].mean()) - ann_mean for lo, hi in RINGS]
    inner = f[r < RINGS[1][1]]
    c10, c90 = np.percentile(f[centre], [10, 90])

    # Gradients of a lightly smoothed crop: pixel noise would otherwise dominate the magnitudes.
    smooth = cv2.GaussianBlur(f, (0, 0), max(1.0, size / 96))
    gx, gy = cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1)
    mag = np.sqrt(gx * gx + gy * gy)
    bmag = mag[border]
    # A round blob's edge gradients point along the radius; spicules and irregular margins turn them sideways.
    radial = (gx * ux + gy * uy)[border]
    alignment = float((radial**2).sum() / max(float((bmag**2).sum()), 1e-9))
    # Structure-tensor coherence: 1 for locally parallel (linear) structure, 0 for isotropic texture.
    win = (TEXTURE_WINDOW, TEXTURE_WINDOW)
    jxx, jyy, jxy = (cv2.boxFilter(a, -1, win) for a in (gx * gx, gy * gy, gx * gy))
    coh = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-6)

    # Fine difference of Gaussians: small bright dots (calcifications) and thin lines (spicules).
    dog = cv2.GaussianBlur(f, (0, 0), FINE_SIGMA) - cv2.GaussianBlur(f, (0, 0), 2 * FINE_SIGMA)
    noise = 1.4826 * float(np.median(np.abs(dog[annulus] - np.median(dog[annulus])))) + 1e-3
    strong = dog > PEAK_SIGMAS * noise
    peaks = strong & (dog >= cv2.dilate(dog, np.ones((3, 3), np.uint8)))
    area, elong = _blob_shapes(strong & centre)
    dog_c, dog_a = dog[centre], dog[annulus]

    mean = cv2.boxFilter(f, -1, win)
    local_std = np.sqrt(np.maximum(cv2.boxFilter(f * f, -1, win) - mean * mean, 0.0))
    tex_c, tex_a = float(local_std[centre].mean()), float(local_std[annulus].mean())

    centre_area = float(centre.sum())
    values = [
        *rings,
        ann_mean, ann_std, float(inner.std()), float(c90) - ann_p50, float(c10) - ann_p50,
        rings[1] / (ann_std + 1.0), float(f.mean()), float(f.std()),
        float(bmag.mean()), float(bmag.mean()) / (float(mag[annulus].mean()) + 1e-3), alignment,
        float(coh[border].mean()),
        float(dog_c.max()) / noise, (float(np.percentile(dog_c, 99)) - float(np.percentile(dog_a, 99))) / noise,
        float(peaks[centre].sum()),
        float(peaks[centre].sum()) / centre_area - float(peaks[annulus].sum()) / float(annulus.sum()),
        float(len(area)), float(area.mean()) if len(area) else 0.0,
        float(elong.mean()) if len(elong) else 0.0, float(elong.max()) if len(elong) else 0.0,
        float(((elong > 0.8) & (area >= 4)).sum()),
        tex_c, tex_a, tex_c / (tex_a + 1e-3), float(local_std.mean()),
    ]
    return np.asarray(values, dtype=np.float64)


def feature_table(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Features (rows x len(FEATURE_NAMES)) of the raw uint8 image bytes in `frame[column]` (shard layout)."""
    rows = [crop_features(np.frombuffer(blob, np.uint8).reshape(int(h), int(w)))
            for blob, h, w in zip(frame[column], frame["height"], frame["width"])]
    return np.stack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))


def patient_folds(labels: np.ndarray, groups: np.ndarray, folds: int = 5,
                  seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs, stratified by label, with every patient (group) in exactly one test fold."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    yield from splitter.split(np.zeros(len(labels)), labels, groups)


def _nan_result(n: int, k: int, reason: str) -> dict:
    return {"auc": math.nan, "auc_folds": [], "n": n, "positives": k, "folds": 0, "reason": reason}


def probe_auc(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0) -> dict:
    """Pooled out-of-fold ROC-AUC of a standardised logistic regression, folds grouped by patient."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    g = np.asarray(groups)
    n, k = len(y), int(y.sum())
    if x.ndim != 2 or x.shape[0] != n or len(g) != n:
        raise ValueError(f"features {x.shape}, labels ({n},) and groups ({len(g)},) do not line up")
    if n == 0 or k in (0, n):
        return _nan_result(n, k, f"one class only ({n} crops, {k} positive)")
    if not np.isfinite(x).all():
        return _nan_result(n, k, "features contain NaN or infinity")
    # Every fold's training part needs both classes, so at most as many folds as patients of the rarer class.
    usable = min(folds, len(np.unique(g[y == 1])), len(np.unique(g[y == 0])))
    if usable < 2:
        return _nan_result(n, k, "fewer than 2 patients with a positive or with a negative crop")
    oof = np.full(n, np.nan)
    per_fold = []
    for train, test in patient_folds(y, g, usable, seed):
        if len(np.unique(y[train])) < 2:
            return _nan_result(n, k, "a training fold holds one class only")
        model = make_pipeline(StandardScaler(),
                              LogisticRegression(C=0.3, class_weight="balanced", max_iter=5000))
        model.fit(x[train], y[train])
        oof[test] = model.predict_proba(x[test])[:, 1]
        both = len(np.unique(y[test])) == 2
        per_fold.append(float(roc_auc_score(y[test], oof[test])) if both else math.nan)
    return {"auc": float(roc_auc_score(y, oof)), "auc_folds": per_fold, "n": n, "positives": k, "folds": usable,
            "reason": "" if usable == folds else f"{usable} folds: too few patients for {folds}"}
