"""Recorded learning curves: a tabular benchmark of a search space (every point x seed x epoch's validation
metrics), its ground truth from held-out seeds, and how stable that truth's top is.

A table is one Parquet file: a row per (point, seed, epoch) with the searched values as columns named by
their dotted keys (`train.lr`) and the validation metrics `val_f1`, `val_roc_auc`, `val_loss`,
`val_accuracy`, `val_macro_f1`; what made it (space, phantom, ingest, seeds, commit) sits in the file's
metadata under `vdes_tune`. Seeds are split once, when recording, into `search_seeds` (what replays
draw from) and `truth_seeds` (held out: only the truth reads them), so choosing and judging never use
the same runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vdes_tune.errors import BadInputError

META_KEY = b"vdes_tune"
TABLE_FORMAT = 1
METRICS = ("val_f1", "val_roc_auc", "val_loss", "val_accuracy", "val_macro_f1")
# The epoch a run keeps is chosen as the training loop chooses it (engine.selection_key): validation F1,
# ties broken on ROC-AUC, then on loss.
SELECTION = (("val_f1", "max"), ("val_roc_auc", "max"), ("val_loss", "min"))
REQUIRED = ("point", "seed", "epoch", *METRICS)


@dataclass(frozen=True)
class CurveTable:
    """A recorded table and what made it."""

    path: str
    frame: pd.DataFrame
    meta: dict[str, Any]
    params: tuple[str, ...]
    search_seeds: tuple[int, ...]
    truth_seeds: tuple[int, ...]
    epochs: int
    points: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)  # point id -> searched values

    def point_of(self, values: dict[str, Any]) -> int:
        """The point id of a configuration's searched values (exact match on every searched key; floats to 12
        significant digits, as the race keys points)."""
        found = self._ids.get(_values_key(values, self.params))
        if found is None:
            raise BadInputError(f"{self.path}: no recorded point with {values}")
        return found

    def values_of(self, point: int) -> dict[str, Any]:
        """The searched values of a point id, as Python scalars."""
        return {k: _scalar(v) for k, v in self.points.loc[point, list(self.params)].items()}

    def curve(self, point: int, seed: int) -> list[dict[str, float]]:
        """The per-epoch validation metrics of (point, seed), epoch 1 first, as the training loop reports them
        (`f1`, `roc_auc`, `loss`, `accuracy`, `macro_f1`)."""
        rows = self._cached("_runs", self._curves).get((point, seed))
        if rows is None:
            raise BadInputError(f"{self.path}: no curve recorded for point {point}, seed {seed}")
        return rows

    def _curves(self) -> dict[tuple[int, int], list[dict[str, float]]]:
        frame = self.frame.sort_values(["point", "seed", "epoch"])
        names = [m.removeprefix("val_") for m in METRICS]
        values = frame[list(METRICS)].to_numpy(dtype=float).tolist()
        out: dict[tuple[int, int], list[dict[str, float]]] = {}
        for p, s, row in zip(frame["point"].tolist(), frame["seed"].tolist(), values):
            out.setdefault((int(p), int(s)), []).append(dict(zip(names, row)))
        return out

    @property
    def _ids(self) -> dict[tuple, int]:
        return self._cached("_point_ids", lambda: {
            _values_key(self.values_of(int(i)), self.params): int(i) for i in self.points.index})

    def _cached(self, name: str, make: Any) -> Any:
        cache = self.__dict__.get(name)
        if cache is None:
            cache = make()
            object.__setattr__(self, name, cache)
        return cache


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _values_key(values: dict[str, Any], params: tuple[str, ...]) -> tuple:
    return tuple(float(f"{float(values[k]):.12g}") if isinstance(_scalar(values[k]), float) else _scalar(values[k])
                 for k in params)


def best_epoch_rows(frame: pd.DataFrame, upto: int | None = None) -> pd.DataFrame:
    """For each (point, seed), the row of the epoch the training loop would keep (within the first `upto`)."""
    rows = frame if upto is None else frame[frame["epoch"] <= upto]
    keys = [rows[m].fillna(-math.inf if mode == "max" else math.inf) * (1 if mode == "max" else -1)
            for m, mode in SELECTION]
    ranked = rows.assign(_k0=keys[0], _k1=keys[1], _k2=keys[2], _neg_epoch=-rows["epoch"])
    # Highest key first; among equal keys the earliest epoch (the loop only replaces on a strict improvement).
    ranked = ranked.sort_values(["point", "seed", "_k0", "_k1", "_k2", "_neg_epoch"],
                                ascending=[True, True, False, False, False, False])
    return ranked.groupby(["point", "seed"], sort=True).head(1).drop(
        columns=["_k0", "_k1", "_k2", "_neg_epoch"]).reset_index(drop=True)


def score_matrix(table: CurveTable, seeds: tuple[int, ...], metric: str = "val_f1") -> pd.DataFrame:
    """Point x seed matrix of each run's best-validation-epoch `metric`."""
    rows = best_epoch_rows(table.frame[table.frame["seed"].isin(seeds)])
    return rows.pivot(index="point", columns="seed", values=metric).reindex(columns=list(seeds))


