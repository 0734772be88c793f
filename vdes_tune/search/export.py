"""Read a finished (or interrupted) search back: the leaderboard, and the best configuration per
architecture as `best/<experiment>.yaml`, the file `vdes-tune evaluate` reads."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from vdes_tune import __version__
from vdes_tune.config import TrainConfig, from_dict, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.search.race import DROPPED, evidence, point_id, read_race_log, seed_scores
from vdes_tune.search.space import ARCH_KEY, SearchSpace, parse_space
from vdes_tune.search.storage import SIDECAR, experiment_path, is_uri, read_text, write_text
from vdes_tune.workspace import Workspace

BEST_FORMAT = 1
# Validation only: a search never reads the test split; test metrics come from the final evaluation.
METRIC_COLUMNS = ("val_f1", "val_accuracy", "val_roc_auc", "val_macro_f1", "val_loss")


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the experiment on disk knows it."""

    trial_id: str
    status: str
    config: dict[str, Any]
    last_result: dict[str, Any]


@dataclass(frozen=True)
class Experiment:
    """A search experiment: where it is, what made it, and its trials."""

    path: str
    sidecar: dict[str, Any]
    space: SearchSpace
    trials: list[TrialRecord]
    race: dict[str, Any] | None = None  # the race's record (race/race.json) when it raced seeds


def result_rows(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a trial's result.json: Tune appends while others read, so a last line without its
    newline is half-written and left for the next read."""
    if not path.is_file():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line.strip()]


def load_experiment(path: str) -> Experiment:
    """Trials and provenance of the experiment at `path` (local folder or URI)."""
    from ray.tune import ExperimentAnalysis

    found = read_text(f"{path.rstrip('/')}/{SIDECAR}")
    if found is None:
        raise BadInputError(f"{path}: not a vdes-tune search experiment (no {SIDECAR}); run `vdes-tune search`")
    sidecar = json.loads(found)
    space = parse_space(sidecar["space"], sidecar.get("space_path", path), name=sidecar["experiment"])
    try:
        analysis = ExperimentAnalysis(path)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise BadInputError(f"{path}: cannot read the Tune experiment: {exc}") from exc
    trials = [TrialRecord(t.trial_id, t.status, dict(t.config), dict(t.last_result or {})) for t in analysis.trials]
    return Experiment(path, sidecar, space, trials, read_race_log(path))


def progress(exp: Experiment) -> tuple[bool, str]:
    """Whether the search is over, and how far it got: every trial finished and, for a race, the race decided
    (a race killed between rounds has only finished trials, yet more seeds to train)."""
    finished = sum(t.status == "TERMINATED" for t in exp.trials)
    errored = sum(t.status == "ERROR" for t in exp.trials)
    detail = f"{finished} of {max(exp.space.size, len(exp.trials))} trials finished" + (
        f", {errored} errored" if errored else "")
    if finished < max(exp.space.size, len(exp.trials)):
        return False, detail
    if exp.space.strategy.races:
        racing = [p for p in (exp.race or {}).get("points", {}).values() if p.get("status") == "racing"]
        if exp.race is None or not exp.race.get("over"):
            return False, f"{finished} trials finished, the seed race not decided ({len(racing)} points racing)"
    return True, f"{finished} trials finished"


def leaderboard(exp: Experiment) -> pd.DataFrame:
    """One row per point, best first: the points a choice may come from (finished, feasible, not ruled out by a
    race) by seeds trained (when racing) and the objective, then the rest. A point's trials (its first seeds,
    then each seed a race added; or a point a searcher proposed twice) are merged: its objective is the mean of
    its seeds' scores, its cost the sum of their seed-epochs; the other metrics are its first trial's.
    `trial_id` is the point's first trial."""
    import statistics

    space = exp.space
    decided = (exp.race or {}).get("points", {})
    groups: dict[str, list[TrialRecord]] = {}
    for t in exp.trials:
        groups.setdefault(point_id(t.config), []).append(t)
    rows = []
    for key, trials in groups.items():
        # Its first trial that finished a seed (a block a rung stopped and a guard reprieved comes first).
        first = next((t for t in trials if seed_scores(t.last_result)), trials[0])
        r = first.last_result
        scores: dict[str, float] = {}
        for t in trials:
            scores.update(seed_scores(t.last_result))
        values = [v for v in scores.values() if v == v]
        unfinished = [t.status for t in trials if t.status != "TERMINATED"]
        row: dict[str, Any] = {"trial_id": first.trial_id, "trials": len(trials),
                               "status": unfinished[0] if unfinished else "TERMINATED",
                               "feasible": int(r.get("feasible", 1)) if r else -1}
        if len(space.arch) == 1:
            row[ARCH_KEY] = space.arch[0]
        row.update({k: v for k, v in first.config.items() if not k.startswith("_")})
        row[space.metric] = statistics.fmean(values) if values else r.get(space.metric, float("nan"))
        row[f"{space.metric}_std"] = (statistics.pstdev(values) if len(values) > 1 else 0.0) if values else r.get(
            f"{space.metric}_std", float("nan"))
        row.update({c: r.get(c, float("nan")) for c in METRIC_COLUMNS if c != space.metric})
        outcome = decided.get(key, {})
        row.update({"seeds": len(scores), "seed_scores": json.dumps(scores),
                    "seed_epochs": sum(int(t.last_result.get("seed_epochs", 0) or 0) for t in trials),
                    "race": outcome.get("status", ""), "race_why": outcome.get("why", ""),
                    "epochs": max(t.last_result.get("epoch", 0) for t in trials),
                    "best_epoch_mean": r.get("best_epoch_mean", float("nan")),
                    "memory_estimate_gb": r.get("memory_estimate_gb", float("nan")),
                    "gpu_fraction": r.get("gpu_fraction", float("nan")), "oom": int(r.get("oom", 0)),
                    "seconds": sum(t.last_result.get("time_total_s", 0.0) for t in trials),
                    "node_id": r.get("node_id", "")})
        rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    good = (board["status"] == "TERMINATED") & (board["feasible"] == 1) & ~board["race"].isin(DROPPED)
    board["_group"] = (~good).astype(int)
    # A race's survivors are compared at equal seeds: more seeds first, then the objective. F1 on a small
    # validation set ties often; ties are broken as the training loop breaks them between epochs (ROC-AUC,
    # then loss), then by the order the points were tried, never by Tune's random trial ids.
    board["_seeds"] = -board["seeds"] if exp.race is not None else 0
    board["_order"] = range(len(board))
    board = board.sort_values(["_group", "_seeds", space.metric, "val_roc_auc", "val_loss", "_order"],
                              ascending=[True, True, space.mode == "min", False, True, True], na_position="last")
    board = board.drop(columns=["_group", "_seeds", "_order"]).reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board


