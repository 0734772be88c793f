"""`vdes-tune run|demo`: a pipeline of stages end to end, and the demo on a synthetic dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from vdes_tune.cli.app import app
from vdes_tune.cli.status import verify_option

DEMO_PATIENTS = 48


def _run(pipeline: str, data: str | Path, work: str | Path, address: Optional[str], as_json: bool,
         verify: bool = False) -> dict:
    from vdes_tune.pipeline import load_pipeline, run_pipeline

    pipe = load_pipeline(pipeline)
    log = (lambda m: typer.echo(m, err=True))
    summaries = run_pipeline(pipe, data, work, address, log=log, verify=verify)
    if as_json:
        typer.echo(json.dumps(summaries, indent=2, default=str))
    return {"pipeline": pipe, "summaries": summaries}


def _finish(result: dict) -> None:
    """Table 3 and the report's path, when the pipeline ended with an evaluation and a report."""
    from vdes_tune.cli.evaluate import print_table3

    summaries = result["summaries"]
    evaluated = [s for s in summaries if s["stage"] == "evaluate"]
    reports = [s for s in summaries if s["stage"] == "report"]
    if evaluated:
        typer.echo(f"\nTable 3 ({evaluated[-1]['rows']} jobs of run '{evaluated[-1]['run']}'):")
        print_table3(evaluated[-1]["results"])
    if reports:
        typer.echo(f"\nreport: {reports[-1]['report_html']}\n        {reports[-1]['report_md']}")


@app.command("run")
def run_cmd(
    pipeline: str = typer.Argument(..., help="A pipeline YAML file, or a shipped one: smoke, paper."),
    data: str = typer.Option(..., "--data", help="Raw dataset in the CDD-CESM layout (folder or URI)."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) every stage writes to."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto, host:port or ray://..."),
    verify: bool = verify_option(),
    as_json: bool = typer.Option(False, "--json", help="Print every stage's summary as JSON."),
) -> None:
    """Run a pipeline's stages in order, skipping those already done (so re-running resumes)."""
    result = _run(pipeline, data, work, address, as_json, verify)
    if not as_json:
        _finish(result)


@app.command()
def demo(
    work: Path = typer.Option(Path("vdes-work"), "--work", help="Workspace folder (the dataset goes to <work>/raw)."),
    patients: int = typer.Option(DEMO_PATIENTS, "--patients", min=4, help="Patients in the synthetic dataset."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic dataset."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto, host:port or ray://..."),
) -> None:
    """Synthesise a small CDD-CESM-layout dataset and run pipelines/smoke.yaml on it end to end."""
    from vdes_tune.config import SynthConfig
    from vdes_tune.phantom.dataset import write_dataset

    start = time.perf_counter()
    raw = work / "raw"
    if not (raw / "synthetic_truth.csv").is_file():
        typer.echo(f"[demo] synthesising {patients} patients into {raw}", err=True)
        write_dataset(SynthConfig(patients=patients, size="small", seed=seed, quirks=True), raw)
    result = _run("smoke", raw, work, address, as_json=False)
    _finish(result)
    typer.echo(f"demo finished in {time.perf_counter() - start:.0f} s")
