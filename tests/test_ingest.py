"""The ingest stage end to end on synthetic data, checked against the generator's ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from vdes_tune.config import IngestConfig
from vdes_tune.data.cdd_cesm import DES_DIR, LE_DIR, parse_image_name
from vdes_tune.data.pairs import decode_image
from vdes_tune.errors import BadInputError
from vdes_tune.stages import ingest
from vdes_tune.workspace import Workspace

pytestmark = pytest.mark.ray


def _read(path: Path) -> np.ndarray:
    return cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_GRAYSCALE)


@pytest.fixture
def ingested(ingested_small_run):
    """The session's default ingest of the small dataset (read only) and its summary."""
    work, summary = ingested_small_run
    return Workspace.at(work), summary


def test_writes_every_artifact_with_a_complete_manifest(ingested, small_dataset: Path) -> None:
    work, summary = ingested
    d = work.dataset
    for path in (d.catalog, d.registration, d.crops, d.splits, d.rejected, d.config, d.manifest,
                 d.qa / "table1.csv", d.qa / "table1.md"):
        assert path.is_file(), path
    manifest = json.loads(d.manifest.read_text())
    assert manifest["complete"] and manifest["config"]["crop_size"] == 224 and manifest["seeds"]["split"] == 0
    assert manifest["rows"]["crops"] == summary.crops == len(pd.read_parquet(d.crops))
    truth = pd.read_csv(small_dataset / "synthetic_truth.csv")
    assert summary.pairs_found == truth["pair_id"].nunique()
    excluded = pd.read_csv(d.rejected)
    # The synthetic set has no bad input; only the label rule's BI-RADS 3 exclusions are set aside.
    assert set(excluded["kind"]) <= {"excluded"} and excluded["reason"].str.contains("BI-RADS 3").all()
    birads3 = truth[truth["birads"].astype(str).str.split("$").map(lambda b: max(map(int, b)) == 3)]
    assert set(excluded["item"]) == set(birads3["pair_id"])
    assert summary.pairs_ingested == summary.pairs_found - len(excluded)
    assert not list(work.root.glob(".dataset.*"))  # no temporary folder left behind


def test_registration_matches_truth(ingested, small_dataset: Path) -> None:
    work, _ = ingested
    truth = pd.read_csv(small_dataset / "synthetic_truth.csv").drop_duplicates("pair_id").set_index("pair_id")
    reg = pd.read_parquet(work.dataset.registration).set_index("pair_id")
    joined = reg.join(truth[["tx", "ty"]], rsuffix="_true")
    assert ((joined.tx == joined.tx_true) & (joined.ty == joined.ty_true)).mean() >= 0.97
    assert (reg["mi"] >= reg["mi_at_zero"]).all()
    flagged = (joined[["tx", "ty"]].abs().max(axis=1) == 10)
    assert (joined["at_search_boundary"] == flagged).all()
    overlays = {p.name for p in (work.dataset.qa).glob("overlay_*.png")}
    assert {f"overlay_{p}.png" for p in reg.index[reg["at_search_boundary"]]} <= overlays
    assert len(overlays) >= min(8, len(reg))


def test_shard_pixels_equal_the_raw_images_at_the_truth_shift(ingested, small_dataset: Path) -> None:
    work, _ = ingested
    shards = pd.read_parquet(work.dataset.shards)
    crops = pd.read_parquet(work.dataset.crops).set_index("crop_id")
    catalog = pd.read_parquet(work.dataset.catalog).set_index("pair_id")
    truth = pd.read_csv(small_dataset / "synthetic_truth.csv").drop_duplicates("pair_id").set_index("pair_id")
    reg = pd.read_parquet(work.dataset.registration).set_index("pair_id")
    checked = 0
    for row in shards.itertuples():
        c = crops.loc[row.crop_id]
        le = _read(small_dataset / catalog.loc[row.pair_id, "le_file"])
        des = _read(small_dataset / catalog.loc[row.pair_id, "des_file"])
        y0, x0, s = int(c.origin_y), int(c.origin_x), int(c.height)
        np.testing.assert_array_equal(decode_image(row.le, s, s), le[y0:y0 + s, x0:x0 + s])
        led = cv2.fastNlMeansDenoising(le, None, h=10, templateWindowSize=7, searchWindowSize=21)
        np.testing.assert_array_equal(decode_image(row.led, s, s), led[y0:y0 + s, x0:x0 + s])
        t = truth.loc[row.pair_id]
        if (reg.loc[row.pair_id, "tx"], reg.loc[row.pair_id, "ty"]) == (t.tx, t.ty):
            want = des[y0 - t.ty:y0 - t.ty + s, x0 - t.tx:x0 - t.tx + s]
            np.testing.assert_array_equal(decode_image(row.des, s, s), want)
            checked += 1
        assert row.split == c.split and row.label == c.label
    assert checked >= 0.95 * len(shards)