def eligible(board: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The leaderboard rows a choice may come from (finished, feasible, not dropped, with a value)."""
    return board[(board["status"] == "TERMINATED") & (board["feasible"] == 1) & ~board["race"].isin(DROPPED)
                 & board[metric].notna()]


def runner_up_evidence(board: pd.DataFrame, best: pd.Series, space: SearchSpace, arch: int) -> dict[str, Any]:
    """How sure the choice is: the paired comparison of the chosen point with the runner-up (the next choice
    of the same architecture, else its best other trial with seeds in common) over their shared seeds: the
    mean difference (choice minus runner-up, positive = the choice is better), its 95% t interval and the
    one-sided Wilcoxon p that the choice is not better."""
    scores = json.loads(best["seed_scores"])
    same = board[(board[ARCH_KEY] == arch) & (board["trial_id"] != best["trial_id"]) & (board["feasible"] == 1)]
    for rows in (eligible(same, space.metric), same):
        for _, other in rows.iterrows():
            theirs = json.loads(other["seed_scores"])
            if not set(theirs) & set(scores):
                continue
            # The runner-up as the challenger: its p of being worse is the p that the choice is not better.
            found = evidence(theirs, scores, space.mode, "wilcoxon")
            ci = found["diff_ci95"]
            low, high = (None, None) if ci[0] is None else (-ci[1], -ci[0])
            return {"runner_up": {k: _plain(other[k]) for k in space.searched if k in other},
                    "runner_up_trial": other["trial_id"], "shared_seeds": found["n"], "mean_diff": -found["mean_diff"],
                    "diff_ci95": [low, high], "p_not_better": found["p_worse"], "verdict": _verdict(found["n"], low)}
    rest = same.sort_values(space.metric, ascending=space.mode == "min", na_position="last")
    if len(rest) and rest.iloc[0]["race_why"]:  # ruled out before finishing a seed: the race's own evidence
        other = rest.iloc[0]
        return {"runner_up": {k: _plain(other[k]) for k in space.searched if k in other},
                "runner_up_trial": other["trial_id"], "shared_seeds": 0,
                "verdict": f"the runner-up shares no finished seed with the choice; it was {other['race']}: "
                           f"{other['race_why']}"}
    return {"runner_up": None, "verdict": "no other point shares a seed with the choice: nothing to compare"}


def _verdict(n: int, low: float | None) -> str:
    if n < 2 or low is None:
        return f"{n} shared seed(s): too few to say how sure the choice is"
    if low > 0:
        return f"better than the runner-up over {n} shared seeds (95% interval above 0)"
    return f"not shown better than the runner-up over {n} shared seeds (95% interval includes 0)"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def best_per_architecture(exp: Experiment, board: pd.DataFrame) -> dict[int, dict[str, Any]]:
    """For each architecture, the first eligible trial of the leaderboard: its full TrainConfig, its objective
    with its uncertainty (mean, std, seeds and their scores) and the paired evidence against the runner-up."""
    space = exp.space
    out: dict[int, dict[str, Any]] = {}
    by_id = {t.trial_id: t for t in exp.trials}
    for _, row in eligible(board, space.metric).iterrows():
        arch = int(row[ARCH_KEY])
        if arch in out:
            continue  # the board is sorted best first
        point = {k: v for k, v in by_id[row["trial_id"]].config.items() if not k.startswith("_")}
        cfg = space.train_config(point)
        scores = json.loads(row["seed_scores"])
        seeds = [int(s) for s in scores] or space.seeds(point)[:max(int(row["seeds"]), 1)]
        out[arch] = {
            "config": to_dict(cfg), "searched": point, "trial_id": row["trial_id"],
            "objective": {space.metric: float(row[space.metric]), f"{space.metric}_std": float(row[f"{space.metric}_std"]),
                          "repeats": len(seeds), "seeds": seeds, "seed_scores": {int(k): v for k, v in scores.items()},
                          "epochs": int(row["epochs"]), "seed_epochs": int(row["seed_epochs"])},
            "versus_runner_up": runner_up_evidence(board, row, space, arch),
        }
    return out


def front_of(exp: Experiment, board: pd.DataFrame) -> dict[str, Any] | None:
    """What more GPU memory buys (`memory_front`), over the points that finished a seed, when the space varies
    the memory; None otherwise. Memory is each trial's estimate at the crops it trained on."""
    from vdes_tune.search.memory_front import memory_front, varies_memory

    if board.empty or "memory_estimate_gb" not in board:
        return None
    rows = board[(board["feasible"] == 1) & (board["seeds"] > 0)]
    if not varies_memory(rows["memory_estimate_gb"].astype(float).tolist()):
        return None
    points = [{"values": {k: _plain(r[k]) for k in exp.space.searched if k in r},
               "memory_gb": float(r["memory_estimate_gb"]),
               "scores": {str(k): float(v) for k, v in json.loads(r["seed_scores"]).items()}}
              for _, r in rows.iterrows()]
    return memory_front(points, exp.space.mode)


def export(experiment: str, work: str | Path, storage: str = "") -> dict[str, Any]:
    """Write `best/<experiment>.yaml` and `best/<experiment>-leaderboard.csv`; returns what was written."""
    workspace = Workspace.at(work)
    storage = storage or workspace.location(workspace.root / "search")
    if not is_uri(storage):
        storage = str(Path(storage).expanduser().resolve())
    path = experiment_path(storage, experiment)
    exp = load_experiment(path)
    board = leaderboard(exp)
    best = best_per_architecture(exp, board)
    if not best:
        raise BadInputError(f"{path}: no finished feasible trial to export yet")
    space = exp.space
    counts = {"total": len(board), "finished": int((board["status"] == "TERMINATED").sum()),
              "infeasible": int((board["feasible"] == 0).sum()), "errored": int((board["status"] == "ERROR").sum())}
    doc = {
        "format": BEST_FORMAT, "experiment": exp.sidecar["experiment"], "metric": space.metric, "mode": space.mode,
        "architectures": best,
        "provenance": {
            "space": {"name": space.name, "path": space.path, "hash": space.content_hash(),
                      "strategy": space.strategy.describe(space.epochs), "algorithm": space.strategy.algorithm,
                      "scheduler": space.strategy.scheduler, "repeats": space.strategy.repeats},
            "cost_seed_epochs": int(board["seed_epochs"].sum()),
            "storage": path, "dataset": exp.sidecar.get("dataset"), "options": exp.sidecar.get("options"),
            "calibration": exp.sidecar.get("calibration"), "trials": counts,
            "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "vdes_tune": __version__,
        },
    }
    front = front_of(exp, board)
    if front is not None:
        doc["memory_front"] = front
    out_yaml = workspace.root / "best" / f"{exp.sidecar['experiment']}.yaml"
    out_csv = workspace.root / "best" / f"{exp.sidecar['experiment']}-leaderboard.csv"
    write_text(str(out_csv), board.to_csv(index=False))
    write_text(str(out_yaml), yaml.safe_dump(doc, sort_keys=False))
    workspace.push(out_csv)
    workspace.push(out_yaml)
    from vdes_tune.search.memory_front import front_lines

    return {"best": workspace.location(out_yaml), "leaderboard": workspace.location(out_csv),
            "architectures": sorted(best), **counts,
            "memory_front": front_lines(front, space.metric) if front else []}


@dataclass(frozen=True)
class BestEntry:
    """The best configuration of one architecture in a best-configuration file."""

    arch: int
    config: TrainConfig
    searched: dict[str, Any]
    objective: dict[str, Any]


@dataclass(frozen=True)
class BestFile:
    """A parsed `best/<experiment>.yaml`."""

    path: str
    experiment: str
    metric: str
    mode: str
    entries: dict[int, BestEntry]

    def top(self) -> BestEntry:
        """The entry with the best objective across architectures."""
        sign = 1.0 if self.mode == "max" else -1.0

        def score(e: BestEntry) -> tuple[float, int]:
            value = float(e.objective.get(self.metric, float("nan")))
            return (sign * value if value == value else float("-inf"), -e.arch)  # NaN ranks last

        return max(self.entries.values(), key=score)


def read_best_file(path: str | Path) -> BestFile:
    """Parse a `best/<experiment>.yaml`, naming the file and field on anything malformed."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read best configurations: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != BEST_FORMAT or not isinstance(doc.get("architectures"), dict):
        raise BadInputError(f"{path}: not a best-configuration file of format {BEST_FORMAT} (see `vdes-tune export`)")
    entries = {}
    for arch, entry in doc["architectures"].items():
        try:
            searched = entry.get("searched") or {}
            if not isinstance(searched, dict):
                raise TypeError("searched must be a mapping")
            entries[int(arch)] = BestEntry(int(arch), from_dict(TrainConfig, entry["config"]), dict(searched),
                                           dict(entry.get("objective") or {}))
        except (AttributeError, KeyError, TypeError, ValueError, BadInputError) as exc:
            raise BadInputError(f"{path}: architectures.{arch}: {exc}") from exc
    if not entries:
        raise BadInputError(f"{path}: no architecture in the file")
    return BestFile(str(path), str(doc.get("experiment", Path(path).stem)), str(doc.get("metric", "val_f1")),
                    str(doc.get("mode", "max")), entries)


def read_best(path: Path) -> dict[int, TrainConfig]:
    """The best TrainConfig per architecture from a `best/<experiment>.yaml`."""
    return {a: e.config for a, e in read_best_file(path).entries.items()}
