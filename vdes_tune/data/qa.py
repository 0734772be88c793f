"""Quality-assurance outputs of ingest: registration overlays and Table 1."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from vdes_tune.config import CLASS_NAMES, SPLITS


def _normalise(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99.5])
    return np.clip((image.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


def overlay_png(le: np.ndarray, registered_des: np.ndarray, crop_origins: list[tuple[int, int]], size: int,
                title: str = "", tile: int = 48, max_height: int = 768) -> bytes:
    """PNG with a checkerboard of LE and registered DES (left) and a colour fusion (right), crops outlined."""
    a, b = _normalise(le), _normalise(registered_des)
    yy, xx = np.indices(a.shape)
    board = np.where(((yy // tile) + (xx // tile)) % 2 == 0, a, b)
    left = cv2.cvtColor(board, cv2.COLOR_GRAY2BGR)
    right = np.dstack([a, b, a])  # LE magenta, DES green: misalignment shows as coloured fringes
    for x0, y0 in crop_origins:
        for img in (left, right):
            cv2.rectangle(img, (x0, y0), (x0 + size - 1, y0 + size - 1), (0, 215, 255), 2)
    canvas = np.concatenate([left, np.full((a.shape[0], 8, 3), 255, np.uint8), right], axis=1)
    scale = min(1.0, max_height / canvas.shape[0])
    if scale < 1.0:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if title:
        cv2.putText(canvas, title, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", canvas)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


def table1(crops: pd.DataFrame) -> pd.DataFrame:
    """Crops per split and class with each split's share of all crops (the paper's Table 1)."""
    rows = []
    total = len(crops)
    for split in SPLITS:
        part = crops[crops["split"] == split]
        counts = [int((part["label"] == k).sum()) for k in range(len(CLASS_NAMES))]
        rows.append({"split": split, CLASS_NAMES[0]: counts[0], CLASS_NAMES[1]: counts[1], "total": len(part),
                     "percent": round(100.0 * len(part) / total, 1) if total else 0.0})
    counts = [int((crops["label"] == k).sum()) for k in range(len(CLASS_NAMES))]
    rows.append({"split": "all", CLASS_NAMES[0]: counts[0], CLASS_NAMES[1]: counts[1], "total": total,
                 "percent": 100.0 if total else 0.0})
    return pd.DataFrame(rows)


def table_markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
