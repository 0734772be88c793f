"""The model card `stages.generators.train` writes: the real metrics, data, intended use and limits."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from vdes_tune.config import GeneratorConfig

TINY_UNET = dict(epochs=1, batch_size=8, unet_width=4, unet_depth=3, device="cpu", samples=2)


@pytest.mark.ray
def test_training_writes_a_card_with_the_real_metrics(ingested_small: Path, tmp_path: Path) -> None:
    from vdes_tune.stages import generators as stage
    from vdes_tune.workspace import Workspace, read_manifest

    work = tmp_path / "work"
    shutil.copytree(ingested_small / "dataset", work / "dataset")
    ws = Workspace.at(work)
    stage.train(GeneratorConfig.for_model("unet", **TINY_UNET), ws, "tiny")
    folder = ws.generator("tiny")
    card = (folder / "MODEL_CARD.md").read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    manifest, dataset = read_manifest(folder), read_manifest(ws.dataset.root)

    number = r" \| ([\d.]+)"
    rows = {m[0]: [float(v) for v in m[1:]]
            for m in re.findall(rf"^\| (validation|test){number * 5} \|$", card, re.M)}
    for split, label in (("val", "validation"), ("test", "test")):
        psnr, ssim, mse, l1, n = rows[label]
        m = metrics[split]
        assert psnr == pytest.approx(m["psnr"], abs=1e-3) and ssim == pytest.approx(m["ssim"], abs=1e-4)
        assert mse == pytest.approx(m["mse"], abs=1e-6) and l1 == pytest.approx(m["l1"], abs=1e-5)
        assert n == m["n"] == metrics["crops"][split]
    crops = metrics["crops"]
    assert f"train {crops['train']}, val {crops['val']}, test {crops['test']}" in card
    assert manifest["crop_size"] == dataset["config"]["crop_size"] == 224 and "224 x 224 px" in card
    assert dataset["config_hash"] in card and manifest["config_hash"] in card
    assert hashlib.sha256((folder / "generator.pt").read_bytes()).hexdigest() in card
    assert "**Not for diagnosis**" in card
    assert "**Synthetic data**" in card  # the fixture is a `vdes-tune synth` phantom
    assert "no per-image statistics" in card and "vdes-tune generators apply tiny" in card
