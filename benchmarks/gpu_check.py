"""The GPU check in one command (issue 24): what someone about to spend GPU days on the paper needs measured.

In order, each step's result written as soon as it is known (a run cut short keeps what it measured):

1. memory calibration: the 8 configurations of benchmarks/memory_calibration.py, estimate against measured
   peak, the fitted calibration (written to OUT/memory_calibration.json, to ship);
2. a packed search on the one GPU: 4 trials whose estimated fractions sum to at most 1, through the real
   search; how many ran at the same time, each trial's peak against its per-process cap, out-of-memory count;
3. mixed-precision training throughput (images/s) of each classifier and of U-Net/EE 32/6 at 224 px;
4. one paper-scale evaluation job timed: #4 (U-Net/PT virtual DES, its generator pre-trained one epoch and
   synthesised, both timed per crop) for the paper's 30 epochs on a CDD-CESM-sized split (953/204/205
   crops) of a full-size phantom ingested at 224 px, through the code an evaluation actor runs;
5. the projected GPU-hours of pipelines/paper.yaml on one GPU, one trial per GPU and packed: the throughput
   of step 3 scaled by how the timed job compares with it, and the packing speed-up of step 2.

`--dry-run` runs the same code on the CPU at tiny sizes (a logical GPU for the packing, estimates standing
in for measured peaks): a CI test runs it, so the check works the day a GPU comes.

    python benchmarks/gpu_check.py [--out gpu-check] [--gpu-memory-gb 24] [--limit-s 480] [--work W] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from memory_calibration import CHILD, CONFIGS  # noqa: E402  (the calibration's own configurations)

# A CDD-CESM-sized split (paper 2.1: 1362 crops of 326 patients, 70/15/15 by patient).
PAPER_CROPS = {"train": 953, "val": 204, "test": 205}
THROUGHPUT = [("resnet18", 1, {}), ("resnet34", 1, {}), ("regnety_016", 1, {}),
              ("resnet18", 5, {"unet_width": 32, "unet_depth": 6})]
EVAL_COST = 1 / 3  # an evaluated image costs about a third of a trained one (forward only)


def sizes(dry: bool) -> dict[str, Any]:
    """Image side, batch and timed steps, and the evaluation job's split and epochs: the paper's on a GPU,
    tiny on the CPU."""
    return {"input": 32, "batch": 4, "steps": 2, "crop": 64, "job_crops": {"train": 24, "val": 8, "test": 8},
            "job_epochs": 2, "patients": 0} if dry else \
        {"input": 224, "batch": 32, "steps": 20, "crop": 224, "job_crops": PAPER_CROPS, "job_epochs": None,
         "patients": 24}


def calibration(args: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    """Step 1: measure each configuration in a fresh process (its own CUDA context), fit, write the file."""
    from vdes_tune.config import TrainConfig
    from vdes_tune.training.memory import GIB, Calibration, estimate, fit_calibration, save_calibration

    rows = []
    for cfg in CONFIGS:
        if args.dry_run:  # no GPU to measure: the uncalibrated estimate plus 0.5 GiB stands in for a peak
            raw = estimate(TrainConfig(**cfg), sizes(True)["input"], Calibration(1.0, 0.0))
            rows.append({"config": cfg, "input_size": sizes(True)["input"], "gpu": "dry run (no GPU)",
                         "fixed_bytes": raw.weights + raw.gradients + raw.optimizer,
                         "activation_bytes": raw.activations, "measured_bytes": raw.total + GIB // 2})
            continue
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"config": cfg, "error": (done.stderr.strip().splitlines() or ["?"])[-1]})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    measured = [r for r in rows if "measured_bytes" in r]
    cal = fit_calibration(measured, gpu=measured[0]["gpu"])
    path = args.out / "memory_calibration.json"
    save_calibration(cal, path)
    table = []
    for r in measured:
        fitted = r["fixed_bytes"] + cal.activation_factor * r["activation_bytes"] + cal.overhead_gb * GIB
        default = r["fixed_bytes"] + r["activation_bytes"] + GIB
        table.append({"config": r["config"], "measured_gb": r["measured_bytes"] / GIB,
                      "default_estimate_ratio": default / r["measured_bytes"],
                      "fitted_estimate_ratio": fitted / r["measured_bytes"]})
    return {"gpu": cal.gpu, "activation_factor": cal.activation_factor, "overhead_gb": cal.overhead_gb,
            "file": str(path), "rows": table, "failed": [r for r in rows if "error" in r]}


def _workspace(args: argparse.Namespace) -> Path:
    """A small phantom, ingested at the check's crop size, for the packed search."""
    from vdes_tune.config import IngestConfig, SynthConfig
    from vdes_tune.phantom.dataset import write_dataset
    from vdes_tune.stages import ingest
    from vdes_tune.workspace import Workspace

    work = args.work or args.out / "work"
    if not (work / "dataset" / "manifest.json").is_file():
        raw = args.out / "raw"
        write_dataset(SynthConfig(patients=12, size="small", seed=7), raw)
        ingest.run(IngestConfig(crop_size=sizes(args.dry_run)["crop"]), Workspace.at(work), raw)
    return work


