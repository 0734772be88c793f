"""Classification metrics with malignant (1) as the positive class; image metrics for generators."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """2x2 counts, rows = truth (0, 1), columns = prediction (0, 1)."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    return np.bincount(y_true * 2 + y_pred, minlength=4).reshape(2, 2)


def _f1(tp: float, fp: float, fn: float) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties count one half); NaN with one class."""
    y_true, score = np.asarray(y_true, int), np.asarray(score, float)
    pos, neg = int(y_true.sum()), int((1 - y_true).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), float)
    sorted_scores = score[order]
    # Average ranks over ties, 1-based.
    bounds = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(score)]])
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2
    return float((ranks[y_true == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def classification_metrics(y_true: np.ndarray, prob_malignant: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, binary F1, macro-F1, ROC-AUC and the confusion matrix of one evaluation."""
    y_true = np.asarray(y_true, int)
    y_pred = (np.asarray(prob_malignant, float) >= threshold).astype(int)
    cm = confusion(y_true, y_pred)
    (tn, fp), (fn, tp) = cm
    f1_pos, f1_neg = _f1(tp, fp, fn), _f1(tn, fn, fp)
    return {
        "accuracy": float((tp + tn) / max(cm.sum(), 1)),
        "f1": float(f1_pos),
        "macro_f1": float((f1_pos + f1_neg) / 2),
        "roc_auc": roc_auc(y_true, prob_malignant),
        "confusion": cm.tolist(),
        "n": int(cm.sum()),
    }


def image_metrics(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> dict:
    """MSE, PSNR (dB) and SSIM (Gaussian window 11, sigma 1.5) of images in [0, data_range], N x H x W."""
    import cv2

    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    mse = float(np.mean((pred - target) ** 2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    scores = []
    for p, t in zip(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])):
        blur = lambda a: cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
        mp, mt = blur(p), blur(t)
        vp, vt, cov = blur(p * p) - mp ** 2, blur(t * t) - mt ** 2, blur(p * t) - mp * mt
        ssim_map = ((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp ** 2 + mt ** 2 + c1) * (vp + vt + c2))
        scores.append(ssim_map[5:-5, 5:-5].mean())  # drop the border the window cannot fill
    return {"mse": mse, "psnr": psnr, "ssim": float(np.mean(scores))}
