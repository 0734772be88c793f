"""The report's figures as PNG bytes: F1 over repeats per architecture, and a Figure 4-like montage."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vdes_tune.evaluation.paired import METRIC_NAMES


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
    from vdes_tune.models.architectures import get_architecture
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
    for arch, entry in sorted(plan.get("archs", {}).items(), key=lambda kv: int(kv[0])):
        # End-to-end generators (#5) live in their job's weights; repeat 0 is kept for this montage.
        weights = eval_dir / "weights" / f"a{arch}-r000.pt"
        if not get_architecture(int(arch)).end_to_end or not weights.is_file():
            continue
        from vdes_tune.config import GeneratorConfig
        from vdes_tune.generator_registry import build_generator

        generator = build_generator(GeneratorConfig.shaped(get_architecture(int(arch)).generator, entry["config"]))
        generator.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["generator"])
        with torch.no_grad():
            out = generator.eval()(torch.from_numpy(columns["LE"])[:, None].float() / 255.0).clamp(0, 1)
        columns[f"#{arch} virtual DES (repeat 0)"] = (out[:, 0].numpy() * 255).round().astype(np.uint8)
    order = ["LE", "LED", "real DES"] + sorted((k for k in columns if k.startswith("#")),
                                               key=lambda k: int(k[1:].split()[0]))
    labels = [f"{cid}\n{CLASS_NAMES[int(y)]}" for cid, y in zip(picks["crop_id"], picks["label"])]
    return {k: columns[k] for k in order}, labels


def forest(answer: dict[str, Any]) -> bytes:
    """Paired differences with their 95% intervals: each virtual DES against real DES (non-inferiority margin
    dashed) and, with real DES, against no DES; one row of panels per metric (F1, ROC-AUC, sensitivity,
    specificity)."""
    plt = _pyplot()
    names = {int(k): v for k, v in answer["names"].items()}
    real, base = answer["real"], answer["no_des"]
    frame = pd.DataFrame(answer["comparisons"])
    metrics = answer["metrics"]
    fig, axes = plt.subplots(len(metrics), 2, figsize=(11, 2.8 * len(metrics)), sharey="row", squeeze=False)
    colours = {"non-inferior": "tab:green", "better": "tab:green", "inferior": "tab:red", "worse": "tab:red",
               "inconclusive": "tab:gray", "no clear difference": "tab:gray"}
    for row, metric in enumerate(metrics):
        margin = answer["margins"][metric]
        for col, (ref, title) in enumerate(((real, f"vs real DES (#{real})"), (base, f"vs no DES (#{base})"))):
            ax = axes[row][col]
            part = frame[(frame["metric"] == metric) & (frame["reference"] == ref)] if len(frame) else frame
            part = part.sort_values("arch", ascending=False) if len(part) else part
            for y, (_, c) in enumerate(part.iterrows()):
                colour = colours.get(c["verdict"], "k")
                ax.errorbar(100 * c["diff"], y, xerr=[[100 * (c["diff"] - c["ci_low"])],
                                                      [100 * (c["ci_high"] - c["diff"])]],
                            fmt="o", color=colour, capsize=4)
                ax.annotate(c["verdict"], (100 * c["ci_high"], y), xytext=(6, 0), textcoords="offset points",
                            va="center", fontsize=8, color=colour)
            ax.set_yticks(range(len(part)), [names.get(int(a), f"#{a}") for a in part["arch"]] if len(part) else [])
            ax.axvline(0, color="k", lw=0.8)
            if ref == real:
                ax.axvline(-100 * margin, color="tab:red", ls="--", lw=0.8)
            ax.set_xlabel(f"difference in test {METRIC_NAMES[metric]} (points)")
            ax.set_title(title if row == 0 else "", fontsize=10)
            ax.grid(axis="x", alpha=0.3)
            ax.margins(x=0.25)
    fig.suptitle(f"Paired differences over {answer['repeats']} repeats and {answer['patients']} test patients "
                 f"(95% CI; dashed: the non-inferiority margin)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def power_curves(rows: list[dict[str, Any]], pilot_patients: int, horizon: int) -> bytes:
    """The chance of a decisive F1 verdict against test patients, one line per comparison, one panel per number
    of repeats; the pilot's test patients and a CDD-CESM-sized test split marked."""
    plt = _pyplot()
    frame = pd.DataFrame(rows)
    repeats = sorted(frame["repeats"].unique())
    fig, axes = plt.subplots(1, len(repeats), figsize=(5.5 * len(repeats), 4.2), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], repeats):
        for label, part in frame[frame["repeats"] == r].groupby("comparison", sort=False):
            ax.plot(part["patients"], part["decisive"], label=label, ls="-" if part["kind"].iloc[0] == "none" else "--")
        ax.axhline(0.8, color="grey", ls=":", lw=0.8)
        ax.axvline(pilot_patients, color="k", lw=0.8)
        ax.axvline(horizon, color="tab:red", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("test patients (black: this run; red: CDD-CESM's 15% test split)")
        ax.set_title(f"{r} repeats", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("P(decisive verdict), this run's differences as truth")
    axes[0][0].set_ylim(0, 1.02)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Power against test patients (F1; dashed: vs real DES at the margin, solid: vs no DES)",
                 fontsize=10)
    fig.tight_layout()
    return _png(fig)


def reliability_diagram(curves: dict[int, pd.DataFrame], eces: dict[int, float], names: dict[int, str]) -> bytes:
    """Observed malignant rate against mean predicted probability per bin, one line per architecture (test
    split, repeats pooled), with the diagonal of perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 5))
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--", label="perfectly calibrated")
    for arch, table in curves.items():
        ax.plot(table["mean_predicted"], table["fraction_malignant"], marker="o", ms=3,
                label=f"{names.get(arch, f'#{arch}')} (ECE {eces.get(arch, float('nan')):.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability of malignant")
    ax.set_ylabel("observed fraction malignant")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return _png(fig)


def quality_vs_gain(quality: pd.DataFrame, answer: dict[str, Any]) -> bytes:
    """Each generator's image quality (whole crop and inside the lesion) against its F1 difference to no DES."""
    plt = _pyplot()
    gains = {int(c["arch"]): c for c in answer.get("comparisons", [])
             if c["metric"] == "f1" and c["reference"] == answer.get("no_des")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (measure, label) in zip(axes, (("psnr", "PSNR (dB)"), ("ssim", "SSIM"))):
        for column, marker, what in ((measure, "o", "whole crop"), (f"lesion_{measure}", "s", "lesion region")):
            if column not in quality.columns:
                continue
            for _, q in quality.iterrows():
                c = gains.get(int(q["arch"]))
                if c is None or q[column] is None or not np.isfinite(float(q[column])):
                    continue
                ax.errorbar(float(q[column]), 100 * c["diff"], yerr=[[100 * (c["diff"] - c["ci_low"])],
                                                                      [100 * (c["ci_high"] - c["diff"])]],
                            fmt=marker, capsize=3, color=f"C{int(q['arch'])}",
                            label=f"#{int(q['arch'])} {what}")
                ax.annotate(f"#{int(q['arch'])}", (float(q[column]), 100 * c["diff"]), xytext=(5, 4),
                            textcoords="offset points", fontsize=8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel(f"virtual vs real DES, test split: {label}")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), fontsize=7)
    axes[0].set_ylabel(f"test F1 difference to no DES (#{answer.get('no_des')}), points")
    fig.tight_layout()
    return _png(fig)
