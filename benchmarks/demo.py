"""Cold `vdes-tune demo` on this machine: wall time and peak memory of the whole process tree
(the command plus the Ray processes it starts), sampled every 0.2 s. Goal: at most 5 minutes on 2 cores.

    python benchmarks/demo.py [--patients 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from pathlib import Path


def tree_rss(root: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= new
        grew = bool(new)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def main() -> None:
    """Run the demo in a fresh workspace and print wall time and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        cmd = [sys.executable, "-m", "vdes_tune", "demo", "--work", f"{tmp}/work", "--patients", str(args.patients)]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.2)
        wall = time.perf_counter() - start
        out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        sys.exit(f"demo failed with exit code {proc.returncode}")
    print(out.strip())
    row = {"patients": args.patients, "wall_s": round(wall, 1), "peak_rss_gib": round(peak / 1024 ** 3, 2),
           "cpus": os.cpu_count()}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
