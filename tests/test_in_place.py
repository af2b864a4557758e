"""A Parquet snapshot is read in place: the raw images table is a stored view, not a copy.

Its rows equal the copied table's, every file is named with its SHA-256, cleaning refuses a file
that changed since acquisition, and a snapshot that needs converting is still written."""
from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from helpers import clean, db, label, sources
from helpers.paths import RunPaths

HUB_IMAGES = [
    {"id": i, "createdAt": f"2023-{1 + i % 12:02d}-02T10:00:00.000Z", "url": None,
     "positivePrompt": f"score_9, 1girl <lora:abc:0.7> prompt {i % 4}", "negativePrompt": None,
     "nsfw": bool(i % 2), "browsingLevel": [1, 2, 4, 8, 16][i % 5],
     "statsSummary": json.dumps({"likeCount": i, "heartCount": 1, "laughCount": 0, "cryCount": 0,
                                 "commentCount": 2}),
     "usernameHash": f"u{i % 3}", "baseModel": "Pony", "modelId": 7}
    for i in range(1, 41)
] + [dict({"id": 5, "createdAt": "not a date"}, **{k: None for k in ("url", "positivePrompt")})]


def write_snapshot(folder, rows=HUB_IMAGES, parts=2):
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    step = -(-len(rows) // parts)
    for i in range(parts):
        pq.write_table(table.slice(i * step, step), folder / f"part-{i:05d}.parquet")
    return folder


def _run(tmp_path, name):
    return RunPaths(tmp_path / name).ensure()


def test_parquet_images_are_read_in_place_and_equal_the_copied_table(tmp_path):
    snap = write_snapshot(tmp_path / "snap" / "images")
    view_run, copy_run = _run(tmp_path, "view"), _run(tmp_path, "copy")
    assert sources.acquire("local", view_run, path=str(snap.parent)).rows == {"images": len(HUB_IMAGES)}
    sources.acquire_local(snap.parent, copy_run, in_place=False)
    raw_view, raw_copy = view_run.table("raw", "images"), copy_run.table("raw", "images")
    assert not raw_view.exists() and db.view_path(raw_view).exists() and raw_copy.exists()
    view = db.read_view(raw_view)
    assert [f["sha256"] for f in view["files"]] == [db.sha256_file(p) for p in sorted(snap.glob("*.parquet"))]
    assert db.read_table(raw_view).equals(pq.read_table(raw_copy))
    # the rows keep their place across files: cleaning gives the same tables and report
    reports = [clean.clean_all(run) for run in (view_run, copy_run)]
    assert reports[0] == reports[1]
    for run in (view_run, copy_run):
        label.label_images(run)
    for stage, table in (("interim", "images"), ("processed", "images")):
        assert db.read_table(view_run.table(stage, table)).equals(db.read_table(copy_run.table(stage, table)))
    assert pq.read_table(view_run.quarantined("images")).equals(pq.read_table(copy_run.quarantined("images")))


def test_a_snapshot_file_changed_after_acquisition_is_refused_by_cleaning(tmp_path):
    snap = write_snapshot(tmp_path / "snap" / "images")
    run = _run(tmp_path, "run")
    sources.acquire("local", run, path=str(snap.parent))
    rows = HUB_IMAGES[:5]
    pq.write_table(pa.Table.from_pylist(rows), snap / "part-00001.parquet")
    with pytest.raises(db.TableChanged, match=r"part-00001\.parquet.*changed since it was acquired.*re-run notebook 00"):
        clean.clean_all(run)
    (snap / "part-00001.parquet").unlink()
    with pytest.raises(db.TableChanged, match="is gone"):
        clean.clean_all(run)
    assert not run.table("interim", "images").exists()


def test_a_run_folder_holding_its_snapshot_can_move(tmp_path):
    run = _run(tmp_path, "run")
    snap = write_snapshot(run.source_cache / "mine" / "images")
    sources.acquire("local", run, path=str(snap.parent))
    assert not any(f["path"].startswith("/") for f in db.read_view(run.table("raw", "images"))["files"])
    shutil.move(str(run.root), str(tmp_path / "moved"))
    moved = RunPaths(tmp_path / "moved")
    assert clean.clean_all(moved)["tables"]["images"]["raw"] == len(HUB_IMAGES)


@pytest.mark.parametrize("case", ["clear_usernames", "csv"])
def test_a_snapshot_that_needs_converting_is_written_not_viewed(tmp_path, case):
    folder = tmp_path / "snap" / "images"
    if case == "clear_usernames":
        rows = [{k: v for k, v in r.items() if k != "usernameHash"} | {"username": "alice"} for r in HUB_IMAGES]
        write_snapshot(folder, rows)
    else:
        folder.mkdir(parents=True)
        pa.csv.write_csv(pa.Table.from_pylist(HUB_IMAGES[:-1]), folder / "part-0.csv")
    run = _run(tmp_path, "run")
    sources.acquire("local", run, path=str(folder.parent), salt="s3cret")
    raw = run.table("raw", "images")
    assert raw.exists() and not db.view_path(raw).exists()
    # the salt is used, never written
    assert all(b"s3cret" not in p.read_bytes() for p in run.data.rglob("*") if p.is_file())


def test_acquiring_again_replaces_the_other_storage(tmp_path):
    snap = write_snapshot(tmp_path / "snap" / "images")
    run = _run(tmp_path, "run")
    sources.acquire_local(snap.parent, run, in_place=False)
    sources.acquire("local", run, path=str(snap.parent))
    raw = run.table("raw", "images")
    assert not raw.exists() and db.view_path(raw).exists()
    sources.acquire_local(snap.parent, run, in_place=False)
    assert raw.exists() and not db.view_path(raw).exists()


def test_views_name_their_storage_and_register_for_sql(tmp_path):
    snap = write_snapshot(tmp_path / "snap" / "images")
    run = _run(tmp_path, "run")
    sources.acquire("local", run, path=str(snap.parent))
    clean.clean_all(run)
    label.label_images(run)
    rows = {r["view"]: r for r in db.storage_rows(run.study_tables(), run.root)}
    assert rows["raw_images"]["stored as"].startswith("view of 2 snapshot files read in place")
    assert rows["processed_images"]["stored as"] == "view: images.parquet + image_labels.parquet side by side"
    assert rows["interim_images"]["stored as"] == "Parquet file"
    assert rows["processed_images"]["rows"] == rows["interim_images"]["rows"] == rows["image_labels"]["rows"]
    with db.connect() as con:
        assert set(db.register_views(con, run.study_tables())) >= {"raw_images", "interim_images", "processed_images"}
        n, labelled = con.execute("SELECT count(*), count(is_nsfw_r) FROM processed_images").fetchone()
    assert n == labelled == rows["interim_images"]["rows"]
    with pytest.raises(db.TableMissing, match="run the earlier notebooks first"):
        db.table_sql(run.table("raw", "models"))