def concurrency(trials: list[dict[str, Any]]) -> tuple[int, float]:
    """The most trials running at one time (from each trial's start and last report) and the largest sum of
    their GPU fractions at any such time."""
    events = sorted([(t["start"], 1, t["fraction"]) for t in trials] + [(t["end"], -1, -t["fraction"]) for t in trials],
                    key=lambda e: (e[0], e[1]))
    running, most, share, widest = 0, 0, 0.0, 0.0
    for _, step, fraction in events:
        running, share = running + step, share + fraction
        most, widest = max(most, running), max(widest, share)
    return most, round(widest, 6)


def packed_search(args: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    """Step 2: 4 trials sized to share the GPU, through the real search; what ran at once, peaks against caps."""
    import yaml

    from vdes_tune.search.runner import SearchOptions, run_search
    from vdes_tune.search.space import load_space
    from vdes_tune.training.memory import estimate, load_calibration, place

    work, s = _workspace(args), sizes(args.dry_run)
    fixed = {"train.classifier": "resnet18", "train.epochs": 1 if args.dry_run else 3,
             "train.batch_size": s["batch"] if args.dry_run else 64,
             "train.device": "cpu" if args.dry_run else "cuda"}

    def space_of(name: str, lrs: list[float]) -> Any:
        path = args.out / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "arch": 1, "metric": "val_f1", "mode": "max", "repeats": 1,
                                        "algorithm": "grid", "fixed": fixed,
                                        "parameters": {"train.lr": {"choice": lrs}}}))
        return load_space(str(path))

    space = space_of("gpu-check-packed", [1e-3, 5e-4, 2e-4, 1e-4])
    cal_file = out.get("calibration", {}).get("file", "")
    cal = load_calibration(Path(cal_file) if cal_file else None)
    from vdes_tune.gpus import cluster_nodes, packing_for

    packing = packing_for(cluster_nodes(), args.gpu_memory_gb)  # as the search itself will size its trials
    planned = [place(estimate(space.train_config(p), s["crop"], cal).total, packing.budget_gb, packing.card_gb)
               for p in space.points()]
    fraction_sum = sum(p.fraction for p in planned)
    if fraction_sum > 1 or not all(p.feasible for p in planned):
        raise RuntimeError(f"the 4 trials' fractions sum to {fraction_sum:.3f}: they cannot all share one GPU")
    # The baseline first: one such trial alone on the GPU, then the four packed.
    alone = _trials(run_search(space_of("gpu-check-alone", [1e-3]), work,
                               SearchOptions(gpu_memory_gb=args.gpu_memory_gb, calibration=cal_file)))
    summary = run_search(space, work, SearchOptions(max_concurrent=4, gpu_memory_gb=args.gpu_memory_gb,
                                                    calibration=cal_file))
    trials = _trials(summary)
    most, widest = concurrency(trials)
    span = max(t["end"] for t in trials) - min(t["start"] for t in trials)
    one = alone[0]["end"] - alone[0]["start"]
    over = [t["trial"] for t in trials if t["peak_gb"] is not None and t["cap_gb"] and t["peak_gb"] > t["cap_gb"]]
    return {"packing": packing.to_dict(), "trials": trials, "fraction_sum": fraction_sum, "most_at_once": most,
            "widest_share": widest,
            "oom": sum(t["oom"] for t in trials), "over_cap": over, "alone_s": one, "packed_s": span,
            "speedup": len(trials) * one / span if span > 0 else 1.0,
            "finished": summary["finished"], "errored": summary["errored"]}


