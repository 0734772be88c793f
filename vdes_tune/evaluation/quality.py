"""Image quality of each virtual DES against the real DES on the test split: over the whole crop and inside
the annotated lesion (the region the classifier's decision rests on), beside each generator's gain."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vdes_tune.models.architectures import get_architecture
from vdes_tune.training.metrics import image_metrics, lesion_metrics
from vdes_tune.workspace import Workspace, read_manifest

COLUMNS = ["arch", "generator", "split", "n", "repeats", "psnr", "ssim", "mse", "l1", "lesion_crops",
           "lesion_psnr", "lesion_ssim", "lesion_mse", "lesion_cnr", "lesion_cnr_real", "lesion_cnr_error"]


def stack_images(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A frame's image column (uint8 bytes) as an N x H x W array."""
    h, w = int(frame["height"].iloc[0]), int(frame["width"].iloc[0])
    return np.stack([np.frombuffer(b, np.uint8).reshape(h, w) for b in frame[column]])


def quality(pred: np.ndarray, target: np.ndarray, lesion: np.ndarray | None) -> dict[str, Any]:
    """Whole-crop and lesion-region figures of virtual (pred) against real (target) DES, images in [0, 1]."""
    out: dict[str, Any] = {"n": len(pred), **image_metrics(pred, target),
                           "l1": float(np.abs(np.asarray(pred, float) - np.asarray(target, float)).mean())}
    if lesion is not None:
        out.update(lesion_metrics(pred, target, lesion))
    return out


def lesion_masks(frame: pd.DataFrame) -> np.ndarray | None:
    """The crops' lesion masks, or None for shards written before lesion masks were kept."""
    return stack_images(frame, "lesion").astype(bool) if "lesion" in frame.columns else None


def image_quality(workspace: Workspace, plan: dict[str, Any], results: pd.DataFrame) -> pd.DataFrame:
    """Pre-trained generators (#4, #6, #7): the synthesised virtual DES set the classifiers read (8-bit, as they
    saw it); end-to-end ones (#5): the mean over repeats of each repeat's co-trained generator (best epoch), as
    its job measured it."""
    from vdes_tune.training.data import attach_vdes, load_split

    rows: list[dict[str, Any]] = []
    test = None
    for arch, name in sorted(plan.get("vdes", {}).items()):
        made = read_manifest(workspace.vdes(name)) or {}
        if not made.get("complete"):
            continue
        if test is None:
            test = load_split(workspace.dataset.shards, "test")
        with_vdes = attach_vdes(test, workspace.vdes(name), "test")
        scores = quality(stack_images(with_vdes, "vdes") / 255.0, stack_images(with_vdes, "des") / 255.0, lesion_masks(with_vdes))
        rows.append({"arch": int(arch), "generator": str(made.get("name", name)), "split": "test", "repeats": 1,
                     **scores})
    if "image_psnr" in results.columns:
        for arch, runs in results.groupby("arch"):  # end-to-end generators (#5): measured per repeat by the job
            runs = runs.dropna(subset=["image_psnr"])
            if not len(runs):
                continue
            measured = [c.removeprefix("image_") for c in runs.columns if c.startswith("image_")]
            generator = get_architecture(int(arch)).generator
            rows.append({"arch": int(arch), "generator": f"{generator} (end-to-end, per repeat)", "split": "test",
                         "repeats": len(runs), **{k: float(runs[f"image_{k}"].mean()) for k in measured}})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)
