"""Ray Data side of ingest: run pairs through `process_pair` in parallel and write Parquet shards."""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Iterator

import numpy as np
import pandas as pd
import ray
from ray.data.datasource import FilenameProvider
from ray.data.expressions import col

from vdes_tune.config import SPLITS, IngestConfig, from_dict, to_dict
from vdes_tune.data.pairs import PairResult, process_pair
from vdes_tune.remote import join, list_files

IMAGE_COLUMNS = ("le", "led", "des")
SYNTH_ATTEMPTS = 3  # passes of synthesize before an actor that keeps dying fails it
# Ray 2.60's Parquet reader reads footers on a pool of actors, 32 by default: one Python worker each, which
# on a small cluster took 45 of synthesize's 57 s (two 1-CPU workers start one process at a time). Our
# shards are a few files per split, which one actor lists in well under a second.
FOOTER_ACTORS_ENV, FOOTER_ACTORS = "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "2"
# lesion: the crop's annotated lesion region (0/1 uint8, all 0 on normal crops), for lesion-aware image quality.
SHARD_COLUMNS = ("crop_id", "pair_id", "patient_id", "label", "source", "height", "width", *IMAGE_COLUMNS, "lesion")
# Every output row has every column with a typed default, so blocks always share one Arrow schema.
_ROW_DEFAULTS: dict[str, Any] = {
    "kind": "", "pair_id": "", "file": "", "reason": "", "overlay_png": b"",
    "tx": 0, "ty": 0, "mi": np.nan, "mi_at_zero": np.nan, "at_search_boundary": False, "evaluations": 0,
    "le_height": 0, "le_width": 0, "des_height": 0, "des_width": 0, "seconds": np.nan,
    "crop_id": "", "patient_id": 0, "label": -1, "pathology": "", "source": "", "region_line": -1,
    "centre_x": np.nan, "centre_y": np.nan, "origin_x": 0, "origin_y": 0, "tissue_fraction": np.nan,
    "height": 0, "width": 0, "lesion_fraction": np.nan, "le": b"", "led": b"", "des": b"", "lesion": b"",
}


def _rows(result: PairResult) -> list[dict[str, Any]]:
    rows = []
    if result.registration:
        rows.append({**_ROW_DEFAULTS, **result.registration, "kind": "registration",
                     "overlay_png": result.overlay_png})
    if result.error:
        rows.append({**_ROW_DEFAULTS, "kind": result.error_kind, "pair_id": result.pair_id,
                     "file": result.error_file, "reason": result.error})
    for file, reason in result.notes:
        rows.append({**_ROW_DEFAULTS, "kind": "note", "pair_id": result.pair_id, "file": file, "reason": reason})
    rows += [{**_ROW_DEFAULTS, **crop, "kind": "crop"} for crop in result.crops]
    return rows


def _process_batch(batch: pd.DataFrame, pairs: pd.DataFrame, cfg: dict[str, Any],
                   overlay_ids: frozenset[str]) -> pd.DataFrame:
    import cv2

    cv2.setNumThreads(1)  # one Ray CPU per task; OpenCV's own threads would oversubscribe it
    config = from_dict(IngestConfig, cfg)
    rows: list[dict[str, Any]] = []
    for row in pairs.iloc[batch["id"].to_numpy()].to_dict("records"):
        rows += _rows(process_pair(row, config, row["pair_id"] in overlay_ids))
    return pd.DataFrame(rows, columns=list(_ROW_DEFAULTS))


def process_pairs(pairs: pd.DataFrame, cfg: IngestConfig, overlay_ids: set[str]) -> ray.data.Dataset:
    """Materialised dataset of registration, error, note and crop rows for every catalog pair."""
    batch = 2
    # Blocks of two pair positions spread the work over every CPU. Made here, not with from_pandas: that
    # runs a task per frame before the dataset starts, and Ray Data then sees every CPU still taken and
    # warns the job "will hang". (Ray's own override_num_blocks split of a frame breaks on pandas 3.)
    ds = ray.data.from_items([{"id": i} for i in range(len(pairs))],
                             override_num_blocks=max(1, math.ceil(len(pairs) / batch)))
    ds = ds.map_batches(_process_batch, batch_format="pandas", batch_size=batch,
                        fn_kwargs={"pairs": pairs.reset_index(drop=True), "cfg": to_dict(cfg),
                                   "overlay_ids": frozenset(overlay_ids)})
    return ds.materialize()