def _trials(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each trial of a finished search: its fraction, estimate, peak and cap, start and last report."""
    from vdes_tune.search.export import result_rows

    trials = []
    for folder in sorted(Path(summary["path"]).glob("trial_*")):
        rows = result_rows(folder / "result.json")
        if not rows:
            continue
        last = rows[-1]
        trials.append({"trial": folder.name.split("_")[1], "fraction": float(last.get("gpu_fraction", 0.0)),
                       "estimate_gb": float(last.get("memory_estimate_gb", 0.0)),
                       "peak_gb": max((r["gpu_peak_gb"] for r in rows if "gpu_peak_gb" in r), default=None),
                       "cap_gb": last.get("gpu_cap_gb"), "oom": int(last.get("oom", 0)),
                       "start": float(last["trial_start"]), "end": max(float(r["report_time"]) for r in rows
                                                                       if "report_time" in r)})
    return trials


def throughput(args: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    """Step 3: training images per second (bf16 autocast on CUDA) of each classifier and of U-Net/EE 32/6."""
    import torch

    from vdes_tune.config import GeneratorConfig
    from vdes_tune.models.architectures import get_architecture
    from vdes_tune.models.classifiers import build_classifier
    from vdes_tune.generator_registry import build_generator
    from vdes_tune.training.tasks import ClassificationTask

    s = sizes(args.dry_run)
    device = torch.device("cpu" if args.dry_run else "cuda")
    rows = []
    for name, arch_no, unet in THROUGHPUT:
        arch = get_architecture(arch_no)
        generator = (build_generator(GeneratorConfig.for_model("unet", **unet, unet_dropout=0.2))
                     if arch.end_to_end else None)
        task = ClassificationTask(arch, build_classifier(name, dropout=0.0), 1e-3, device, generator)
        task.train(True)
        images = {src: torch.rand(s["batch"], 1, s["input"], s["input"]) for src in arch.needs if src != "vdes"}
        batch = (images, torch.randint(0, 2, (s["batch"],)))

        def run(steps: int) -> float:
            start = time.perf_counter()
            for _ in range(steps):
                task.train_step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - start

        run(2)  # warm-up: cuDNN autotuning, allocator
        seconds = run(s["steps"])
        label = f"#{arch_no} {name}" + (f" + U-Net/EE {unet['unet_width']}/{unet['unet_depth']}" if unet else "")
        rows.append({"model": label, "classifier": name, "arch": arch_no, "input": s["input"], "batch": s["batch"],
                     "images_per_s": s["batch"] * s["steps"] / seconds})
        del task
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "rows": rows}


def _full_size_phantom(args: argparse.Namespace) -> Path:
    """A full-size phantom (about 2355x1315 px images), ingested as the paper does (224 px crops)."""
    from vdes_tune.config import IngestConfig, SynthConfig
    from vdes_tune.phantom.dataset import write_dataset
    from vdes_tune.stages import ingest
    from vdes_tune.workspace import Workspace

    work = args.out / "paper-work"
    if not (work / "dataset" / "manifest.json").is_file():
        raw = args.out / "paper-raw"
        if not (raw / "synthetic_truth.csv").is_file():
            write_dataset(SynthConfig(patients=sizes(False)["patients"], size="full", seed=11), raw)
        ingest.run(IngestConfig(crop_size=224), Workspace.at(work), raw)
    return work


def to_size(frame: Any, rows: int) -> Any:
    """`frame`'s crops repeated (each copy its own crop_id) to `rows`: a job's cost depends on how many crops
    it trains and evaluates, not on which."""
    import pandas as pd

    reps = -(-rows // len(frame))
    parts = [frame.assign(crop_id=frame["crop_id"].astype(str) + f"~{k}") for k in range(reps)]
    return pd.concat(parts, ignore_index=True).iloc[:rows].reset_index(drop=True)


def paper_job(args: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    """Step 4: one evaluation job of #4 (LE + LED + U-Net/PT virtual DES) at the paper's scale, timed: the
    U-Net/PT pre-trained one epoch and its virtual DES synthesised (both timed, per crop), then the job's
    classifier on a CDD-CESM-sized split (953/204/205 crops of the full-size phantom, repeated to those
    counts) for the paper's epochs, through the code an evaluation actor runs (prepare_classification and
    its Fitter). A job's cost does not depend on how well its generator was trained."""
    import torch

    from vdes_tune.config import GeneratorConfig, TrainConfig
    from vdes_tune.stages import generators
    from vdes_tune.training.classify import load_frames, pick_device, prepare_classification
    from vdes_tune.workspace import Workspace

    s = sizes(args.dry_run)
    work = args.paper_work or (_workspace(args) if args.dry_run else _full_size_phantom(args))
    workspace = Workspace.at(work)
    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    name = "gpu-check-unet"
    began = time.perf_counter()
    trained = generators.train(GeneratorConfig.for_model("unet", epochs=1, device=device), workspace, name, force=True)
    generator_s = time.perf_counter() - began
    began = time.perf_counter()
    made = generators.synthesize(name, workspace, force=True, device=device)
    synth_s = time.perf_counter() - began
    cfg = TrainConfig(arch=4, classifier="resnet18", vdes=name, device=device,
                      **({"epochs": s["job_epochs"]} if s["job_epochs"] else {}))
    found = load_frames(cfg, workspace)
    frames = {split: to_size(found[split], n) for split, n in s["job_crops"].items()}
    dev = pick_device(cfg.device)
    began = time.perf_counter()
    deadline = began + max(30.0, args.limit_s - (began - START))  # a job cut short still gives its per-epoch time
    run = prepare_classification(cfg, workspace, frames, dev)
    fitter = run.fitter()
    epoch_s = []
    while not fitter.done and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fitter.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        epoch_s.append(time.perf_counter() - t0)
    job_s = time.perf_counter() - began
    per_epoch = sum(epoch_s[1:]) / len(epoch_s[1:]) if len(epoch_s) > 1 else epoch_s[0]  # the first warms up
    trained_crops = len(found["train"])
    return {"workspace": str(work), "phantom_crops": {k: len(v) for k, v in found.items()},
            "job_crops": {k: len(v) for k, v in frames.items()}, "epochs": cfg.epochs, "epochs_run": len(epoch_s),
            "batch": cfg.batch_size, "job_s": job_s, "epoch_s": per_epoch, "first_epoch_s": epoch_s[0],
            "projected_job_s": epoch_s[0] + per_epoch * (cfg.epochs - 1),
            "generator_epoch_s_per_crop": generator_s / max(1, trained_crops),
            "synthesis_s_per_crop": synth_s / max(1, sum(made.rows.values())),
            "generator_trained": trained.get("output", ""),
            "device": str(dev)}


