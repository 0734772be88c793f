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


def ssim_map(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-pixel SSIM of two H x W images (Gaussian window 11, sigma 1.5, reflected border)."""
    import cv2

    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    blur = lambda a: cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mp, mt = blur(p), blur(t)
    vp, vt, cov = blur(p * p) - mp ** 2, blur(t * t) - mt ** 2, blur(p * t) - mp * mt
    return ((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp ** 2 + mt ** 2 + c1) * (vp + vt + c2))


def image_metrics(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> dict:
    """MSE, PSNR (dB) and SSIM (Gaussian window 11, sigma 1.5) of images in [0, data_range], N x H x W."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    mse = float(np.mean((pred - target) ** 2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))
    scores = [ssim_map(p, t, data_range)[5:-5, 5:-5].mean()  # drop the border the window cannot fill
              for p, t in zip(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:]))]
    return {"mse": mse, "psnr": psnr, "ssim": float(np.mean(scores))}


def cnr(image: np.ndarray, mask: np.ndarray) -> float:
    """Contrast-to-noise ratio of a region: (mean inside - mean outside) / std outside (NaN without both)."""
    inside, outside = image[mask], image[~mask]
    if inside.size == 0 or outside.size < 2 or outside.std() == 0:
        return float("nan")
    return float((inside.mean() - outside.mean()) / outside.std())


def lesion_metrics(pred: np.ndarray, target: np.ndarray, masks: np.ndarray, data_range: float = 1.0) -> dict:
    """Image quality inside the annotated lesions (N x H x W images, boolean masks): MSE and PSNR over the
    lesion pixels of all crops, SSIM averaged over them, and the lesion's contrast-to-noise ratio on the
    virtual and the real DES with their mean absolute difference. Crops without lesion pixels are left out."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    masks = np.asarray(masks, bool).reshape(pred.shape)
    keep = masks.reshape(len(masks), -1).any(axis=1)
    if not keep.any():
        nan = float("nan")
        return {"lesion_crops": 0, "lesion_mse": nan, "lesion_psnr": nan, "lesion_ssim": nan,
                "lesion_cnr": nan, "lesion_cnr_real": nan, "lesion_cnr_error": nan}
    pred, target, masks = pred[keep], target[keep], masks[keep]
    mse = float(np.mean((pred[masks] - target[masks]) ** 2))
    ssim = np.concatenate([ssim_map(p, t, data_range)[m] for p, t, m in zip(pred, target, masks)])
    virtual = np.array([cnr(p, m) for p, m in zip(pred, masks)])
    real = np.array([cnr(t, m) for t, m in zip(target, masks)])
    return {"lesion_crops": int(keep.sum()), "lesion_mse": mse,
            "lesion_psnr": float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse)),
            "lesion_ssim": float(ssim.mean()), "lesion_cnr": float(np.nanmean(virtual)),
            "lesion_cnr_real": float(np.nanmean(real)), "lesion_cnr_error": float(np.nanmean(np.abs(virtual - real)))}
