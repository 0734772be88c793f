"""Peak GPU memory of a training run, estimated without a GPU: meta-device tracing plus a calibration.

The estimate is `weights + gradients + Adam state + activation_factor * saved activations + overhead`.
Saved activations are counted exactly by running one training forward on the meta device (no memory,
no compute) with autograd's saved-tensor hooks. The two calibration numbers absorb what the trace
cannot see (bf16 autocast halving some activations, transient backward buffers, the CUDA context and
cuDNN workspace); they are fitted on a real GPU by `benchmarks/memory_calibration.py` and stored as
JSON. The shipped default is deliberately conservative (fp32 activations, 1 GiB overhead).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from vdes_tune.config import TrainConfig, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.models.architectures import get_architecture

GIB = 1024 ** 3
CALIBRATION_ENV = "VDES_MEMORY_CALIBRATION"
DEFAULT_CALIBRATION_FILE = Path(__file__).with_name("memory_calibration.json")
QUANTUM = 100  # GPU fractions are whole hundredths of a card (under 1 GiB on a 80 GiB card; Ray keeps 1e-4)


@dataclass(frozen=True)
class Calibration:
    """How traced bytes map to measured peak bytes on one kind of GPU."""

    activation_factor: float = 1.0
    overhead_gb: float = 1.0
    source: str = "uncalibrated default"
    gpu: str = ""
    measurements: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.activation_factor <= 0 or self.overhead_gb < 0:
            raise BadInputError(f"memory calibration: activation_factor must be > 0 and overhead_gb >= 0, "
                                f"got {self.activation_factor}, {self.overhead_gb}")


def load_calibration(path: Path | None = None) -> Calibration:
    """The calibration in `path`, else in $VDES_MEMORY_CALIBRATION, else the one shipped with the package."""
    path = Path(path or os.environ.get(CALIBRATION_ENV) or DEFAULT_CALIBRATION_FILE)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read memory calibration: {exc}") from exc
    known = {"activation_factor", "overhead_gb", "source", "gpu", "measurements"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInputError(f"{path}: unknown memory calibration field(s) {unknown}")
    data["measurements"] = tuple(data.get("measurements", ()))
    return Calibration(**data)


def save_calibration(cal: Calibration, path: Path) -> None:
    """Write a calibration as JSON (atomically)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**asdict(cal), "measurements": list(cal.measurements)}, indent=2) + "\n")
    os.replace(tmp, path)


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak GPU memory of one training run, by component, in bytes."""

    trainable_params: int
    frozen_params: int
    weights: int
    gradients: int
    optimizer: int
    activations: int  # saved for backward by one training step, as traced (fp32)
    overhead: int
    total: int
    activation_factor: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def total_gb(self) -> float:
        """The estimate in GiB."""
        return self.total / GIB

    def breakdown_gb(self) -> dict[str, float]:
        """Each component in GiB (activations after calibration)."""
        return {"weights": self.weights / GIB, "gradients": self.gradients / GIB, "optimizer": self.optimizer / GIB,
                "activations": self.activations * self.activation_factor / GIB, "overhead": self.overhead / GIB,
                "total": self.total / GIB}


def saved_activation_bytes(model: nn.Module, forward: Any) -> int:
    """Bytes autograd saves for backward while `forward()` runs, model state (parameters, BatchNorm
    running statistics) excluded, shared storage counted once."""
    params = {id(p) for p in model.parameters()} | {id(b) for b in model.buffers()}
    seen: dict[int, torch.Tensor] = {}  # keeps each tensor alive so ids are not reused mid-trace

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t._base if t._base is not None else t
        if id(t) not in params and id(base) not in params:
            seen.setdefault(id(base), base)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(t.untyped_storage().nbytes() if t.device.type != "meta" else t.numel() * t.element_size()
               for t in seen.values())


@functools.lru_cache(maxsize=1024)
def _classifier_trace(name: str, dropout: float, batch: int, size: int, device: str) -> tuple[int, int]:
    """(parameters, saved bytes) of the classifier's training forward on a batch x 3 x size x size input."""
    from vdes_tune.models.classifiers import build_classifier

    with torch.device(device):
        model = build_classifier(name, dropout=dropout).train()
        x = torch.zeros(batch, 3, size, size)
    return sum(p.numel() for p in model.parameters()), saved_activation_bytes(model, lambda: model(x).sum())