def truth(table: CurveTable, metric: str = "val_f1") -> pd.DataFrame:
    """Each point's true value: the mean over the held-out truth seeds of the best-validation-epoch metric,
    with its standard error; sorted best first."""
    scores = score_matrix(table, table.truth_seeds, metric)
    out = table.points.copy()
    out["true_mean"] = scores.mean(axis=1)
    out["true_sd"] = scores.std(axis=1, ddof=1)
    out["true_se"] = out["true_sd"] / math.sqrt(scores.shape[1])
    out["search_mean"] = score_matrix(table, table.search_seeds, metric).mean(axis=1)
    return out.sort_values("true_mean", ascending=False)


def truth_draws(table: CurveTable, metric: str = "val_f1", draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Bootstrap draws of the truth: each row, every point's mean over a resample (with replacement) of the
    truth seeds; what the truth could have been with other held-out seeds."""
    scores = score_matrix(table, table.truth_seeds, metric)
    rng = np.random.default_rng(seed)
    n = scores.shape[1]
    picks = rng.integers(0, n, size=(draws, n))
    return pd.DataFrame(scores.to_numpy()[:, picks].mean(axis=2).T, columns=scores.index)


def top_stability(table: CurveTable, metric: str = "val_f1", draws: int = 2000, seed: int = 0,
                  tolerance: float = 0.02) -> dict[str, Any]:
    """How stable the truth's top is: bootstrap the truth seeds (with replacement) and count how often each
    point is best, and how often the truth's best stays within `tolerance` of the bootstrap's best."""
    means = truth_draws(table, metric, draws, seed)
    true_best = int(truth(table, metric).index[0])
    best = means.idxmax(axis=1)
    share = best.value_counts() / draws
    close = float((means[true_best] >= means.max(axis=1) - tolerance).mean())
    return {"draws": draws, "best_point": true_best, "p_same_best": float(share.get(true_best, 0.0)),
            "p_best_within_tolerance": close, "tolerance": tolerance,
            "p_best": {int(p): float(v) for p, v in share.sort_index().items()}}


def write_table(frame: pd.DataFrame, meta: dict[str, Any], path: Path) -> None:
    """Write a table (compressed Parquet, metadata under `vdes_tune`) through a temporary file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vdes_tune.workspace import temp_path

    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           META_KEY: json.dumps({"format": TABLE_FORMAT, **meta}).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    pq.write_table(arrow, tmp, compression="zstd")
    tmp.replace(path)


def read_table(path: str | Path) -> CurveTable:
    """Read and check a recorded table; errors name the file and what is wrong."""
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read a curve table: {exc}") from exc
    raw = (arrow.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise BadInputError(f"{path}: not a curve table (no '{META_KEY.decode()}' metadata; see "
                            f"`benchmarks/curves.py record`)")
    meta = json.loads(raw)
    if meta.get("format") != TABLE_FORMAT:
        raise BadInputError(f"{path}: curve table format {meta.get('format')!r}, expected {TABLE_FORMAT}")
    frame = arrow.to_pandas()
    missing = [c for c in REQUIRED if c not in frame.columns]
    params = tuple(meta.get("params") or ())
    missing += [p for p in params if p not in frame.columns]
    if missing:
        raise BadInputError(f"{path}: missing column(s) {missing}")
    search, held = tuple(meta["search_seeds"]), tuple(meta["truth_seeds"])
    if set(search) & set(held) or not search or not held:
        raise BadInputError(f"{path}: search_seeds {list(search)} and truth_seeds {list(held)} must be non-empty "
                            f"and disjoint")
    epochs = int(meta["epochs"])
    counts = frame.groupby(["point", "seed"]).size()
    expected = pd.MultiIndex.from_product([sorted(frame["point"].unique()), [*search, *held]])
    short = [k for k in expected if counts.get(k, 0) != epochs]
    if short:
        raise BadInputError(f"{path}: {len(short)} run(s) lack some of the {epochs} epochs (first: point "
                            f"{short[0][0]}, seed {short[0][1]})")
    points = frame.drop_duplicates("point").set_index("point").sort_index()[list(params)]
    return CurveTable(str(path), frame, meta, params, search, held, epochs, points)
