"""`generators apply` on a full-size mammogram: tiled against whole-image inference, time and peak memory.

The paper-size U-Net (32/6) and CycleGAN G (64/9), random weights (cost does not depend on them), on one
2355 x 1315 LE image (the CDD-CESM size). Each setting runs in its own process so its peak resident memory
(ru_maxrss) is its own. Reported: seconds, peak RSS, and the largest difference of the tiled output from the
whole-image one (U-Net: tiling is exact up to rounding; CycleGAN normalises per image, so tiles of its
training crop differ from one whole-image pass by design, see the model card).

    python benchmarks/apply.py [--height 2355] [--width 1315] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from vdes_tune.config import GeneratorConfig
from vdes_tune.generator_registry import build_generator
from vdes_tune.inference.tiling import Tiling, infer_tiled

model, tile, overlap, h, w, threads, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
torch.set_num_threads(threads)
torch.manual_seed(0)
net = build_generator(GeneratorConfig.for_model(model)).eval()
multiple = getattr(net, "multiple", 4)
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:h, 0:w]
image = np.clip(0.8 * np.exp(-((xx / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2) + rng.normal(0, 0.03, (h, w)), 0, 1)
start = time.perf_counter()
with torch.no_grad():
    pred, tiles = infer_tiled(net, image.astype(np.float32), Tiling(tile, overlap, multiple), batch_size=4)
seconds = time.perf_counter() - start
np.save(out, pred)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "tiles": tiles, "peak_rss_mb": peak}))
"""


def run(model: str, tile: int, overlap: int, h: int, w: int, threads: int, out: str) -> dict:
    """One inference in a fresh process: its seconds, tiles and peak RSS."""
    done = subprocess.run([sys.executable, "-c", CHILD, model, str(tile), str(overlap), str(h), str(w),
                           str(threads), out], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Whole vs tiled for the U-Net and the CycleGAN generator; prints a markdown table."""
    import tempfile

    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=2355)
    parser.add_argument("--width", type=int, default=1315)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, tiled in (("unet", (1024, 256)), ("cyclegan", (224, 56))):
            whole = run(model, 0, 0, args.height, args.width, args.threads, f"{tmp}/whole.npy")
            tiles = run(model, *tiled, args.height, args.width, args.threads, f"{tmp}/tiled.npy")
            diff = float(np.abs(np.load(f"{tmp}/whole.npy") - np.load(f"{tmp}/tiled.npy")).max())
            rows.append((model, tiled, whole, tiles, diff))
    print(f"{args.height} x {args.width} px, {args.threads} threads, CPU\n")
    print("| generator | whole: s, peak MB | tiled (tile/overlap): tiles, s, peak MB | time ratio | memory ratio |"
          " max abs diff |")
    print("|---|---|---|---|---|---|")
    for model, (tile, overlap), whole, tiles, diff in rows:
        print(f"| {model} | {whole['seconds']:.1f}, {whole['peak_rss_mb']:.0f} | {tile}/{overlap}: {tiles['tiles']}, "
              f"{tiles['seconds']:.1f}, {tiles['peak_rss_mb']:.0f} | {tiles['seconds'] / whole['seconds']:.2f} | "
              f"{tiles['peak_rss_mb'] / whole['peak_rss_mb']:.2f} | {diff:.2e} |")


if __name__ == "__main__":
    main()