def _untrained_generator(kind: str, width: int, depth: int, dropout: float) -> nn.Module:
    """The architecture's generator with fresh weights (memory does not depend on the weights)."""
    from vdes_tune.config import GeneratorConfig
    from vdes_tune.generator_registry import build_generator

    shape = {"unet_width": width, "unet_depth": depth, "unet_dropout": dropout}
    return build_generator(GeneratorConfig.shaped(kind, shape))


@functools.lru_cache(maxsize=1024)
def _generator_trace(kind: str, width: int, depth: int, dropout: float, batch: int, size: int, trained: bool,
                     device: str) -> tuple[int, int]:
    """(parameters, saved bytes) of the generator's forward: with autograd when it trains (#5), else none."""
    with torch.device(device):
        model = _untrained_generator(kind, width, depth, dropout).train(trained)
        x = torch.zeros(batch, 1, size, size)
    params = sum(p.numel() for p in model.parameters())
    if not trained:
        return params, 0  # a frozen generator runs under no_grad: nothing is saved for backward
    return params, saved_activation_bytes(model, lambda: model(x).sum())


def trace(cfg: TrainConfig, input_size: int = 224, device: str = "meta") -> tuple[int, int, int]:
    """(trainable params, frozen params, saved activation bytes) of one training step of `cfg`.

    The classifier's and the generator's graphs only meet at the classifier's input, which the
    classifier's first layer saves; so the two are traced (and cached) apart and summed.
    """
    arch = get_architecture(cfg.arch)
    trainable, saved = _classifier_trace(cfg.classifier, cfg.dropout, cfg.batch_size, input_size, device)
    frozen = 0
    # #4/#6 reading a synthesised vdes set need no generator on the device.
    if arch.generator and (arch.end_to_end or not cfg.vdes):
        params, g_saved = _generator_trace(arch.generator, cfg.unet_width, cfg.unet_depth, cfg.unet_dropout,
                                           cfg.batch_size, input_size, arch.end_to_end, device)
        if arch.end_to_end:
            trainable, saved = trainable + params, saved + g_saved
        else:
            frozen = params
    return trainable, frozen, saved


def estimate(cfg: TrainConfig, input_size: int = 224, calibration: Calibration | None = None) -> MemoryEstimate:
    """Peak GPU memory of training `cfg` (one repeat on the device at a time; see search/trainable.py)."""
    cal = calibration or load_calibration()
    relevant = {k: v for k, v in to_dict(cfg).items()
                if k in ("arch", "classifier", "dropout", "batch_size", "unet_width", "unet_depth",
                         "unet_dropout", "vdes")}
    trainable, frozen, saved = trace(cfg, input_size)
    weights, grads, adam = 4 * (trainable + frozen), 4 * trainable, 8 * trainable  # fp32 master weights
    overhead = int(cal.overhead_gb * GIB)
    total = int(weights + grads + adam + cal.activation_factor * saved + overhead)
    return MemoryEstimate(trainable, frozen, weights, grads, adam, saved, overhead, total, cal.activation_factor,
                          {**relevant, "input_size": input_size})


def estimate_module(model: nn.Module, input_shape: tuple[int, ...], calibration: Calibration | None = None) -> int:
    """Peak bytes of training `model` alone with Adam on inputs of `input_shape` (built on the meta device)."""
    cal = calibration or load_calibration()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with torch.device("meta"):
        meta = copy.deepcopy(model).to("meta").train()
        x = torch.zeros(*input_shape)
    saved = saved_activation_bytes(meta, lambda: _first(meta(x)).float().sum())
    return int(16 * params + cal.activation_factor * saved + cal.overhead_gb * GIB)


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


@dataclass(frozen=True)
class Placement:
    """Where a configuration goes: its quantised fraction of a card of `card_gb`, or infeasible (over 90% of
    the budget, the most a configuration may use)."""

    estimate_gb: float
    budget_gb: float
    fraction: float  # of one card of card_gb; 0 when infeasible
    feasible: bool
    reason: str = ""
    card_gb: float = 0.0

    @property
    def reserved_gb(self) -> float:
        """What the fraction holds of its card (GiB)."""
        return self.fraction * self.card_gb


