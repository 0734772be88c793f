"""The report's figures as PNG bytes: F1 over repeats per architecture, and a Figure 4-like montage."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def f1_distribution(results: pd.DataFrame) -> bytes:
    """Box plots with every repeat shown as a point: validation and test F1 per architecture."""
    plt = _pyplot()
    archs = sorted(int(a) for a in results["arch"].unique())
    names = {int(a): n for a, n in zip(results["arch"], results["arch_name"])}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for ax, split in zip(axes, ("val", "test")):
        data = [results.loc[results["arch"] == a, f"{split}_f1"].to_numpy() for a in archs]
        ax.boxplot(data, tick_labels=[f"#{a}" for a in archs], showmeans=True, widths=0.55)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=10, alpha=0.6, color="tab:blue")
        ax.set_title(f"{'validation' if split == 'val' else 'test'} F1 over {max(map(len, data))} repeats")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("F1 (malignant positive)")
    fig.text(0.5, -0.04, "   ".join(f"#{a} {names[a]}" for a in archs), ha="center", fontsize=8)
    return _png(fig)


def montage(columns: dict[str, np.ndarray], labels: list[str]) -> bytes:
    """A grid, one row per crop and one column per image source (N x H x W uint8 each), like Figure 4."""
    plt = _pyplot()
    names = list(columns)
    rows = len(labels)
    fig, axes = plt.subplots(rows, len(names), figsize=(1.9 * len(names), 1.9 * rows), squeeze=False)
    for c, name in enumerate(names):
        for r in range(rows):
            ax = axes[r][c]
            ax.imshow(columns[name][r], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=8)
    fig.tight_layout()
    return _png(fig)


def montage_sources(workspace: Any, plan: dict[str, Any], eval_dir: Path, count: int = 4) -> tuple[dict, list[str]]:
    """LE, LED, real DES and every virtual DES of the evaluation for the same test crops (half of each class)."""
    import torch

    from vdes_tune.config import CLASS_NAMES
    from vdes_tune.training.data import attach_vdes, load_split

    test = load_split(workspace.dataset.shards, "test")
    picks = pd.concat([test[test["label"] == k].head((count + 1) // 2) for k in (1, 0)]).head(count)
    h, w = int(picks["height"].iloc[0]), int(picks["width"].iloc[0])

    def images(frame: pd.DataFrame, column: str) -> np.ndarray:
        return np.stack([np.frombuffer(b, np.uint8).reshape(h, w) for b in frame[column]])

    columns = {"LE": images(picks, "le"), "LED": images(picks, "led"), "real DES": images(picks, "des")}
    for arch, name in sorted(plan.get("vdes", {}).items()):
        with_vdes = attach_vdes(picks.reset_index(drop=True), workspace.vdes(name), "test")
        columns[f"#{arch} virtual DES"] = images(with_vdes, "vdes")
    weights = eval_dir / "weights" / "a5-r000.pt"
    if "5" in plan.get("archs", {}) and weights.is_file():
        from vdes_tune.models.unet import UNet

        cfg = plan["archs"]["5"]["config"]
        unet = UNet(cfg["unet_width"], cfg["unet_depth"], cfg["unet_dropout"])
        unet.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["generator"])
        with torch.no_grad():
            out = unet.eval()(torch.from_numpy(columns["LE"])[:, None].float() / 255.0).clamp(0, 1)
        columns["#5 virtual DES (repeat 0)"] = (out[:, 0].numpy() * 255).round().astype(np.uint8)
    order = ["LE", "LED", "real DES"] + sorted(k for k in columns if k.startswith("#"))
    labels = [f"{cid}\n{CLASS_NAMES[int(y)]}" for cid, y in zip(picks["crop_id"], picks["label"])]
    return {k: columns[k] for k in order}, labels