@contextlib.contextmanager
def ordered_execution() -> Iterator[None]:
    """Ray Data keeps block order inside the block (deterministic shards), restored afterwards."""
    options = ray.data.DataContext.get_current().execution_options
    before = options.preserve_order
    options.preserve_order = True
    try:
        yield
    finally:
        options.preserve_order = before


@contextlib.contextmanager
def footer_actors() -> Iterator[None]:
    """Ray Data's Parquet footer pool at FOOTER_ACTORS while a read is planned, unless the user set its size."""
    if FOOTER_ACTORS_ENV in os.environ:
        yield
        return
    os.environ[FOOTER_ACTORS_ENV] = FOOTER_ACTORS
    try:
        yield
    finally:
        os.environ.pop(FOOTER_ACTORS_ENV, None)


def metadata(ds: ray.data.Dataset) -> pd.DataFrame:
    """Every row of `process_pairs` output without the pixel columns, as pandas."""
    return ds.drop_columns([*IMAGE_COLUMNS, "lesion"]).to_pandas()


class _PartNames(FilenameProvider):
    """`part-00000.parquet`, numbered by write task, instead of Ray's UUID names."""

    def __init__(self) -> None:
        super().__init__(file_format="parquet")

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"part-{task_index:05d}.parquet"


def _with_split(batch: pd.DataFrame, split_of: dict[str, str]) -> pd.DataFrame:
    return batch.assign(split=batch["crop_id"].map(split_of)).sort_values("crop_id")


def write_shards(ds: ray.data.Dataset, split_of: dict[str, str], out: str, rows_per_shard: int) -> dict[str, int]:
    """Write crop rows as `out/split=<name>/part-*.parquet` (a path or URI every node reaches); returns the
    number of files per split."""
    crops = (ds.filter(expr=col("kind") == "crop").select_columns(list(SHARD_COLUMNS))
             .map_batches(_with_split, batch_format="pandas", fn_kwargs={"split_of": split_of})
             .materialize())
    files = {}
    for split in SPLITS:
        rows = sum(1 for s in split_of.values() if s == split)
        if not rows:
            continue
        target = join(out, f"split={split}")
        # Under ordered_execution rows land in catalog order, sorted within each block.
        (crops.filter(expr=col("split") == split).drop_columns(["split"])
         .repartition(max(1, math.ceil(rows / rows_per_shard)))
         .write_parquet(target, filename_provider=_PartNames(), compression="zstd", mode="overwrite"))
        files[split] = sum(name.endswith(".parquet") for name in list_files(target))
    return files



def synthesize(shards: str, out: str, synthesizer: type, constructor_kwargs: dict[str, Any], batch_size: int,
               actors: int, num_gpus: float, rows_per_shard: int) -> dict[str, int]:
    """Run every split's LE crops through one pool of `synthesizer` actors; write `out/split=<name>/part-*`
    (`shards` and `out` are paths or URIs every node reaches)."""
    # `split` comes from the hive folder name; the selection is pushed down into the Parquet read.
    with footer_actors():
        ds = ray.data.read_parquet(shards).select_columns(["crop_id", "height", "width", "le", "split"])
    per_actor = {"num_gpus": num_gpus} if num_gpus else {"num_cpus": 1}
    # Ray Data hands its actors their code and context as object-store refs, so a pool whose actors Ray
    # restarts (its default) makes Ray log an alarming error at start (ray-project/ray#57733). Ours are not
    # restarted: a pass whose actor died is run again whole instead (nothing is written until it ends).
    # Ray 2.60 has no named parameter for it; the deprecation notice of `**ray_remote_args` goes to the log.
    for attempt in range(1, SYNTH_ATTEMPTS + 1):
        try:
            made = ds.map_batches(synthesizer, batch_format="pandas", batch_size=batch_size,
                                  fn_constructor_kwargs=constructor_kwargs, max_restarts=0,
                                  compute=ray.data.ActorPoolStrategy(size=actors), **per_actor).materialize()
            break
        except ray.exceptions.RayActorError:
            if attempt == SYNTH_ATTEMPTS:
                raise
    rows = {}
    for split in SPLITS:
        part = made.filter(expr=col("split") == split).drop_columns(["split"])
        rows[split] = part.count()
        if rows[split]:
            (part.repartition(max(1, math.ceil(rows[split] / rows_per_shard)))
             .write_parquet(join(out, f"split={split}"), filename_provider=_PartNames(), compression="zstd",
                            mode="overwrite"))
    return {k: v for k, v in rows.items() if v}
