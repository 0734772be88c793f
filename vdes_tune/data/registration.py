"""Integer-translation registration of DES (floating) onto LE (reference) by mutual information.

Convention: a shift (tx, ty) means LE pixel (x, y) shows the same anatomy as DES pixel
(x - tx, y - ty); the registered DES is R[y, x] = DES[y - ty, x - tx]. Shifts are integers,
so no interpolation ever touches the DES intensities (paper section 2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Registration:
    """Result of one pair's search: the optimum, its MI, MI at zero shift, and bookkeeping."""

    tx: int
    ty: int
    mi: float
    mi_at_zero: float
    at_search_boundary: bool
    evaluations: int


def overlap(le_shape: tuple[int, int], des_shape: tuple[int, int], tx: int, ty: int) -> tuple[slice, slice, slice, slice]:
    """Slices (le_rows, le_cols, des_rows, des_cols) of the region both images cover at a shift."""
    h_le, w_le = le_shape
    h_des, w_des = des_shape
    y0, y1 = max(0, ty), min(h_le, h_des + ty)
    x0, x1 = max(0, tx), min(w_le, w_des + tx)
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"no overlap at shift tx={tx}, ty={ty} for LE {le_shape} and DES {des_shape}")
    return slice(y0, y1), slice(x0, x1), slice(y0 - ty, y1 - ty), slice(x0 - tx, x1 - tx)


def joint_histogram(a: np.ndarray, b: np.ndarray, bins: int = 256) -> np.ndarray:
    """Joint histogram of two equally shaped uint8 images (float64 counts)."""
    # cv2.calcHist reads strided 2-D views without copying and is several times faster than
    # np.bincount on combined keys; its float32 counts are exact below 2**24 per bin.
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size >= 2**24:
        keys = (a.astype(np.int32) * bins // 256) * bins + (b.astype(np.int32) * bins // 256)
        return np.bincount(keys.ravel(), minlength=bins * bins).reshape(bins, bins).astype(np.float64)
    hist = cv2.calcHist([a, b], [0, 1], None, [bins, bins], [0, 256, 0, 256])
    return hist.astype(np.float64)


def mutual_information_from_hist(hist: np.ndarray) -> float:
    """Mutual information in nats of a joint count table (same definition as sklearn's mutual_info_score)."""
    n = hist.sum()
    pa = hist.sum(axis=1)
    pb = hist.sum(axis=0)
    rows, cols = np.nonzero(hist)
    nij = hist[rows, cols]
    # sum_ij n_ij/n * log(n_ij * n / (a_i * b_j)), grouped as sklearn does to agree to rounding.
    terms = (nij / n) * (np.log(nij) - np.log(n) - np.log(pa[rows] * pb[cols]) + 2 * np.log(n))
    terms[np.abs(terms) < np.finfo(np.float64).eps] = 0.0
    return float(max(terms.sum(), 0.0))


def mutual_information(le: np.ndarray, des: np.ndarray, tx: int, ty: int, bins: int = 256) -> float:
    """MI between LE and DES on their overlap at integer shift (tx, ty)."""
    ly, lx, dy, dx = overlap(le.shape, des.shape, tx, ty)
    return mutual_information_from_hist(joint_histogram(le[ly, lx], des[dy, dx], bins))


class _Scorer:
    """Caches MI per shift so the two search levels never evaluate a point twice."""

    def __init__(self, le: np.ndarray, des: np.ndarray, bins: int) -> None:
        self.le = np.ascontiguousarray(le, dtype=np.uint8)
        self.des = np.ascontiguousarray(des, dtype=np.uint8)
        self.bins = bins
        self.cache: dict[tuple[int, int], float] = {}

    def __call__(self, tx: int, ty: int) -> float:
        key = (tx, ty)
        if key not in self.cache:
            self.cache[key] = mutual_information(self.le, self.des, tx, ty, self.bins)
        return self.cache[key]

    def best(self, candidates: list[tuple[int, int]]) -> tuple[int, int]:
        # Ties go to the smallest shift magnitude, then lexicographic, so results are reproducible.
        return max(candidates, key=lambda s: (self(*s), -abs(s[0]) - abs(s[1]), -s[1], -s[0]))


def candidate_grid(max_shift: int, step: int) -> list[int]:
    """Level-1 axis values: multiples of step within [-max_shift, max_shift], always including the ends."""
    values = set(range(0, max_shift + 1, step)) | {max_shift}
    return sorted(values | {-v for v in values})


def register(
    le: np.ndarray,
    des: np.ndarray,
    mode: str = "two-level",
    max_shift: int = 10,
    coarse_step: int = 5,
    refine_radius: int = 2,
    bins: int = 256,
) -> Registration:
    """Find the integer shift of DES onto LE that maximises mutual information."""
    if le.ndim != 2 or des.ndim != 2:
        raise ValueError("register expects 2-D grayscale images")
    score = _Scorer(le, des, bins)
    if mode == "exhaustive":
        axis = list(range(-max_shift, max_shift + 1))
        tx, ty = score.best([(x, y) for y in axis for x in axis])
    elif mode == "two-level":
        axis = candidate_grid(max_shift, coarse_step)
        cx, cy = score.best([(x, y) for y in axis for x in axis])
        near = range(-refine_radius, refine_radius + 1)
        # The refinement stays inside the search window: the paper searched [-10, 10].
        fine = [(cx + dx, cy + dy) for dy in near for dx in near
                if abs(cx + dx) <= max_shift and abs(cy + dy) <= max_shift]
        tx, ty = score.best(fine)
    else:
        raise ValueError(f"unknown registration mode {mode!r}; expected 'two-level' or 'exhaustive'")
    return Registration(
        tx=tx,
        ty=ty,
        mi=score(tx, ty),
        mi_at_zero=score(0, 0),
        at_search_boundary=max(abs(tx), abs(ty)) >= max_shift,
        evaluations=len(score.cache),
    )


def apply_shift(le_shape: tuple[int, int], des: np.ndarray, tx: int, ty: int) -> tuple[np.ndarray, np.ndarray]:
    """Registered DES on the LE grid, and the mask of LE pixels the DES actually covers."""
    registered = np.zeros(le_shape, dtype=des.dtype)
    valid = np.zeros(le_shape, dtype=bool)
    ly, lx, dy, dx = overlap(le_shape, des.shape, tx, ty)
    registered[ly, lx] = des[dy, dx]
    valid[ly, lx] = True
    return registered, valid