def test_lesion_crops_sit_on_their_lesion_and_normal_crops_on_tissue(ingested, small_dataset: Path) -> None:
    work, _ = ingested
    crops = pd.read_parquet(work.dataset.crops)
    truth = pd.read_csv(small_dataset / "synthetic_truth.csv")
    lesions = truth.dropna(subset=["lesion_index"])
    s = 224
    for c in crops.itertuples():
        if c.source == "random":
            assert c.pathology == "Normal" and c.tissue_fraction >= 0.9
            continue
        mine = lesions[lesions.pair_id == c.pair_id]
        d = np.hypot(mine.cx - c.centre_x, mine.cy - c.centre_y)
        nearest = mine.iloc[int(np.argmin(d))]
        assert d.min() <= max(6.0, 0.5 * nearest.radius), (c.crop_id, d.min())
        assert c.origin_x <= nearest.cx < c.origin_x + s and c.origin_y <= nearest.cy < c.origin_y + s
    assert set(crops.source) >= {"random", "lesion:le"}
    # Every lesion of a benign/malignant pair got a crop.
    covered = lesions.merge(crops, on="pair_id")
    hit = (covered.cx >= covered.origin_x) & (covered.cx < covered.origin_x + s) & \
          (covered.cy >= covered.origin_y) & (covered.cy < covered.origin_y + s)
    assert hit.groupby([covered.pair_id, covered.lesion_index]).any().all()


def test_splits_are_patient_disjoint_and_recorded(ingested) -> None:
    work, summary = ingested
    crops = pd.read_parquet(work.dataset.crops)
    assert crops.groupby("patient_id")["split"].nunique().max() == 1
    recorded = json.loads(work.dataset.splits.read_text())
    for split, patients in recorded["patients"].items():
        assert set(crops[crops.split == split].patient_id) == set(patients)
    table = pd.read_csv(work.dataset.qa / "table1.csv").set_index("split")
    assert table.loc["all", "total"] == len(crops) == table.loc[["train", "val", "test"], "total"].sum()
    assert table.loc["train", "malignant"] == ((crops.split == "train") & (crops.label == 1)).sum()


def test_shards_are_readable_by_ray_data(ingested) -> None:
    import ray

    work, summary = ingested
    files = sorted(work.dataset.shards.glob("split=*/part-*.parquet"))
    assert files
    ds = ray.data.read_parquet(str(work.dataset.shards))
    assert ds.count() == summary.crops
    assert {"crop_id", "le", "led", "des", "label", "split"} <= set(ds.schema().names)


def test_rerun_is_a_noop_and_force_rebuilds(ingested, small_dataset: Path, tmp_path: Path) -> None:
    shared, summary = ingested
    shutil.copytree(shared.dataset.root, tmp_path / "dataset")  # the shared workspace is left as it is
    work = Workspace.at(tmp_path)
    before = work.dataset.manifest.read_text()
    again = ingest.run(IngestConfig(), work, small_dataset)
    assert again.skipped and again.crops == summary.crops
    assert work.dataset.manifest.read_text() == before
    changed = ingest.run(IngestConfig(crop_size=160), work, small_dataset)
    assert not changed.skipped
    assert pd.read_parquet(work.dataset.crops)["height"].eq(160).all()
    forced = ingest.run(IngestConfig(), work, small_dataset, force=True)
    assert not forced.skipped and forced.crops == summary.crops


def _drop_annotation_row(xlsx: Path, stem: str) -> None:
    book = openpyxl.load_workbook(xlsx)
    sheet = book["all"]
    for row in range(2, sheet.max_row + 1):
        if str(sheet.cell(row, 1).value).strip() == stem:
            sheet.delete_rows(row)
            break
    book.save(xlsx)


def _set_pathology(xlsx: Path, stem: str, value: str) -> None:
    book = openpyxl.load_workbook(xlsx)
    sheet = book["all"]
    for row in range(2, sheet.max_row + 1):
        if str(sheet.cell(row, 1).value).strip() == stem:
            sheet.cell(row, 12).value = value
    book.save(xlsx)


