"""MODEL_CARD.md of a trained generator: data, training, metrics, intended use, limits, how to apply it.

Everything in a card comes from the generator folder's own files (manifest.json, config.yaml, metrics.json,
generator.pt) and, when given, the manifest of the dataset it trained on; so a card written later for an
older folder says the same as one written at training time.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from vdes_tune.config import GeneratorConfig, from_yaml

CARD = "MODEL_CARD.md"


def is_synthetic(dataset_manifest: dict[str, Any] | None) -> bool | None:
    """Whether the dataset was ingested from a `vdes-tune synth` phantom (None: cannot tell)."""
    from vdes_tune.phantom.dataset import TRUTH_NAME
    from vdes_tune.remote import is_uri

    data = (dataset_manifest or {}).get("data")
    if not data or is_uri(data) or not Path(data).is_dir():
        return None
    return (Path(data) / TRUTH_NAME).is_file()


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _metrics_rows(metrics: dict[str, Any]) -> list[str]:
    lines = ["| split | PSNR (dB) | SSIM | MSE | L1 | crops |", "|---|---|---|---|---|---|"]
    for split, label in (("val", "validation"), ("test", "test")):
        m = metrics.get(split) or {}
        if m:
            lines.append(f"| {label} | {m['psnr']:.3f} | {m['ssim']:.4f} | {m['mse']:.6f} | {m['l1']:.5f} "
                         f"| {m.get('n', '')} |")
    return lines


def render_model_card(folder: Path, manifest: dict[str, Any], dataset_manifest: dict[str, Any] | None,
                      written_later: bool = False) -> str:
    """The card's Markdown for the generator in `folder` (manifest given: it may not be written yet)."""
    from vdes_tune.inference.generator import network_multiple, normalises_per_image
    from vdes_tune.inference.tiling import default_tiling
    from vdes_tune.training.generators import WEIGHTS, build_generator

    name, cfg = manifest["name"], from_yaml(GeneratorConfig, folder / "config.yaml")
    metrics = json.loads((folder / "metrics.json").read_text())
    weights_sha = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    network = build_generator(cfg)
    per_image, multiple = normalises_per_image(network), network_multiple(network)
    params = sum(p.numel() for p in network.parameters())
    # The dataset manifest is given only when it is the dataset the generator trained on.
    crop = manifest.get("crop_size") or (dataset_manifest or {}).get("config", {}).get("crop_size")
    crops = metrics.get("crops") or manifest.get("rows") or {}
    synthetic = is_synthetic(dataset_manifest)
    inputs = manifest.get("inputs", {})
    trained = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(manifest.get("created_unix", 0)))
    crop_text = f"{crop} x {crop} px" if crop else "not recorded (trained before cards existed)"
    tile, overlap = default_tiling(per_image, crop)
    source = {True: "a synthetic phantom (`vdes-tune synth`)", False: "real images",
              None: "data whose origin is not recorded here"}[synthetic]
    raw = (dataset_manifest or {}).get("data")
    version = manifest.get("vdes_tune_version", "(version not recorded)")

    lines = [
        f"# Model card: virtual DES generator `{name}`",
        "",
        f"A `{cfg.model}` network that maps a CESM low-energy (LE) image to a virtual dual-energy-subtracted "
        f"(DES) image, trained by vdes-tune {version} "
        "(`vdes-tune generators train`) for vdes-tune's reproduction of *Are Virtual DES Images a Valid "
        "Alternative to the Real Ones?* (arXiv 2508.15594).",
        "",
        *_table([
            ("model", f"`{cfg.model}`, {params:,} parameters (the LE -> DES network alone)"),
            ("weights", f"`generator.pt`, sha256 `{weights_sha}`"),
            ("config hash", f"`{manifest.get('config_hash', '?')}` (`config.yaml`)"),
            ("trained", f"{trained}; best epoch {metrics.get('best_epoch', '?')} of {metrics.get('epochs_run', '?')}"
                        f"{' (stopped early)' if metrics.get('stopped_early') else ''}"),
            ("selection", metrics.get("selection", "lowest validation L1")),
        ]),
        "",
        "## Data",
        "",
        *_table([
            ("dataset", f"`dataset/` of the workspace; config hash `{inputs.get('dataset_config_hash', '?')}`, "
                        f"inputs hash `{inputs.get('dataset_inputs_hash', '?')}`"),
            ("raw data", f"`{raw}`: {source}" if raw else "not known (the dataset it trained on is no longer "
                                                          "in this workspace)"),
            ("crops", ", ".join(f"{k} {crops[k]}" for k in ("train", "val", "test") if k in crops)
                      + " (splits by patient)"),
            ("crop size", crop_text),
            ("pixel scale", "crops cut from the LE/DES images at their own pixel grid, no resampling"),
        ]),
        "",
        "## Training configuration",
        "",
        "```yaml",
        (folder / "config.yaml").read_text().rstrip(),
        "```",
        "",
        "## Metrics",
        "",
        "Virtual vs real DES on the held-out crops at the selected epoch (intensities in [0, 1]; PSNR from the "
        "split's MSE with data range 1; SSIM with an 11-px Gaussian window, sigma 1.5).",
        "",
        *_metrics_rows(metrics),
        "",
        "## Intended use",
        "",
        "Research on virtual DES: studying whether a generated DES can stand in for the acquired one, e.g. as "
        "an input to lesion classifiers. **Not for diagnosis**, screening or any clinical decision; it is not "
        "a medical device and has not been validated clinically.",
        "",
        "## Limits",
        "",
        f"- Trained on {crops.get('train', '?')} crops of {crop_text} from {source} (selected on "
        f"{crops.get('val', '?')} validation crops, tested on {crops.get('test', '?')}). Other "
        "vendors, views, breast densities or contrast protocols are untested; the test metrics above are the "
        "only evidence of quality, and they are on crops, not whole mammograms.",
        "- Pixel scale: the network saw the images' native pixel grid. Apply it to images with the same "
        "pixel spacing; `apply` does not resample.",
        "- Intensity: inputs must be converted exactly like the training data, which `apply` does: 8-bit "
        "gray (colour converted to gray, 16-bit PNG shifted right by 8 bits, DICOM windowed to 8 bits by its "
        "first VOI window, else its stored range), divided by 255. The output lies in [0, 1].",
        (f"- Tiling: the network normalises with the statistics of its input (InstanceNorm), so its output on "
         f"a region depends on how much image it sees. `apply` therefore runs it on tiles of the training "
         f"crop size ({tile} px, overlap {overlap} px, blended) by default, which matches training; whole-image "
         "inference (`--tile 0`) or other tiles change the statistics and the output."
         if per_image else
         f"- Tiling: the network has no per-image statistics (BatchNorm in eval mode), so tiles only bound "
         f"memory: by default `apply` runs an image whole when it is no larger than one batch of {tile}-px "
         f"tiles (4 x {tile}^2 px at `--batch-size 4`), else on {tile}-px tiles with {overlap}-px blended "
         f"overlap, aligned to multiples of {multiple} px, which match whole-image inference except for "
         "small differences near tile seams; `--tile 0` always runs whole images."),
    ]
    if synthetic:
        lines.append("- **Synthetic data**: the dataset was a phantom, so these weights and metrics say nothing "
                     "about real CESM images. Use them to exercise the pipeline, not on patient images.")
    elif synthetic is None:
        lines.append("- Whether the dataset was a synthetic phantom could not be checked here; see the "
                     "dataset's `manifest.json` (`data`).")
    lines += [
        "",
        "## How to use",
        "",
        "```",
        f"vdes-tune generators apply {name} LE_FILES_OR_FOLDERS... --out OUT [--work W]",
        f"vdes-tune generators export {name} --format torchscript|onnx [--out FILE] [--work W]",
        "```",
        "",
        "`apply` writes a PNG per input (16-bit for 16-bit or DICOM input), a derived DICOM for DICOM input, "
        "and `OUT/provenance.json`. `export` writes a TorchScript or ONNX file plus a JSON describing its "
        f"input: N x 1 x H x W float32 in [0, 1], padded inside to multiples of {multiple} px.",
    ]
    if written_later:
        lines += ["", f"*This card was written after training, from the folder's files, by vdes-tune "
                      f"{_version()}.*"]
    return "\n".join(lines) + "\n"


def _version() -> str:
    from vdes_tune import __version__

    return __version__


def write_model_card(folder: Path, manifest: dict[str, Any], dataset_manifest: dict[str, Any] | None,
                     written_later: bool = False) -> Path:
    """Write `folder`/MODEL_CARD.md atomically; returns its path."""
    from vdes_tune.inference.images import atomic_write

    path = folder / CARD
    atomic_write(path, render_model_card(folder, manifest, dataset_manifest, written_later).encode())
    return path


def ensure_model_card(workspace: Any, name: str, manifest: dict[str, Any]) -> Path | None:
    """Give an older generator folder (trained before cards) its card; None when it cannot be written.

    The dataset's manifest is used only while the dataset is still the one the generator trained on.
    """
    from vdes_tune.inference.generator import training_dataset

    folder = workspace.generator(name)
    if (folder / CARD).is_file():
        return folder / CARD
    dataset = training_dataset(workspace, manifest)
    try:
        path = write_model_card(folder, manifest, dataset, written_later=True)
        workspace.push(path)
    except (OSError, KeyError, ValueError):  # read-only workspace, odd old metrics: never a reason to fail
        return None
    return path
