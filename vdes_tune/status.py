"""`vdes-tune status`: the state of every stage output of a workspace, read from manifests (search
experiments from their Tune state), and the debris (temporary folders of killed runs) lying there."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vdes_tune.workspace import (SCHEMA_VERSION, Workspace, describe, eval_folders, find_debris_in,
                                 has_output_index, read_manifest, repair_command, verify_outputs)

DONE, STALE, MISSING, CORRUPT, INCOMPLETE = "done", "stale", "missing", "corrupt", "incomplete"


@dataclass
class StageState:
    """One stage instance (dataset, generators/<name>, ...): its state, why, and the command that repairs it."""

    stage: str
    path: str
    state: str
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    repair: str = ""


def _dataset_inputs(manifest: dict[str, Any] | None) -> dict[str, str] | None:
    """What later stages record as their dataset input (see workspace.dataset_fingerprint)."""
    if not manifest or not manifest.get("complete"):
        return None
    return {"dataset_config_hash": manifest.get("config_hash"), "dataset_inputs_hash": manifest.get("inputs_hash")}


def _judge(stage: str, folder: Path, full: bool, dataset: dict[str, str] | None,
           stale_reason: str = "") -> StageState:
    """State of one stage folder from its manifest: missing, incomplete, stale, corrupt or done."""
    state = StageState(stage, str(folder), DONE, repair=repair_command(folder / "manifest.json", folder_root(folder)))
    found = read_manifest(folder)
    if not found:
        state.state, state.detail = MISSING, "no manifest.json (never finished)"
        return state
    if not found.get("complete"):
        state.state, state.detail = INCOMPLETE, "the manifest says the stage did not finish"
        return state
    if found.get("schema_version") != SCHEMA_VERSION:
        state.state = STALE
        state.detail = f"written by schema version {found.get('schema_version')}, this is {SCHEMA_VERSION}"
        return state
    # Stages that read the dataset record its fingerprint among their inputs: another ingest makes them stale.
    inputs = found.get("inputs") or {}
    if dataset and "dataset_inputs_hash" in inputs and any(inputs.get(k) != v for k, v in dataset.items()):
        state.state, state.detail = STALE, "made from an earlier ingest of the dataset"
        return state
    if stale_reason:
        state.state, state.detail = STALE, stale_reason
        return state
    problems = verify_outputs(folder, full)
    if problems:
        state.state, state.problems = CORRUPT, [str(p) for p in problems]
        state.detail = describe(problems)
        return state
    if not has_output_index(folder):
        state.detail = "unverified: the manifest predates the outputs index (--force rebuilds it with one)"
    else:
        state.detail = "files verified (size and sha256)" if full else "files present with their sizes"
    state.repair = ""
    return state


def folder_root(folder: Path) -> Path:
    """The workspace root above a stage folder (dataset/ is one level down, the others two)."""
    return folder.parent if folder.name == "dataset" else folder.parent.parent


def _short_sha(path: Path) -> str | None:
    """The 16-hex sha256 prefix stages record of an input file; None when absent."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def _vdes_stale(workspace: Workspace, folder: Path) -> str:
    """Why a virtual DES set no longer matches its generator, or ''."""
    found = read_manifest(folder) or {}
    name = str(found.get("name", folder.name))
    made = read_manifest(workspace.generator(name)) or {}
    inputs = found.get("inputs") or {}
    if made and inputs.get("generator_config_hash") not in (None, made.get("config_hash")):
        return f"generator '{name}' was retrained with another config"
    weights = _short_sha(workspace.generator(name) / "generator.pt")
    if weights and inputs.get("generator_weights") not in (None, weights):
        return f"generator '{name}' has other weights than the ones synthesised"
    return ""


def _report_stale(workspace: Workspace, folder: Path) -> str:
    """Why a report no longer matches its evaluation's results, or ''."""
    found = read_manifest(folder) or {}
    results = _short_sha(workspace.evaluation(folder.name) / "results.parquet")
    recorded = (found.get("inputs") or {}).get("results_sha256")
    return "eval results changed since the report was written" if results and recorded not in (None, results) else ""


def _children(parent: Path) -> list[Path]:
    """Stage folders under generators/, vdes/, eval/ or report/ (not the hidden temporaries)."""
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")) if parent.is_dir() else []