def projection(args: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    """Step 5: GPU-hours of pipelines/paper.yaml: trained and evaluated images over the measured rates, scaled
    by the timed job's pace against what the rates predict for it."""
    from vdes_tune.search.space import load_space

    rates = {(r["classifier"], r["arch"]): r["images_per_s"] for r in out["throughput"]["rows"]}
    per_epoch = PAPER_CROPS["train"] + EVAL_COST * (PAPER_CROPS["val"] + PAPER_CROPS["test"])
    search_epoch = PAPER_CROPS["train"] + EVAL_COST * PAPER_CROPS["val"]  # a search never reads test
    parts = []
    for space_name in ("paper_classifier_lr", "paper_unet_width_depth", "paper_dropout"):
        space = load_space(space_name, ["strategy=fixed"])
        seconds = 0.0
        for point in space.points():  # every seed of every point for every epoch, as the paper ran them
            cfg = space.train_config(point)
            # A U-Net/EE trial at the measured 32/6's rate; a classifier without one at its own.
            kind = 5 if cfg.arch == 5 else 1
            rate = rates.get((cfg.classifier, kind)) or rates[("resnet18", kind)]
            seconds += len(space.seeds(point)) * cfg.epochs * search_epoch / rate
        parts.append({"stage": f"search {space_name} (strategy fixed)", "hours": seconds / 3600})
    evaluation = 0.0
    for arch in range(1, 7):  # 30 repeats x 30 epochs, ResNet18 (the paper's chosen classifier)
        evaluation += 30 * 30 * per_epoch / rates[("resnet18", 5 if arch == 5 else 1)]
    parts.append({"stage": "evaluate 6 architectures x 30 repeats", "hours": evaluation / 3600})
    total = sum(p["hours"] for p in parts)
    speedup = out.get("packed_search", {}).get("speedup") or 1.0
    # The timed job against what the throughput predicts for the same job: loading, augmentation,
    # validation and the small batch cost what random tensors at batch 32 do not show.
    job = out.get("paper_job", {})
    factor, basis = 1.0, "throughput only: images/s of step 3 x images trained and evaluated"
    if job.get("epoch_s"):
        crops = job["job_crops"]
        predicted = (crops["train"] + EVAL_COST * (crops["val"] + crops["test"])) / rates[("resnet18", 1)]
        factor = job["epoch_s"] / predicted
        basis = (f"images/s of step 3 x images, times {factor:.2f} = the timed #4 job's seconds per epoch "
                 f"over what the throughput predicts for it")
    return {"one_trial_per_gpu_hours": total * factor, "packed_hours": total * factor / speedup,
            "throughput_only_hours": total, "job_factor": factor, "packing_speedup": speedup,
            "parts": [{**p, "hours": p["hours"] * factor} for p in parts], "crops": PAPER_CROPS,
            "basis": basis + "; generator pre-training and synthesis left out (see the job step's per-crop times)"}


STEPS: list[tuple[str, Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]]]] = [
    ("calibration", calibration), ("packed_search", packed_search), ("throughput", throughput),
    ("paper_job", paper_job), ("projection", projection)]
