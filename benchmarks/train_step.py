"""Training loop overhead: vdes-tune's one loop (engine.fit + task) vs a bare PyTorch loop, same model and data.

Both loops see the same pre-built batches (no augmentation, so only the loop differs), run the same
number of epochs with one validation pass per epoch, and are interleaved A/B/A/B so machine drift hits
both alike. The table reports training images per second and the ratio (goal: >= 0.95 on CPU).

    python benchmarks/train_step.py [--images 64] [--batch 16] [--epochs 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from vdes_tune.models.architectures import get_architecture
from vdes_tune.models.classifiers import build_classifier
from vdes_tune.models.unet import UNet
from vdes_tune.training.engine import fit, seed_everything
from vdes_tune.training.tasks import ClassificationTask, TranslationTask


def _batches(n: int, batch: int, size: int) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(0, n, batch):
        k = min(batch, n - i)
        images = {s: torch.randint(0, 256, (k, 1, size, size), generator=g).float() / 255 for s in ("le", "led", "des")}
        out.append((images, torch.randint(0, 2, (k,), generator=g)))
    return out


def classification(train, val, epochs: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(engine run, bare run) for #3 on ResNet18."""
    arch = get_architecture(3)

    def engine() -> None:
        seed_everything(0)
        task = ClassificationTask(arch, build_classifier("resnet18", dropout=0.2), 5e-4, torch.device("cpu"))
        fit(task, train, val, None, epochs)

    def bare() -> None:
        seed_everything(0)
        model = build_classifier("resnet18", dropout=0.2)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        opt = torch.optim.Adam(model.parameters(), lr=5e-4, fused=True)  # as the loop's optimiser
        for _ in range(epochs):
            model.train()
            for images, y in train:
                x = (torch.cat([images["le"], images["led"], images["des"]], 1) - mean) / std
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                for images, y in val:
                    x = (torch.cat([images["le"], images["led"], images["des"]], 1) - mean) / std
                    torch.softmax(model(x), 1)

    return engine, bare


def translation(train, val, epochs: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(engine run, bare run) for U-Net/PT (width 16, depth 4) on L1."""
    def engine() -> None:
        seed_everything(0)
        fit(TranslationTask(UNet(16, 4, 0.2), 5e-4, torch.device("cpu")), train, val, None, epochs)

    def bare() -> None:
        seed_everything(0)
        model = UNet(16, 4, 0.2)
        opt = torch.optim.Adam(model.parameters(), lr=5e-4, fused=True)  # as the loop's optimiser
        for _ in range(epochs):
            model.train()
            for images, _ in train:
                loss = F.l1_loss(model(images["le"]), images["des"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                for images, _ in val:
                    model(images["le"])

    return engine, bare


def main() -> None:
    """Time both loops per workload and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="training images per epoch")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="A/B repetitions; the median is reported")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    train, val = _batches(args.images, args.batch, args.size), _batches(args.batch, args.batch, args.size)
    print(f"| workload | loop | images/s (median of {args.rounds}) | ratio to bare |")
    print("|---|---|---|---|")
    for name, make in (("classification #3, ResNet18", classification), ("U-Net/PT 16x4, L1", translation)):
        engine, bare = make(train, val, args.epochs)
        bare()  # warm-up: allocator, kernels, thread pools
        times: dict[str, list[float]] = {"engine": [], "bare": []}
        for _ in range(args.rounds):
            for label, run in (("bare", bare), ("engine", engine)):
                start = time.perf_counter()
                run()
                times[label].append(time.perf_counter() - start)
        rate = {k: args.images * args.epochs / statistics.median(v) for k, v in times.items()}
        ratio = rate["engine"] / rate["bare"]
        print(f"| {name} | bare PyTorch | {rate['bare']:.1f} | 1.00 |")
        print(f"| {name} | vdes-tune fit | {rate['engine']:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
