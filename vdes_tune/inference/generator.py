"""A trained generator loaded for inference: its network, config, hashes and what tiling it needs."""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vdes_tune.config import GeneratorConfig, config_hash, from_yaml
from vdes_tune.errors import BadInputError
from vdes_tune.workspace import Workspace, read_manifest


@dataclass
class TrainedGenerator:
    """One finished generators/<name>/ folder, its LE -> DES network in eval mode on the CPU."""

    name: str
    folder: Path
    location: str  # the folder as every node names it (a URI for a remote workspace)
    cfg: GeneratorConfig
    manifest: dict[str, Any]
    network: nn.Module
    weights_sha256: str
    config_hash: str
    multiple: int  # input sides must be multiples of this
    per_image_norm: bool  # InstanceNorm / GroupNorm: statistics of the whole input, so tiling changes them
    crop_size: int | None  # side of the crops it was trained on, when known

    def describe(self) -> dict[str, Any]:
        """JSON-ready identity of the generator for provenance records."""
        return {"name": self.name, "model": self.cfg.model, "folder": self.location,
                "config": self.manifest.get("config"), "config_hash": self.config_hash,
                "weights_sha256": self.weights_sha256, "multiple": self.multiple,
                "per_image_norm": self.per_image_norm, "crop_size": self.crop_size}


def network_multiple(network: nn.Module) -> int:
    """What input sides must be multiples of: the network's `multiple`, else the product of its strides."""
    declared = getattr(network, "multiple", None)
    if declared:
        return int(declared)
    multiple = 1
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            stride = module.stride if isinstance(module.stride, int) else module.stride[0]
            multiple *= int(stride or 1)
    return multiple


def normalises_per_image(network: nn.Module) -> bool:
    """Whether the network normalises with statistics of its input (so a tile is not a crop of the whole)."""
    for module in network.modules():
        if isinstance(module, nn.GroupNorm):
            return True
        if isinstance(module, nn.modules.instancenorm._InstanceNorm) and not module.track_running_stats:
            return True
    return False


def training_dataset(workspace: Workspace, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The workspace dataset's manifest while it is still the dataset the generator trained on, else None."""
    dataset = read_manifest(workspace.dataset.root) or {}
    inputs = manifest.get("inputs", {})
    same = bool(dataset) and (dataset.get("config_hash") == inputs.get("dataset_config_hash")
                              and dataset.get("inputs_hash") == inputs.get("dataset_inputs_hash"))
    return dataset if same else None


def training_crop_size(workspace: Workspace, manifest: dict[str, Any]) -> int | None:
    """Crop side the generator trained on: its manifest, else its dataset's, when known."""
    size = manifest.get("crop_size") or (training_dataset(workspace, manifest) or {}).get("config", {}).get(
        "crop_size")
    return int(size) if size else None


def load_generator(workspace: Workspace, name: str) -> TrainedGenerator:
    """Load generators/<name>/ (config.yaml, generator.pt, manifest.json); BadInputError when unfinished."""
    from vdes_tune.training.generators import WEIGHTS, build_generator

    folder = workspace.generator(name)
    workspace.pull(folder)
    workspace.pull(workspace.dataset.manifest)
    manifest = read_manifest(folder)
    if not manifest or not manifest.get("complete"):
        raise BadInputError(f"{workspace.location(folder)}: no finished generator '{name}' "
                            "(run `vdes-tune generators train` first)")
    cfg = from_yaml(GeneratorConfig, folder / "config.yaml")
    try:
        blob = (folder / WEIGHTS).read_bytes()
    except OSError as exc:
        raise BadInputError(f"{folder / WEIGHTS}: cannot read the generator's weights: {exc}") from exc
    network = build_generator(cfg)
    try:
        network.load_state_dict(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise BadInputError(f"{folder / WEIGHTS}: weights do not fit the network of config.yaml: {exc}") from exc
    network.eval()
    return TrainedGenerator(
        name=name, folder=folder, location=workspace.location(folder), cfg=cfg, manifest=manifest,
        network=network, weights_sha256=hashlib.sha256(blob).hexdigest(), config_hash=config_hash(cfg),
        multiple=network_multiple(network), per_image_norm=normalises_per_image(network),
        crop_size=training_crop_size(workspace, manifest),
    )