START = time.perf_counter()  # reset by main(); the job step stops its epochs at the time limit


def _gb(value: float | None) -> str:
    return "n/a (no GPU)" if value is None else f"{value:.2f}"


def markdown(out: dict[str, Any]) -> str:
    """The check as Markdown tables (what docs/benchmarks.md records)."""
    lines = [f"GPU check ({'dry run on the CPU' if out['dry_run'] else out.get('device', '?')}), "
             f"{out['wall_s']:.0f} s\n"]
    cal = out.get("calibration", {})
    if cal.get("rows"):
        lines += [f"Calibration on {cal['gpu']}: activation factor {cal['activation_factor']}, overhead "
                  f"{cal['overhead_gb']} GiB\n", "| configuration | measured (GiB) | default / measured | "
                  "fitted / measured |", "|---|---|---|---|"]
        lines += [f"| {json.dumps(r['config'])} | {r['measured_gb']:.2f} | {r['default_estimate_ratio']:.2f} | "
                  f"{r['fitted_estimate_ratio']:.2f} |" for r in cal["rows"]]
    packed = out.get("packed_search", {})
    if packed.get("trials"):
        lines += ["", f"Packed search on one {packed['packing']['card_gb']:g} GiB card: {len(packed['trials'])} "
                  f"trials, fractions sum {packed['fraction_sum']:.3f}; "
                  f"at most {packed['most_at_once']} at once (their fractions summing to {packed['widest_share']}); "
                  f"out of memory: {packed['oom']}; over their cap: {packed['over_cap'] or 'none'}; one alone "
                  f"{packed['alone_s']:.0f} s, four packed {packed['packed_s']:.0f} s: {packed['speedup']:.2f}x\n",
                  "| trial | fraction | estimate (GiB) | peak (GiB) | cap (GiB) |", "|---|---|---|---|---|"]
        lines += [f"| {t['trial']} | {t['fraction']:.3f} | {t['estimate_gb']:.2f} | {_gb(t['peak_gb'])} | "
                  f"{_gb(t['cap_gb'])} |" for t in packed["trials"]]
    rates = out.get("throughput", {})
    if rates.get("rows"):
        lines += ["", "| model | input | batch | images/s |", "|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['input']} | {r['batch']} | {r['images_per_s']:.1f} |" for r in rates["rows"]]
    job = out.get("paper_job", {})
    if job.get("epoch_s"):
        lines += ["", f"Evaluation job #4 on {job['device']}: {job['job_crops']['train']}/{job['job_crops']['val']}/"
                  f"{job['job_crops']['test']} crops, batch {job['batch']}, {job['epochs_run']} of {job['epochs']} "
                  f"epochs in {job['job_s']:.0f} s ({job['epoch_s']:.1f} s per epoch, first "
                  f"{job['first_epoch_s']:.1f} s): {job['projected_job_s'] / 60:.1f} min per job; U-Net/PT "
                  f"pre-training "
                  f"{job['generator_epoch_s_per_crop'] * 1000:.1f} ms per crop-epoch, synthesis "
                  f"{job['synthesis_s_per_crop'] * 1000:.1f} ms per crop"]
    plan = out.get("projection", {})
    if plan.get("parts"):
        lines += ["", f"pipelines/paper.yaml on one GPU: {plan['one_trial_per_gpu_hours']:.1f} GPU-hours one trial "
                  f"per GPU, {plan['packed_hours']:.1f} packed ({plan['packing_speedup']:.2f}x); throughput alone "
                  f"said {plan['throughput_only_hours']:.1f} (the timed job runs at {1 / plan['job_factor']:.2f}x "
                  f"the throughput's pace)\n",
                  "| stage | GPU-hours (one trial per GPU) |", "|---|---|"]
        lines += [f"| {p['stage']} | {p['hours']:.1f} |" for p in plan["parts"]]
    for name, _ in STEPS:
        if "error" in out.get(name, {}):
            lines.append(f"\n{name}: FAILED: {out[name]['error']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the steps in order within the time limit; write OUT/gpu_check.json and OUT/gpu_check.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu-check"))
    parser.add_argument("--gpu-memory-gb", type=float, default=None,
                        help="The most one configuration may use (default: the card's memory).")
    parser.add_argument("--limit-s", type=float, default=480.0, help="Skip the steps left after this long.")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="An ingested workspace for the packed search "
                        "(default: a 12-patient phantom made under --out).")
    parser.add_argument("--paper-work", type=Path, default=None, help="An ingested workspace at 224 px for the "
                        "timed #4 job (default: a full-size 24-patient phantom made under --out; the dry run uses "
                        "--work).")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            sys.exit("no CUDA GPU here: run it with --dry-run, or on the GPU machine")
    import ray

    # A logical GPU on the CPU: the packing arithmetic and Ray's fractional placement run as on a real one.
    from vdes_tune.gpus import PAPER_GPU_GB, MEMORY_RESOURCE, local_cards_mib, node_resources

    # As a local vdes-tune run does: the card's memory advertised, so trials pack by it. The dry run's logical
    # GPU advertises the paper's card.
    memory = {MEMORY_RESOURCE: PAPER_GPU_GB * 1024} if args.dry_run else node_resources(local_cards_mib())
    ray.init(address="local", num_cpus=4 if args.dry_run else None, num_gpus=1 if args.dry_run else None,
             resources=memory or None, _node_ip_address="127.0.0.1", include_dashboard=False,
             logging_level="warning")
    global START
    start = START = time.perf_counter()
    out: dict[str, Any] = {"dry_run": args.dry_run, "gpu_memory_gb": args.gpu_memory_gb, "wall_s": 0.0}
    for name, step in STEPS:
        if time.perf_counter() - start > args.limit_s:
            out[name] = {"error": f"skipped: past the {args.limit_s:.0f} s limit"}
            continue
        began = time.perf_counter()
        try:
            out[name] = {**step(args, out), "seconds": round(time.perf_counter() - began, 1)}
        except Exception as exc:  # one failed step must not lose the others' figures
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - began, 1)}
        out["wall_s"] = time.perf_counter() - start
        out["device"] = out.get("throughput", {}).get("device", out.get("calibration", {}).get("gpu"))
        (args.out / "gpu_check.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
        (args.out / "gpu_check.md").write_text(markdown(out))
    print(markdown(out))
    failed = [n for n, _ in STEPS if "error" in out.get(n, {})]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
