"""`generators export`: the LE -> DES network as TorchScript or ONNX, any H x W, with a JSON of its contract.

The exported module pads its input by reflection to the network's multiple and crops the output back, like
`apply` with `--tile 0`, so callers feed any image of at least twice `multiple` px a side. Tiling stays the caller's
business (the JSON says what `apply` would use).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vdes_tune import __version__
from vdes_tune.errors import BadInputError
from vdes_tune.inference.generator import TrainedGenerator, load_generator
from vdes_tune.inference.images import atomic_write
from vdes_tune.inference.tiling import default_tiling
from vdes_tune.workspace import Workspace, write_json

FORMATS = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
OPSET = 17
INPUT, OUTPUT = "le", "vdes"


class PaddedGenerator(nn.Module):
    """The network with its padding inside: N x 1 x H x W in [0, 1] -> N x 1 x H x W virtual DES."""

    def __init__(self, network: nn.Module, multiple: int) -> None:
        super().__init__()
        self.network, self.multiple = network, multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reflect-pad bottom/right to multiples, run, crop back (pads of 0 keep the trace shape-generic)."""
        h, w, m = x.shape[-2], x.shape[-1], self.multiple
        ph, pw = (m - h % m) % m, (m - w % m) % m
        return self.network(F.pad(x, (0, pw, 0, ph), mode="reflect"))[..., :h, :w]


@dataclass
class ExportSummary:
    """What an export wrote."""

    file: str
    sidecar: str
    format: str
    sha256: str


def default_path(name: str, fmt: str) -> Path:
    """`<name>.torchscript.pt` or `<name>.onnx` in the current folder."""
    return Path(f"{name}{FORMATS[fmt]}")


def _traced_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    with warnings.catch_warnings():
        # The network's own `if pad:` is traced as "no pad", which is right: the wrapper has padded already.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        # A trace replays the example's Python branches; check it on another, odd, non-square size instead
        # of torch's own check, which only re-runs the example.
        h, w = example.shape[-2:]
        probe = torch.rand(1, 1, h + 3, w // 2 + 5, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            if not torch.allclose(traced(probe), module(probe), atol=1e-5):
                raise RuntimeError("the traced network does not reproduce PyTorch on other image sizes")
        buf = io.BytesIO()
        torch.jit.save(traced, buf)  # deprecated in favour of torch.export, which has no TorchScript file
    return buf.getvalue()


def _onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    try:
        import onnx
    except ImportError:
        raise BadInputError("--format onnx needs the optional extra: pip install 'vdes-tune[onnx]'") from None
    axes = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation of the TorchScript-based exporter, tracer notes
        torch.onnx.export(module, (example,), buf, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: axes, OUTPUT: axes}, opset_version=OPSET)
    data = buf.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def contract(gen: TrainedGenerator, fmt: str, file: Path, sha256: str) -> dict[str, Any]:
    """The JSON beside an export: what goes in and out, how to scale intensities, where it came from."""
    tile, overlap = default_tiling(gen.per_image_norm, gen.crop_size)
    shape = ["batch", 1, "height", "width"]
    return {
        "format": fmt, "file": file.name, "sha256": sha256, "vdes_tune_version": __version__,
        "torch_version": torch.__version__, **({"opset": OPSET} if fmt == "onnx" else {}),
        "generator": gen.describe(),
        "input": {"name": INPUT, "shape": shape, "dtype": "float32", "range": [0.0, 1.0],
                  "scaling": "the LE as 8-bit gray (colour to gray, 16-bit PNG >> 8, DICOM windowed to 8 bits "
                             "as vdes_tune.data.dicom.to_uint8 does) divided by 255"},
        "output": {"name": OUTPUT, "shape": shape, "dtype": "float32", "range": [0.0, 1.0],
                   "to_uint8": "round(clip(v, 0, 1) * 255)", "to_uint16": "round(clip(v, 0, 1) * 65535)"},
        "multiple_of": gen.multiple,
        "padding": f"inside the model: reflect to multiples of {gen.multiple} px at the bottom and right, "
                   f"output cropped back; height and width must be >= {2 * gen.multiple}",
        "tiling": {"per_image_norm": gen.per_image_norm, "apply_default_tile": tile,
                   "apply_default_overlap": overlap,
                   "note": ("InstanceNorm: run it on tiles of the training crop size, as `apply` does"
                            if gen.per_image_norm else "no per-image statistics: whole images or tiles")},
    }


def export_generator(workspace: Workspace, name: str, fmt: str, out: Path | None = None,
                     overwrite: bool = False) -> ExportSummary:
    """Write generators/<name> as TorchScript or ONNX at `out` (default: ./<name>.<format>) plus `out`.json."""
    from vdes_tune.inference.model_card import ensure_model_card

    if fmt not in FORMATS:
        raise BadInputError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    gen = load_generator(workspace, name)
    out = (out or default_path(name, fmt)).expanduser().resolve()
    sidecar = out.with_name(out.name + ".json")
    taken = [p for p in (out, sidecar) if p.exists()]
    if taken and not overwrite:
        raise BadInputError(f"{taken[0]} exists already; pass --overwrite to replace it or choose another --out")
    ensure_model_card(workspace, name, gen.manifest)
    module = PaddedGenerator(gen.network.eval(), gen.multiple).eval()
    side = max(64, 2 * gen.multiple)  # a size every network of the registry accepts
    example = torch.rand(1, 1, side, side, generator=torch.Generator().manual_seed(0))
    data = _traced_bytes(module, example) if fmt == "torchscript" else _onnx_bytes(module, example)
    sha = hashlib.sha256(data).hexdigest()
    atomic_write(out, data)
    write_json(sidecar, contract(gen, fmt, out, sha))
    return ExportSummary(str(out), str(sidecar), fmt, sha)
