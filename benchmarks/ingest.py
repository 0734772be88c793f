"""Ingest throughput (pairs/s) on full-size synthetic pairs with 1 and 2 CPUs for Ray.

Each run starts its own local Ray with the given CPU count and rebuilds the dataset (--force).
"start+stage" includes starting Ray; "stage" is the ingest stage alone on a started Ray (a second,
timed rebuild), which is the throughput a long ingest sees. Speed-ups are against the first CPU count.

    python benchmarks/ingest.py [--patients 4] [--size full] [--cpus 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from vdes_tune.config import IngestConfig, SynthConfig
from vdes_tune.phantom.dataset import write_dataset
from vdes_tune.runtime import ray_session
from vdes_tune.stages import ingest
from vdes_tune.workspace import Workspace


def main() -> None:
    """Synthesise once, ingest once per CPU count, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=12)
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        write_dataset(SynthConfig(patients=args.patients, size=args.size, seed=args.seed), raw)
        rows = []
        for cpus in args.cpus:
            work = Workspace.at(Path(tmp) / f"work{cpus}")
            t0 = time.perf_counter()
            with ray_session(num_cpus=cpus):
                summary = ingest.run(IngestConfig(), work, raw, force=True)
                t1 = time.perf_counter()
                ingest.run(IngestConfig(), work, raw, force=True)
                t2 = time.perf_counter()
            rows.append((cpus, summary.pairs_found, summary.crops, t1 - t0, t2 - t1))
    print("| Ray CPUs | pairs | crops | start+stage s | stage s | stage pairs/s | stage speed-up |")
    print("|---|---|---|---|---|---|---|")
    for cpus, pairs, crops, first, stage in rows:
        print(f"| {cpus} | {pairs} | {crops} | {first:.1f} | {stage:.1f} | {pairs / stage:.2f} "
              f"| {rows[0][4] / stage:.2f}x |")


if __name__ == "__main__":
    main()
