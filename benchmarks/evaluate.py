"""The same evaluation on a pool of 1 and of 2 actors on 2 CPUs, in one run, on the synthetic data.

Baselines: one actor with one CPU (one torch thread) and one actor with both CPUs (two threads);
candidate: two actors with one CPU each. Reports wall time, jobs per minute and the ratio, and
checks that the pool size does not change any job's numbers (each job is seeded by itself).

    python benchmarks/evaluate.py [--patients 20] [--crop-size 96] [--archs 1,2,3] [--repeats 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import pandas as pd

from vdes_tune.config import EvaluateConfig, IngestConfig, SynthConfig
from vdes_tune.phantom.dataset import write_dataset
from vdes_tune.evaluation.repeats import EvalOptions, evaluate
from vdes_tune.runtime import ray_session
from vdes_tune.stages import Context, ingest, pretrain
from vdes_tune.stages.evaluate import EvaluateStage
from vdes_tune.workspace import Workspace

POOLS = (("1 actor x 1 CPU", 1, 1.0), ("1 actor x 2 CPUs", 1, 2.0), ("2 actors x 1 CPU", 2, 1.0))
METRICS = ["val_f1", "val_accuracy", "test_f1", "test_accuracy", "best_epoch"]


def main() -> None:
    """Run the evaluation once per pool shape and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--archs", default="1,2,3")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    archs = tuple(int(a) for a in args.archs.split(","))
    cfg = EvaluateConfig(archs=archs, repeats=args.repeats,
                         train={"classifier": "resnet18", "epochs": args.epochs, "batch_size": 16})
    with tempfile.TemporaryDirectory() as tmp, ray_session(num_cpus=2):
        write_dataset(SynthConfig(patients=args.patients, size="small", seed=0), f"{tmp}/raw")
        ingest.run(IngestConfig(crop_size=args.crop_size), Workspace.at(f"{tmp}/work"), f"{tmp}/raw")
        # #4's or #7's generator, if evaluated, is made once here, outside the timed pools.
        pretrain.run(EvaluateStage(cfg, EvalOptions()), Context(Workspace.at(f"{tmp}/work"), log=lambda m: None))
        rows, results = [], {}
        for label, actors, cpus in POOLS:
            run = label.replace(" ", "").replace("x", "-")
            start = time.perf_counter()
            summary = evaluate(cfg, f"{tmp}/work", EvalOptions(run=run, actors=actors, cpus_per_actor=cpus,
                                                                progress=False), log=lambda m: None)
            wall = time.perf_counter() - start
            assert not summary["failed"], summary["failed"]
            results[label] = pd.read_parquet(summary["results"]).set_index(["arch", "repeat"])[METRICS]
            rows.append({"pool": label, "jobs": summary["jobs"], "wall_s": round(wall, 1),
                         "jobs_per_min": round(60 * summary["jobs"] / wall, 2)})
    table = pd.DataFrame(rows)
    base = table.loc[0, "wall_s"]
    table["wall_vs_1x1"] = (table["wall_s"] / base).round(3)
    print(f"{len(archs)} architectures x {args.repeats} repeats, {args.epochs} epochs, resnet18, "
          f"{args.crop_size} px, {args.patients} patients, 2 CPUs")
    print(table.to_string(index=False))
    same = results["1 actor x 1 CPU"].equals(results["2 actors x 1 CPU"])
    print(f"2 actors vs 1 actor (1 thread each): identical job metrics: {same}")
    print(json.dumps({"rows": rows, "identical": same}))


if __name__ == "__main__":
    main()
