"""Registration speed: vdes-tune's MI search vs a straightforward search calling sklearn per candidate.

Both run the same candidate shifts (paper two-level search) on the same full-size synthetic pairs, in
one process on one core; the table reports seconds per pair and the speed ratio (goal: >= 30x).

    python benchmarks/registration.py [--pairs 4] [--patients 2] [--size full]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import mutual_info_score  # noqa: E402

from vdes_tune.config import SynthConfig  # noqa: E402
from vdes_tune.data.pairs import read_gray  # noqa: E402
from vdes_tune.data.registration import candidate_grid, overlap, register  # noqa: E402
from vdes_tune.phantom.dataset import write_dataset  # noqa: E402


def baseline_register(le: np.ndarray, des: np.ndarray, max_shift: int = 10, step: int = 5,
                      radius: int = 2) -> tuple[int, int, int]:
    """The paper's two-level search written plainly: sklearn MI on the overlap of every candidate."""
    def mi(tx: int, ty: int) -> float:
        ly, lx, dy, dx = overlap(le.shape, des.shape, tx, ty)
        return mutual_info_score(le[ly, lx].ravel(), des[dy, dx].ravel())

    def best(cands: list[tuple[int, int]]) -> tuple[int, int]:
        scores = [mi(*c) for c in cands]
        top = max(scores)
        ties = [c for c, s in zip(cands, scores) if s == top]
        return min(ties, key=lambda s: (abs(s[0]) + abs(s[1]), s[1], s[0]))

    axis = candidate_grid(max_shift, step)
    level1 = [(x, y) for y in axis for x in axis]
    cx, cy = best(level1)
    near = range(-radius, radius + 1)
    level2 = [(cx + a, cy + b) for b in near for a in near if abs(cx + a) <= max_shift and abs(cy + b) <= max_shift]
    tx, ty = best(level2)
    return tx, ty, len(level1) + len(level2)


def main() -> None:
    """Run both searches on the same pairs and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4, help="pairs timed with the sklearn baseline")
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "raw"
        write_dataset(SynthConfig(patients=args.patients, size=args.size, seed=args.seed), root)
        truth = pd.read_csv(root / "synthetic_truth.csv").drop_duplicates("pair_id")
        rows = []
        for rec in truth.head(args.pairs).itertuples():
            le = read_gray(root / "Low energy images of CDD-CESM" / rec.le_file)
            des = read_gray(root / "Subtracted images of CDD-CESM" / rec.des_file)
            t0 = time.perf_counter()
            ours = register(le, des, "two-level")
            t1 = time.perf_counter()
            exhaustive = register(le, des, "exhaustive")
            t2 = time.perf_counter()
            btx, bty, bevals = baseline_register(le, des)
            t3 = time.perf_counter()
            rows.append({
                "pair": rec.pair_id, "pixels": le.size, "truth": (rec.tx, rec.ty), "ours": (ours.tx, ours.ty),
                "baseline": (btx, bty), "exhaustive": (exhaustive.tx, exhaustive.ty),
                "ours_s": t1 - t0, "exhaustive_s": t2 - t1, "baseline_s": t3 - t2,
                "evals": ours.evaluations, "baseline_evals": bevals,
            })
    df = pd.DataFrame(rows)
    print("| pair | LE pixels | truth | two-level | sklearn baseline | exhaustive | ours s | exhaustive s "
          "| baseline s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in df.itertuples():
        print(f"| {r.pair} | {r.pixels} | {r.truth} | {r.ours} | {r.baseline} | {r.exhaustive} | {r.ours_s:.3f} "
              f"| {r.exhaustive_s:.3f} | {r.baseline_s:.2f} | {r.baseline_s / r.ours_s:.0f}x |")
    same = (df["ours"] == df["baseline"]).all()
    ratio = df["baseline_s"].sum() / df["ours_s"].sum()
    print(f"\nsame shifts as baseline: {same}; evaluations per pair: {df['evals'].mean():.0f} "
          f"(baseline {df['baseline_evals'].mean():.0f}); mean s/pair: ours {df['ours_s'].mean():.3f}, "
          f"exhaustive {df['exhaustive_s'].mean():.3f}, baseline {df['baseline_s'].mean():.2f}; "
          f"speed ratio {ratio:.1f}x (goal >= 30x)")


if __name__ == "__main__":
    main()