def _search_state(workspace: Workspace, name: str, dataset: dict[str, str] | None) -> StageState:
    """State of the search experiment search/<name>: done when every trial finished on the current dataset."""
    from vdes_tune.errors import BadInputError
    from vdes_tune.search.export import load_experiment, progress

    path = workspace.location(workspace.root / "search" / name)
    state = StageState("search", path, DONE)
    try:
        experiment = load_experiment(path)
    except (BadInputError, ValueError) as exc:  # ValueError: a sidecar that is not JSON
        state.state, state.detail = CORRUPT, str(exc)
        state.repair = f"delete {path}, then vdes-tune search SPACE --work {workspace.spec} --name {name}"
        return state
    resume = f"vdes-tune search {experiment.sidecar.get('space_path') or name} --work {workspace.spec} --name {name}"
    if dataset and experiment.sidecar.get("dataset") != dataset:
        # A restore refuses another dataset: the experiment has to start over.
        state.state, state.detail = STALE, "made from an earlier ingest of the dataset"
        state.repair = f"delete {path}, then {resume}"
        return state
    done, state.detail = progress(experiment)
    if not done:
        state.state, state.repair = INCOMPLETE, f"{resume} (resumes it)"
    return state


def _search_names(workspace: Workspace) -> list[str]:
    """Experiments under <workspace>/search (folders with our sidecar), local or in the workspace URI."""
    from vdes_tune.remote import list_files
    from vdes_tune.search.storage import SIDECAR

    if not workspace.uri:
        folder = workspace.root / "search"
        return [p.name for p in _children(folder) if (p / SIDECAR).is_file()]
    try:
        files = list_files(workspace.location(workspace.root / "search"))
    except OSError:
        return []
    return sorted({f.split("/")[0] for f in files if f.count("/") == 1 and f.endswith(f"/{SIDECAR}")})


def workspace_status(work: str | Path, full: bool = False) -> dict[str, Any]:
    """Every stage instance of the workspace with its state and repair, plus the debris found."""
    workspace = Workspace.at(work)
    root = workspace.root
    for sub in ("dataset", "generators", "vdes", "eval", "report"):
        workspace.pull(root / sub)  # a URI workspace: the mirror is what gets checked
    data = workspace.dataset.root
    dataset_manifest = read_manifest(data)
    dataset = _dataset_inputs(dataset_manifest)
    stages = [_judge("ingest", data, full, None)]
    if stages[0].state in (MISSING, INCOMPLETE):
        stages[0].repair = f"vdes-tune ingest --data RAW --work {root}"
    for folder in _children(root / "generators"):
        stages.append(_judge("generators.train", folder, full, dataset))
    for folder in _children(root / "vdes"):
        stages.append(_judge("generators.synthesize", folder, full, dataset, _vdes_stale(workspace, folder)))
    referenced: set[str] = set()
    for folder in _children(root / "eval"):
        stages.append(_judge("evaluate", folder, full, dataset))
        plan = folder / "plan.json"
        if plan.is_file():
            referenced |= set(json.loads(plan.read_text()).get("vdes", {}).values())
    for name in sorted(referenced - {p.name for p in _children(root / "vdes")}):
        stages.append(StageState("generators.synthesize", str(workspace.vdes(name)), MISSING,
                                 "an evaluation uses it, but it is not there",
                                 repair=f"vdes-tune generators synthesize {name} --work {root}"))
    for name in _search_names(workspace):
        stages.append(_search_state(workspace, name, dataset))
    for folder in _children(root / "report"):
        if not folder.name.startswith("search-"):  # search reports have no eval/<run> behind them
            stages.append(_judge("report", folder, full, None, _report_stale(workspace, folder)))
    runs = [f for run in _children(root / "eval") for f in eval_folders(run)]
    debris = [d for sub in (root, root / "generators", root / "vdes", root / "eval", root / "report", *runs)
              for d in find_debris_in(sub)]
    return {"work": workspace.spec, "verified": full, "ok": all(s.state == DONE for s in stages),
            "stages": [asdict(s) for s in stages],
            "debris": [{"path": str(d.path), "safe_to_sweep": d.safe, "why": d.why} for d in debris]}

