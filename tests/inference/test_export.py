"""`generators export`: TorchScript and ONNX give PyTorch's output on any size; the JSON beside tells the contract."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vdes_tune.cli import app
from vdes_tune.config import GeneratorConfig, from_yaml
from vdes_tune.errors import BadInputError
from vdes_tune.inference.export import export_generator
from vdes_tune.training.generators import build_generator
from vdes_tune.workspace import Workspace

# Random batches: square with sides multiples of 4, and not square, not multiples.
SHAPES = [(2, 1, 64, 64), (2, 1, 37, 50)]


def _reference(work: Path, name: str, x: np.ndarray) -> np.ndarray:
    """PyTorch on the input reflect-padded (numpy) to multiples of 4, cropped back: what `apply --tile 0` does."""
    cfg = from_yaml(GeneratorConfig, work / "generators" / name / "config.yaml")
    net = build_generator(cfg).eval()
    net.load_state_dict(torch.load(work / "generators" / name / "generator.pt", weights_only=True))
    h, w = x.shape[-2:]
    padded = np.pad(x, ((0, 0), (0, 0), (0, -h % 4), (0, -w % 4)), mode="reflect")
    with torch.no_grad():
        return net(torch.from_numpy(padded))[..., :h, :w].numpy()


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random(shape, dtype=np.float32) for shape in SHAPES]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", ["unet", "cyclegan"])
def test_torchscript_matches_pytorch(work: Path, tmp_path: Path, name: str) -> None:
    target = tmp_path / f"{name}.ts"
    result = CliRunner().invoke(app, ["generators", "export", name, "--format", "torchscript", "--out", str(target),
                                      "--work", str(work)])
    assert result.exit_code == 0, result.output
    module = torch.jit.load(str(target))
    for x in _inputs():
        with torch.no_grad():
            got = module(torch.from_numpy(x)).numpy()
        assert got.shape == x.shape
        np.testing.assert_allclose(got, _reference(work, name, x), atol=1e-5)
    contract = json.loads(target.with_name(target.name + ".json").read_text())
    assert contract["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    weights = (work / "generators" / name / "generator.pt").read_bytes()
    assert contract["generator"]["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert contract["multiple_of"] == 4 and contract["input"]["range"] == [0.0, 1.0]
    assert contract["tiling"]["per_image_norm"] == (name == "cyclegan")

    again = CliRunner().invoke(app, ["generators", "export", name, "--format", "torchscript", "--out", str(target),
                                     "--work", str(work)])
    assert isinstance(again.exception, BadInputError) and "--overwrite" in str(again.exception)


@pytest.mark.parametrize("name", ["unet", "cyclegan"])
def test_onnx_matches_pytorch(work: Path, tmp_path: Path, name: str) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the optional extra vdes-tune[onnx]")
    summary = export_generator(Workspace.at(work), name, "onnx", tmp_path / f"{name}.onnx")
    contract = json.loads(Path(summary.sidecar).read_text())
    assert contract["input"]["name"] == "le" and contract["output"]["name"] == "vdes"
    assert contract["sha256"] == hashlib.sha256(Path(summary.file).read_bytes()).hexdigest()
    session = ort.InferenceSession(summary.file, providers=["CPUExecutionProvider"])
    for x in _inputs():
        (got,) = session.run(["vdes"], {"le": x})
        assert got.shape == x.shape
        np.testing.assert_allclose(got, _reference(work, name, x), atol=1e-5)


def test_onnx_without_the_extra_names_it(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails as if it were not installed
    with pytest.raises(BadInputError, match=r"vdes-tune\[onnx\]"):
        export_generator(Workspace.at(work), "unet", "onnx", tmp_path / "u.onnx")
    assert not (tmp_path / "u.onnx").exists()
    with pytest.raises(BadInputError, match="--format must be one of"):
        export_generator(Workspace.at(work), "unet", "tflite", tmp_path / "u.tflite")
