"""Calibrate the GPU memory estimator on this machine's GPU: measure real peaks, fit, write JSON.

Each configuration runs in a fresh process (its own CUDA context). Prints estimate/measured per
configuration before and after the fit; goal: within 15% and never below a measurement by more than 5%.

    python benchmarks/memory_calibration.py [--out vdes_tune/training/memory_calibration.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CONFIGS = [
    {"arch": 1, "classifier": "resnet18", "batch_size": 16},
    {"arch": 1, "classifier": "resnet34", "batch_size": 32},
    {"arch": 1, "classifier": "regnety_016", "batch_size": 16},
    {"arch": 3, "classifier": "regnety_016", "batch_size": 48},
    {"arch": 5, "classifier": "regnety_016", "unet_width": 32, "unet_depth": 6, "batch_size": 16},
    {"arch": 5, "classifier": "regnety_016", "unet_width": 64, "unet_depth": 5, "batch_size": 16},
    {"arch": 5, "classifier": "resnet18", "unet_width": 16, "unet_depth": 7, "batch_size": 32},
    {"arch": 6, "classifier": "regnety_016", "batch_size": 16},
]
CHILD = ("import json, sys; from vdes_tune.config import TrainConfig; from vdes_tune.training.memory import "
         "measure_peak; print(json.dumps(measure_peak(TrainConfig(**json.loads(sys.argv[1])))))")


def main() -> None:
    """Measure every configuration, fit the calibration, report and write it."""
    from vdes_tune.training.memory import GIB, fit_calibration, save_calibration

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("memory_calibration.json"))
    args = parser.parse_args()
    rows = []
    for cfg in CONFIGS:
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{cfg}: failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cal = fit_calibration(rows, gpu=rows[0]["gpu"])
    print(f"GPU: {cal.gpu}; fitted activation_factor {cal.activation_factor}, overhead {cal.overhead_gb} GiB")
    print(f"{'config':<70} {'measured':>9} {'default':>8} {'fitted':>8}")
    for r in rows:
        default = (r["fixed_bytes"] + r["activation_bytes"] + 1.0 * GIB) / r["measured_bytes"]
        fitted = (r["fixed_bytes"] + cal.activation_factor * r["activation_bytes"] + cal.overhead_gb * GIB) / r["measured_bytes"]
        print(f"{json.dumps(r['config']):<70} {r['measured_bytes'] / GIB:>8.2f}G {default:>8.2f} {fitted:>8.2f}")
    save_calibration(cal, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