def place(estimate_bytes: int, budget_gb: float, card_gb: float | None = None, quantum: int = QUANTUM) -> Placement:
    """The smallest multiple of 1/quantum of the card (default: a card of the budget's size) that holds the
    estimate with 10% headroom; infeasible over 90% of the budget or of the card."""
    card_gb = budget_gb if card_gb is None else card_gb
    if budget_gb <= 0 or card_gb <= 0:
        raise BadInputError(f"GPU memory must be > 0 GiB, got budget {budget_gb}, card {card_gb}")
    gb = estimate_bytes / GIB
    limit = min(budget_gb, card_gb)
    if gb > 0.9 * limit:  # allocator fragmentation and the per-process cap's own slack
        return Placement(gb, budget_gb, 0.0, False, f"needs {gb:.1f} GiB, more than 90% of the {limit:g} GiB "
                         + ("budget" if budget_gb <= card_gb else "card"), card_gb)
    # Rounded first: 0.45 * 100 is 45.00000000000001 in floating point, which must not become 46.
    fraction = max(1, math.ceil(round(gb / (0.9 * card_gb) * quantum, 9))) / quantum
    return Placement(gb, budget_gb, fraction, True, "", card_gb)


def process_share(fraction: float, card_gb: float, device_bytes: int) -> float:
    """The share of the device's memory a process may allocate (torch's per-process cap): its fraction of
    the packing card, as a share of the device it really runs on, at most all of it."""
    if device_bytes <= 0:
        raise ValueError(f"device memory must be positive, got {device_bytes}")
    return min(1.0, fraction * card_gb * GIB / device_bytes)


def fit_calibration(rows: Iterable[dict[str, Any]], gpu: str = "", max_under: float = 0.05) -> Calibration:
    """Least-squares activation factor and overhead from measured peaks, then raised until no row is
    underestimated by more than `max_under` (rows: fixed_bytes, activation_bytes, measured_bytes)."""
    rows = list(rows)
    if len(rows) < 2:
        raise BadInputError("memory calibration needs at least two measured configurations")
    # measured - fixed = factor * activations + overhead
    xs = [float(r["activation_bytes"]) for r in rows]
    ys = [float(r["measured_bytes"]) - float(r["fixed_bytes"]) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    factor = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else my / max(mx, 1.0)
    factor = max(factor, 0.05)
    overhead = max(my - factor * mx, 0.0)
    # Shift the overhead up until the worst underestimate is within max_under of its measurement.
    need = max((1 - max_under) * float(r["measured_bytes"]) - (float(r["fixed_bytes"]) + factor * x + overhead)
               for r, x in zip(rows, xs))
    overhead += max(need, 0.0)
    return Calibration(round(factor, 4), round(overhead / GIB, 4), "fitted", gpu, tuple(rows))


def measure_peak(cfg: TrainConfig, input_size: int = 224, steps: int = 3) -> dict[str, Any]:
    """Measured peak GPU bytes of `steps` training steps of `cfg` on random data (needs CUDA; run it in a
    fresh process so the CUDA context it reports is this run's alone)."""
    from vdes_tune.models.classifiers import build_classifier
    from vdes_tune.training.tasks import ClassificationTask

    if not torch.cuda.is_available():
        raise BadInputError("measuring GPU memory needs CUDA")
    device = torch.device("cuda")
    torch.cuda.init()
    free, total = torch.cuda.mem_get_info(device)
    context = total - free  # the CUDA context (and anything else already on the device)
    arch = get_architecture(cfg.arch)
    generator = None
    if arch.generator and (arch.end_to_end or not cfg.vdes):
        generator = _untrained_generator(arch.generator, cfg.unet_width, cfg.unet_depth, cfg.unet_dropout)
    task = ClassificationTask(arch, build_classifier(cfg.classifier, dropout=cfg.dropout), cfg.lr, device,
                              generator, cfg.recon_weight)
    task.train(True)
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(steps):
        images = {s: torch.rand(cfg.batch_size, 1, input_size, input_size) for s in arch.needs if s != "vdes"}
        if "vdes" in arch.needs and generator is None:
            images["vdes"] = torch.rand(cfg.batch_size, 1, input_size, input_size)
        task.train_step((images, torch.randint(0, 2, (cfg.batch_size,))))
    torch.cuda.synchronize(device)
    raw = estimate(cfg, input_size, Calibration(1.0, 0.0))
    return {"config": {k: v for k, v in to_dict(cfg).items() if k in raw.config}, "input_size": input_size,
            "fixed_bytes": raw.weights + raw.gradients + raw.optimizer, "activation_bytes": raw.activations,
            "measured_bytes": int(torch.cuda.max_memory_reserved(device) + context),
            "allocated_peak_bytes": int(torch.cuda.max_memory_allocated(device)), "context_bytes": int(context),
            "gpu": torch.cuda.get_device_name(device)}
