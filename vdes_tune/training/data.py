"""Crop shards as a torch Dataset: images decoded once into one uint8 tensor, augmented per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from vdes_tune.errors import BadInputError
from vdes_tune.training.augment import augment_sample, paper_augmentation
from vdes_tune.workspace import read_parquet_checked



def load_split(shards: Path, split: str) -> pd.DataFrame:
    """All rows of one split, sorted by crop id (the shard order is not a contract)."""
    folder = Path(shards) / f"split={split}"
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise BadInputError(f"{folder}: no shards (run `vdes-tune ingest` first)")
    return pd.concat([read_parquet_checked(f) for f in files]).sort_values("crop_id").reset_index(drop=True)


def attach_vdes(frame: pd.DataFrame, vdes_dir: Path, split: str) -> pd.DataFrame:
    """`frame` with a `vdes` column read from a synthesised set, matched on crop id; every crop must be there."""
    folder = Path(vdes_dir) / f"split={split}"
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise BadInputError(f"{folder}: no virtual DES shards (run `vdes-tune generators synthesize` first)")
    vdes = pd.concat([read_parquet_checked(f, columns=["crop_id", "height", "width", "vdes"]) for f in files])
    merged = frame.merge(vdes, on="crop_id", how="left", suffixes=("", "_vdes"), validate="one_to_one")
    missing = merged.loc[merged["vdes"].isna(), "crop_id"].tolist()
    if missing:
        raise BadInputError(f"{folder}: {len(missing)} crop(s) of split '{split}' have no virtual DES "
                            f"(first: {missing[0]}); re-run `vdes-tune generators synthesize --force`")
    bad = merged[(merged["height_vdes"] != merged["height"]) | (merged["width_vdes"] != merged["width"])]
    if not bad.empty:
        raise BadInputError(f"{folder}: crop {bad['crop_id'].iloc[0]} has a virtual DES of another size")
    return merged.drop(columns=["height_vdes", "width_vdes"])


class CropDataset(Dataset):
    """(images by source as 1 x H x W float in [0, 1], label) for the sources an architecture needs."""

    def __init__(self, frame: pd.DataFrame, sources: tuple[str, ...], augment: bool = False) -> None:
        missing = [s for s in sources if s not in frame.columns]
        if missing:
            raise BadInputError(f"shards lack image column(s) {missing}")
        h, w = int(frame["height"].iloc[0]), int(frame["width"].iloc[0])
        self.sources = sources
        self.images = torch.from_numpy(np.stack([
            np.stack([np.frombuffer(b, np.uint8).reshape(h, w) for b in frame[s]]) for s in sources
        ], axis=1))  # N x S x H x W uint8
        self.labels = torch.tensor(frame["label"].to_numpy(), dtype=torch.long)
        self.crop_ids = frame["crop_id"].tolist()
        self.transform = paper_augmentation() if augment else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        images = {s: self.images[i, j:j + 1] for j, s in enumerate(self.sources)}
        if self.transform is not None:
            images = augment_sample(self.transform, images)
        return {s: v.float() / 255.0 for s, v in images.items()}, self.labels[i]


def loaders(frames: dict[str, pd.DataFrame], sources: tuple[str, ...], batch_size: int, augment: bool,
            seed: int) -> dict[str, DataLoader]:
    """Seeded, shuffled, augmented train loader (last partial batch dropped); plain val and test loaders
    (for the splits `frames` holds: a search has no test split)."""
    train = frames["train"]
    out = {"train": DataLoader(CropDataset(train, sources, augment=augment), batch_size=batch_size, shuffle=True,
                               generator=torch.Generator().manual_seed(seed), drop_last=len(train) > batch_size)}
    for split in ("val", "test"):
        if split in frames:
            out[split] = DataLoader(CropDataset(frames[split], sources), batch_size=batch_size)
    return out