def test_bad_inputs_are_rejected_with_reasons_and_good_pairs_survive(ray_local, small_dataset: Path,
                                                                      tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(small_dataset, raw)
    le_files = sorted((raw / LE_DIR).iterdir())
    pairs = [parse_image_name(p.name).pair_id for p in le_files]
    names = {parse_image_name(p.name).pair_id: p for p in le_files}
    des_names = {parse_image_name(p.name).pair_id: p for p in (raw / DES_DIR).iterdir()}
    regions = pd.read_csv(raw / "Radiology_hand_drawn_segmentations_v2.csv")
    annotated = [p for p in pairs if regions["#filename"].str.strip().str.replace(" .jpg", ".jpg")
                 .str.startswith(names[p].name.strip().split(".")[0].replace(" ", "")).any()]
    corrupt, no_des, no_le, no_row, bad_label, bad_json = pairs[0], pairs[1], pairs[2], pairs[3], pairs[4], \
        next(p for p in annotated if p not in pairs[:5])
    data = names[corrupt].read_bytes()
    names[corrupt].write_bytes(data[: len(data) // 3])  # truncated JPEG
    des_names[no_des].unlink()
    names[no_le].unlink()
    (raw / LE_DIR / "scan_0001.jpg").write_bytes(b"not a mammogram")
    xlsx = raw / "Radiology-manual-annotations.xlsx"
    _drop_annotation_row(xlsx, parse_image_name(names[no_row].name).stem)
    _set_pathology(xlsx, parse_image_name(names[bad_label].name).stem, "Probably fine")
    csv_text = (raw / "Radiology_hand_drawn_segmentations_v2.csv").read_text().splitlines()
    stem = parse_image_name(names[bad_json].name).stem
    idx = next(i for i, line in enumerate(csv_text) if line.replace(" .jpg", ".jpg").startswith(stem + ".jpg"))
    csv_text[idx] = csv_text[idx].replace('""name""', '""name"":', 1)  # break the JSON
    (raw / "Radiology_hand_drawn_segmentations_v2.csv").write_text("\n".join(csv_text) + "\n")
    rgb = names[pairs[5]]
    cv2.imwrite(str(rgb), cv2.cvtColor(_read(rgb), cv2.COLOR_GRAY2BGR))  # a colour JPEG must still work

    work = Workspace.at(tmp_path / "work")
    summary = ingest.run(IngestConfig(), work, raw)
    rejected = pd.read_csv(work.dataset.rejected)
    def about(pair: str) -> str:
        stems = {pair, parse_image_name(names[pair].name).stem if pair in names else pair}
        return " | ".join(rejected[rejected["item"].str.strip().isin(stems)]["reason"])

    text = {p: about(p) for p in pairs}
    assert "not a decodable image" in text[corrupt]
    assert "LE image without its DES" in text[no_des]
    assert "DES image without its LE" in text[no_le]
    assert "no annotation row" in text[no_row]
    assert "expected one of ['Normal', 'Benign', 'Malignant']" in text[bad_label]
    assert "malformed region JSON" in text[bad_json]
    assert rejected["reason"].str.contains("file name does not match").any()
    assert (rejected.loc[rejected["reason"].str.contains("not a decodable"), "file"].str.contains(LE_DIR)).all()
    bad = {corrupt, no_des, no_le, no_row, bad_label}
    ingested_pairs = set(pd.read_parquet(work.dataset.crops)["pair_id"])
    assert ingested_pairs.isdisjoint(bad)
    expected = set(pairs) - bad - set(rejected.loc[rejected["kind"] == "excluded", "item"])
    assert ingested_pairs in (expected, expected - {bad_json})
    if bad_json not in ingested_pairs:  # its only region was the broken one
        assert "no usable lesion region" in text[bad_json]
    assert summary.pairs_ingested == len(ingested_pairs)
    assert pairs[5] in ingested_pairs
    assert summary.rejected_bad_input >= 7

    with pytest.raises(BadInputError, match="--strict"):
        ingest.run(IngestConfig(strict=True), Workspace.at(tmp_path / "strict"), raw)
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").iterdir())


def test_missing_folder_or_annotation_is_a_clear_error_that_writes_nothing(small_dataset: Path,
                                                                             tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(small_dataset, raw)
    shutil.rmtree(raw / DES_DIR)
    with pytest.raises(BadInputError, match="Subtracted images of CDD-CESM: image folder is missing"):
        ingest.run(IngestConfig(), Workspace.at(tmp_path / "w1"), raw)
    shutil.copytree(small_dataset / DES_DIR, raw / DES_DIR)
    (raw / "Radiology-manual-annotations.xlsx").unlink()
    with pytest.raises(BadInputError, match="no annotation .xlsx file"):
        ingest.run(IngestConfig(), Workspace.at(tmp_path / "w2"), raw)
    assert not (tmp_path / "w1").exists() and not (tmp_path / "w2").exists()
