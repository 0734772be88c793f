"""Tiled inference of any size of image: reflect padding to the network's multiple, overlapping tiles, blending.

Tiles start on multiples of the network's `multiple`, so a U-Net's pooling grid is the whole image's grid and
a tile's interior equals whole-image inference. Where two tiles overlap, the outer quarter of the overlap on
each tile's side is context only (weight 0: a tile's border suffers its own zero padding), and the middle
half blends linearly; the weights of two neighbours sum to exactly 1, and every pixel is normalised by the
sum of the weights that reach it, so denser tilings (three tiles on one pixel) blend correctly too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F


DEFAULT_TILE = 1024  # px; tiles of a network without per-image statistics (memory, not accuracy, sets it)


def default_tiling(per_image_norm: bool, crop_size: int | None) -> tuple[int, int]:
    """(tile, overlap) by default: the training crop for a per-image-norm network (as it trained), else 1024."""
    from vdes_tune.config import IngestConfig

    tile = (crop_size or IngestConfig().crop_size) if per_image_norm else DEFAULT_TILE
    return tile, tile // 4


@dataclass(frozen=True)
class Tiling:
    """How one image is cut: tile side (0: the whole image in one pass), overlap, multiple of the network,
    and up to how many (padded) pixels an image runs whole instead (0: never)."""

    tile: int
    overlap: int
    multiple: int
    whole_up_to: int = 0


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad N x C x H x W at the bottom and right to multiples of `multiple` by reflection (replicate if tiny)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    # Reflection needs the pad to be shorter than the side; a tiny image repeats its last row instead.
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Evenly spread starts of `tile`-long tiles covering [0, length), neighbours sharing >= `overlap`.

    `length` and `tile` are multiples of `multiple`, and so is every start.
    """
    if tile >= length:
        return [0]
    free, step = (length - tile) // multiple, (tile - _ceil_div(overlap, multiple) * multiple) // multiple
    if step < 1:
        raise ValueError(f"overlap {overlap} leaves no step for tiles of {tile} px (multiple {multiple})")
    gaps = _ceil_div(free, step)
    # Integer spacing: consecutive starts differ by at most ceil(free / gaps) <= step units.
    return [k * free // gaps * multiple for k in range(gaps + 1)]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _ramp(overlap: int, size: int) -> np.ndarray:
    """Weight rising from the tile edge into a neighbour's overlap: 0 on the outer quarter, linear, then 1."""
    k = np.arange(size, dtype=np.float64)
    if overlap <= 0:
        return np.ones(size)
    margin = overlap // 4
    return np.clip((k - margin + 0.5) / (overlap - 2 * margin), 0.0, 1.0)


def axis_weights(starts: list[int], size: int) -> list[np.ndarray]:
    """Blending weight of each tile along one axis (tiles of `size` at `starts`)."""
    weights = []
    for i, start in enumerate(starts):
        w = np.ones(size)
        if i > 0:
            w = np.minimum(w, _ramp(starts[i - 1] + size - start, size))
        if i + 1 < len(starts):
            w = np.minimum(w, _ramp(start + size - starts[i + 1], size)[::-1])
        weights.append(w)
    return weights


def plan_tiles(height: int, width: int, tiling: Tiling) -> tuple[int, int, list[tuple[int, int, np.ndarray]]]:
    """(tile height, tile width, [(y0, x0, 2-D weight)]) for a padded image of height x width."""
    whole = tiling.tile == 0 or height * width <= tiling.whole_up_to
    th = height if whole else min(tiling.tile, height)
    tw = width if whole else min(tiling.tile, width)
    ys = tile_starts(height, th, tiling.overlap, tiling.multiple)
    xs = tile_starts(width, tw, tiling.overlap, tiling.multiple)
    wy, wx = axis_weights(ys, th), axis_weights(xs, tw)
    return th, tw, [(y, x, np.outer(a, b).astype(np.float32)) for y, a in zip(ys, wy) for x, b in zip(xs, wx)]


def infer_tiled(model: Callable[[torch.Tensor], torch.Tensor], image: np.ndarray, tiling: Tiling,
                batch_size: int = 4) -> tuple[np.ndarray, int]:
    """(H x W float32 output, tiles run) of a network (N x 1 x h x w -> same) on a 2-D image, tiled, blended."""
    h, w = image.shape
    x = pad_to_multiple(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None],
                        tiling.multiple)[0, 0]
    ph, pw = x.shape
    th, tw, tiles = plan_tiles(ph, pw, tiling)
    out, total = np.zeros((ph, pw), np.float32), np.zeros((ph, pw), np.float32)
    for k in range(0, len(tiles), batch_size):
        group = tiles[k:k + batch_size]
        batch = torch.stack([x[y:y + th, c:c + tw] for y, c, _ in group])[:, None]
        pred = model(batch).float().cpu().numpy()[:, 0]
        for (y, c, weight), p in zip(group, pred):
            out[y:y + th, c:c + tw] += weight * p
            total[y:y + th, c:c + tw] += weight
    if len(tiles) > 1:
        out /= total
    return out[:h, :w], len(tiles)
