"""Crop placement on a registered pair: lesion-centred for regions, random inside breast tissue for normals."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    """Half-open pixel rectangle [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass(frozen=True)
class CropSpec:
    """Where one crop sits on the LE grid and why it was placed there."""

    x0: int
    y0: int
    cx: float
    cy: float
    source: str  # "lesion:le", "lesion:des" (region drawn on the DES, mapped through registration) or "random"
    region_line: int  # line of the VIA CSV the region came from; -1 for random crops
    tissue_fraction: float


def stable_seed(*parts: Any) -> int:
    """A 63-bit integer from any values, independent of Python's hash randomisation."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def region_mask(region: dict[str, Any], shape: tuple[int, int], dx: int = 0, dy: int = 0) -> np.ndarray:
    """Filled mask of a VIA region on an image of `shape`, shifted by (dx, dy)."""
    mask = np.zeros(shape, dtype=np.uint8)
    name = region["name"]
    if name in ("polygon", "polyline"):
        pts = np.stack([np.asarray(region["all_points_x"], float) + dx,
                        np.asarray(region["all_points_y"], float) + dy], axis=1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)  # polylines are filled like polygons
    elif name == "ellipse":
        angle = float(np.degrees(region.get("theta", 0.0) or 0.0))
        cv2.ellipse(mask, (round(region["cx"] + dx), round(region["cy"] + dy)),
                    (max(1, round(region["rx"])), max(1, round(region["ry"]))), angle, 0, 360, 1, -1)
    elif name == "circle":
        cv2.circle(mask, (round(region["cx"] + dx), round(region["cy"] + dy)), max(1, round(region["r"])), 1, -1)
    elif name == "point":
        cv2.circle(mask, (round(region["cx"] + dx), round(region["cy"] + dy)), 1, 1, -1)
    else:
        raise ValueError(f"unknown region shape {name!r}")
    return mask.astype(bool)


def region_centre(region: dict[str, Any], dx: int = 0, dy: int = 0) -> tuple[float, float]:
    """Centre of a region in image coordinates: area centroid for polygons, the given centre otherwise."""
    if region["name"] in ("polygon", "polyline"):
        xs = np.asarray(region["all_points_x"], float)
        ys = np.asarray(region["all_points_y"], float)
        pts = np.stack([xs, ys], axis=1).astype(np.float32)
        m = cv2.moments(pts)
        if len(xs) >= 3 and abs(m["m00"]) > 1e-6:
            return m["m10"] / m["m00"] + dx, m["m01"] / m["m00"] + dy
        return float(xs.mean()) + dx, float(ys.mean()) + dy  # degenerate outline: mean of its points
    return float(region["cx"]) + dx, float(region["cy"]) + dy


def place(cx: float, cy: float, size: int, bounds: Box) -> tuple[int, int]:
    """Top-left of a size x size crop centred on (cx, cy) as nearly as `bounds` allows."""
    x0 = int(np.floor(cx - size / 2 + 0.5))
    y0 = int(np.floor(cy - size / 2 + 0.5))
    return min(max(x0, bounds.x0), bounds.x1 - size), min(max(y0, bounds.y0), bounds.y1 - size)


def breast_mask(le: np.ndarray) -> np.ndarray:
    """Breast tissue on the LE: Otsu threshold of a blurred copy, largest connected component."""
    blurred = cv2.GaussianBlur(le, (0, 0), 3)
    _, mask = cv2.threshold(blurred, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(le.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def tissue_fraction_map(mask: np.ndarray, size: int) -> np.ndarray:
    """Fraction of tissue in every size x size window, indexed by the window's top-left corner."""
    integral = cv2.integral(mask.astype(np.uint8), sdepth=cv2.CV_64F)
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    return sums / float(size * size)


def lesion_crops(
    le_regions: list[dict[str, Any]],
    des_regions: list[dict[str, Any]],
    tx: int,
    ty: int,
    size: int,
    bounds: Box,
    merge_distance: float,
    mask: np.ndarray,
) -> list[CropSpec]:
    """One crop per distinct lesion; LE regions first, DES regions mapped through the registration."""
    centres: list[tuple[float, float, str, int]] = []
    for regions, dx, dy, source in ((le_regions, 0, 0, "lesion:le"), (des_regions, tx, ty, "lesion:des")):
        for region in regions:
            cx, cy = region_centre(region, dx, dy)
            # The same lesion is often drawn on both images, or twice: keep the first drawing of it.
            if all(np.hypot(cx - ox, cy - oy) > merge_distance for ox, oy, _, _ in centres):
                centres.append((cx, cy, source, int(region.get("line", -1))))
    specs = []
    for cx, cy, source, line in centres:
        x0, y0 = place(cx, cy, size, bounds)
        frac = float(mask[y0:y0 + size, x0:x0 + size].mean())
        specs.append(CropSpec(x0, y0, cx, cy, source, line, frac))
    return specs


def random_tissue_crops(
    mask: np.ndarray, size: int, bounds: Box, count: int, min_fraction: float, seed: int
) -> list[CropSpec]:
    """Up to `count` non-overlapping crops whose windows are at least `min_fraction` tissue, drawn by seed."""
    fractions = tissue_fraction_map(mask[bounds.y0:bounds.y1, bounds.x0:bounds.x1], size)
    ys, xs = np.nonzero(fractions >= min_fraction)
    if len(ys) == 0:
        return []
    rng = np.random.default_rng(seed)
    chosen: list[CropSpec] = []
    for i in rng.permutation(len(ys)):
        x0, y0 = int(xs[i]) + bounds.x0, int(ys[i]) + bounds.y0
        if all(abs(x0 - c.x0) >= size or abs(y0 - c.y0) >= size for c in chosen):
            chosen.append(CropSpec(x0, y0, x0 + size / 2, y0 + size / 2, "random", -1,
                                   float(fractions[ys[i], xs[i]])))
            if len(chosen) == count:
                break
    return chosen
