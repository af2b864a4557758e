"""Deliberately broken snapshots, in every supported format, each with a defined behaviour.

A snapshot problem ends in one of two ways, never a crash and never a silent loss:

* a clear error (``SourceError`` / ``CleaningError``; exit code non-zero from the CLI) whose
  message names the file, the column or problem, and what to do; or
* the bad rows are quarantined with a reason (or a bad optional value is repaired and counted),
  and raw rows = clean rows + quarantined rows.

The corpus is generated here, in ``tmp_path``: Parquet, CSV, CSV.gz, JSON Lines, JSON Lines.gz
(the ``local`` source) and CivitAI REST API JSON (the ``api`` source).
"""
from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import db
from helpers import clean, sources
from helpers.paths import RunPaths

LOCAL_FORMATS = ("parquet", "csv", "csv.gz", "jsonl", "jsonl.gz")
ALL_FORMATS = LOCAL_FORMATS + ("api",)
#: Stands for bytes that are not UTF-8; replaced by ``caf\xe9`` (Latin-1) after serialising.
NOT_UTF8 = "@@LATIN1@@"
LATIN1_BYTES = b"caf\xe9"
MEGABYTE_PROMPT = "masterpiece, " * 80_000  # ~1 MB


# --------------------------------------------------------------------------- writing snapshots
def arrow_table(records: list[dict[str, Any]]) -> pa.Table:
    """Records as an Arrow table; a column whose values have mixed types is stored as text."""
    names = list(dict.fromkeys(k for r in records for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in records]
        if any(isinstance(v, str) and NOT_UTF8 in v for v in values):
            raw = [None if v is None else str(v).encode().replace(NOT_UTF8.encode(), LATIN1_BYTES)
                   for v in values]
            columns[name] = pa.array(raw, pa.binary()).view(pa.string())  # invalid UTF-8 as text
            continue
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if v is None else json.dumps(v) if isinstance(v, (dict, list))
                                      else str(v) for v in values], pa.string())
    return pa.table(columns)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8").replace(NOT_UTF8.encode(), LATIN1_BYTES)


def write_records(folder: Path, records: list[dict[str, Any]], fmt: str, name: str = "part-0") -> Path:
    """Write ``records`` as one file of format ``fmt`` in ``folder``; return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        path = folder / f"{name}.parquet"
        pq.write_table(arrow_table(records), path)
        return path
    if fmt.startswith("csv"):
        flat = [{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()}
                for r in records]
        data = _bytes(pd.DataFrame(flat).to_csv(index=False))
    else:
        data = _bytes("".join(json.dumps(r) + "\n" for r in records))
    path = folder / f"{name}.{fmt}"
    path.write_bytes(gzip.compress(data, mtime=0) if fmt.endswith(".gz") else data)
    return path


def api_image(record: dict[str, Any]) -> dict[str, Any]:
    """A Hub-format image record in the shape of CivitAI's ``/api/v1/images`` items."""
    item = {k: v for k, v in record.items() if k in ("id", "createdAt", "browsingLevel", "nsfw", "url")}
    item["meta"] = {"prompt": record.get("positivePrompt"), "negativePrompt": record.get("negativePrompt")}
    item["stats"] = {k: v for k, v in record.items() if k.endswith("Count")}
    item["username"] = record.get("usernameHash")
    return item


def api_model(record: dict[str, Any]) -> dict[str, Any]:
    """A Hub-format (flat) model record in the nested shape of CivitAI's ``/api/v1/models``."""
    nested = {k: v for k, v in record.items()
              if k in ("id", "name", "type", "nsfw", "poi", "tags", "description")}
    nested["creator"] = {"username": record.get("creatorHash")}
    nested["stats"] = {k: v for k, v in record.items() if k.endswith("Count")}
    nested["modelVersions"] = [{"id": 1, "createdAt": record.get("createdAt"),
                                "baseModel": record.get("baseModel"), "trainedWords": ["trg"],
                                "images": []}]
    return nested


def write_snapshot(root: Path, fmt: str, images: list[dict] | None = None,
                   models: list[dict] | None = None) -> Path:
    """A snapshot folder: ``images/`` and ``models/`` for local formats, one JSONL for ``api``."""
    if fmt == "api":
        records = [api_model(m) for m in models or []] + [api_image(i) for i in images or []]
        path = root / "api" / "scrape.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_bytes("".join(json.dumps(r) + "\n" for r in records)))
        return path
    if images is not None:
        write_records(root / "images", images, fmt)
    if models is not None:
        write_records(root / "models", models, fmt)
    return root


def source_of(fmt: str) -> str:
    return "api" if fmt == "api" else "local"


# --------------------------------------------------------------------------- good rows
def good_images() -> list[dict[str, Any]]:
    """Six valid images in the Hub's column format (ids 1-6)."""
    levels = [1, 2, 4, 8, 16, 1]
    return [{"id": i, "createdAt": f"2023-0{i}-1{i}T10:00:00.000Z", "positivePrompt": f"a photo of a cat {i}",
             "negativePrompt": "blurry", "browsingLevel": levels[i - 1], "nsfw": levels[i - 1] >= 4,
             "likeCount": i, "heartCount": 0, "usernameHash": f"hash{i}", "url": f"https://x.invalid/{i}.jpeg"}
            for i in range(1, 7)]


def good_models() -> list[dict[str, Any]]:
    """Four valid models in a flat Hub-like format (ids 1-4)."""
    return [{"id": i, "name": f"Model {i}", "type": "LORA" if i % 2 else "Checkpoint", "nsfw": False,
             "poi": False, "tags": ["style", "anime"], "description": "<p>A model</p>",
             "createdAt": f"2023-0{i}-01T00:00:00Z", "baseModel": "SD 1.5", "downloadCount": 10 * i,
             "favoriteCount": i, "creatorHash": f"creator{i}"} for i in range(1, 5)]


def image(id_: Any, **fields: Any) -> dict[str, Any]:
    base = dict(good_images()[0])
    base["id"] = id_
    base.update(fields)
    return base


def model(id_: Any, **fields: Any) -> dict[str, Any]:
    base = dict(good_models()[0])
    base["id"] = id_
    base.update(fields)
    return base


# --------------------------------------------------------------------------- running
def acquire_and_clean(snapshot: Path, run: RunPaths, fmt: str) -> tuple[dict, dict]:
    """Acquire and clean; return the acquisition result and the cleaning report."""
    result = sources.acquire(source_of(fmt), run, path=str(snapshot), salt="test-salt")
    report = clean.clean_all(run)
    assert_balanced(run, report)
    return result.as_dict(), report


def assert_balanced(run: RunPaths, report: dict[str, Any]) -> None:
    """raw = clean + quarantined per table, and the files hold exactly those rows."""
    for table, rep in report["tables"].items():
        if rep is None:
            assert not run.table("interim", table).exists()
            continue
        assert rep["raw"] == rep["clean"] + rep["quarantined"], table
        assert db.table_rows(run.table("raw", table)) == rep["raw"]
        assert pq.ParquetFile(run.table("interim", table)).metadata.num_rows == rep["clean"]
        quarantine = pq.read_table(run.quarantined(table))
        assert quarantine.num_rows == rep["quarantined"]
        assert quarantine.column("reason").null_count == 0
        assert sum(rep["quarantine_reasons"].values()) == rep["quarantined"]


def quarantined(run: RunPaths, table: str) -> Counter:
    """``(raw id, reason)`` pairs of the quarantine file, counted."""
    id_col = "image_id" if table == "images" else "model_id"
    rows = pq.read_table(run.quarantined(table), columns=[id_col, "reason"]).to_pylist()
    return Counter((r[id_col], r["reason"]) for r in rows)


def interim(run: RunPaths, table: str) -> pd.DataFrame:
    id_col = "image_id" if table == "images" else "model_id"
    return pq.read_table(run.table("interim", table)).to_pandas().set_index(id_col)


# --------------------------------------------------------------------------- row-level corpus
BAD_IMAGES: list[dict[str, Any]] = [
    # duplicate ids: an exact copy of image 1, and image 2 again with other content
    image(1), image(2, positivePrompt="something else entirely", createdAt="2023-02-12T10:00:00.000Z"),
    # timestamps
    image(101, createdAt="not a date"), image(102, createdAt="2099-01-01T00:00:00Z"),
    image(103, createdAt="2021-12-31T23:59:59Z"), image(104, createdAt=""),
    image(105, createdAt="2023-02-30T00:00:00Z"),
    # browsing levels: unknown bits and level strings, then valid legacy and bitmask ones
    image(111, browsingLevel=64), image(112, browsingLevel=0), image(113, browsingLevel=-4),
    image(114, browsingLevel="spicy"), image(115, browsingLevel="Extreme"),
    image(116, browsingLevel="Mature"), image(117, browsingLevel=3),
    # counts
    image(121, likeCount=-5), image(122, likeCount="many"), image(123, heartCount=2.5),
    # prompts: null, empty, blank, a megabyte, bytes that are not UTF-8
    image(131, positivePrompt=None), image(132, positivePrompt=""), image(133, positivePrompt="   "),
    image(134, positivePrompt=MEGABYTE_PROMPT), image(135, positivePrompt=f"{NOT_UTF8} au lait"),
    # ids of the wrong type or value
    image("abc"), image("1.5"), image(-7), image(None),
    # a whole id written as a float (pandas does this when ids have gaps)
    image("141.0"),
]
EXPECTED_IMAGE_QUARANTINE = Counter({
    ("1", "duplicate_id_exact"): 1, ("2", "duplicate_id_conflict"): 1,
    ("101", "unparseable_created_at"): 1, ("102", "created_at_after_window"): 1,
    ("103", "created_at_before_window"): 1, ("104", "missing_created_at"): 1,
    ("105", "unparseable_created_at"): 1,
    ("111", "invalid_level"): 1, ("112", "invalid_level"): 1, ("113", "invalid_level"): 1,
    ("114", "invalid_level"): 1, ("115", "invalid_level"): 1,
    ("abc", "invalid_id"): 1, ("1.5", "invalid_id"): 1, ("-7", "invalid_id"): 1,
})

BAD_MODELS: list[dict[str, Any]] = [
    model(1, name="Model 1 again", downloadCount=999),  # conflicting duplicate
    model(201, tags="Anime, Style ,  "),  # tags as a string
    model(202, name="<b>Bold</b> Model &amp; Co <script>alert('x')</script>"),
    model(203, name="<p> </p>"),  # nothing left once the HTML is stripped
    model(204, downloadCount=-3), model(205, downloadCount="lots"),
    model(206, createdAt="2021-01-01T00:00:00Z"), model(207, createdAt="2099-01-01T00:00:00Z"),
    model(208, createdAt="yesterday"), model(209, type=""),
    model("x9"),
]
EXPECTED_MODEL_QUARANTINE = Counter({
    ("1", "duplicate_id_conflict"): 1, ("203", "missing_name"): 1,
    ("206", "created_at_before_window"): 1, ("207", "created_at_after_window"): 1,
    ("208", "unparseable_created_at"): 1, ("209", "missing_type"): 1, ("x9", "invalid_id"): 1,
})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[RunPaths, dict, dict]]:
    """The row-level corpus (good + bad rows of both tables) acquired and cleaned per format."""
    out = {}
    for fmt in ALL_FORMATS:
        root = tmp_path_factory.mktemp(f"corpus_{fmt.replace('.', '_')}")
        snapshot = write_snapshot(root / "snapshot", fmt, images=good_images() + BAD_IMAGES,
                                  models=good_models() + BAD_MODELS)
        run = RunPaths(root / "run").ensure()
        acquired, report = acquire_and_clean(snapshot, run, fmt)
        out[fmt] = (run, acquired, report)
    return out


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_every_raw_row_is_kept_and_accounted_for(corpus, fmt):
    run, acquired, report = corpus[fmt]
    assert acquired["rows"] == {"images": len(good_images() + BAD_IMAGES),
                                "models": len(good_models() + BAD_MODELS)}
    for table, rep in report["tables"].items():
        assert rep["raw"] == rep["clean"] + rep["quarantined"]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_bad_image_rows_are_quarantined_with_their_reason(corpus, fmt):
    run, _, report = corpus[fmt]
    got = quarantined(run, "images")
    missing_id = got.pop((None, "missing_id"), 0) + got.pop(("", "missing_id"), 0)
    assert missing_id == 1  # CSV cannot tell a null id from an empty one
    assert got == EXPECTED_IMAGE_QUARANTINE
    kept = set(interim(run, "images").index)
    assert kept == {1, 2, 3, 4, 5, 6, 116, 117, 121, 122, 123, 131, 132, 133, 134, 135, 141}


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_bad_optional_image_values_are_repaired_and_counted(corpus, fmt):
    run, acquired, report = corpus[fmt]
    rep = report["tables"]["images"]["repairs"]
    imgs = interim(run, "images")
    # duplicates keep the first row
    assert imgs.loc[2, "prompt"] == "a photo of a cat 2"
    # legacy level string and bitmask
    assert imgs.loc[116, "nsfw_level"] == "R" and imgs.loc[117, "nsfw_level"] == "PG13"
    # negative and non-numeric counts become null, counted
    assert pd.isna(imgs.loc[121, "like_count"]) and pd.isna(imgs.loc[122, "like_count"])
    assert pd.isna(imgs.loc[123, "heart_count"])
    assert rep["like_count_negative_set_null"] == 1 and rep["like_count_non_numeric_set_null"] == 1
    assert rep["heart_count_non_numeric_set_null"] == 1
    # null, empty and blank prompts are null; CSV cannot tell null from empty, so the two
    # counters are checked together
    assert imgs.loc[[131, 132, 133], "prompt"].isna().all()
    assert rep.get("prompt_missing", 0) + rep.get("empty_prompt_set_null", 0) == 3
    # a megabyte prompt is cut to the limit, counted
    assert len(imgs.loc[134, "prompt"]) == clean.MAX_PROMPT_CHARS and rep["prompt_truncated"] == 1
    # bytes that are not UTF-8 cost one replacement character, not the row or the file
    assert imgs.loc[135, "prompt"] == "caf\ufffd au lait"
    if fmt in ("parquet", "csv", "csv.gz"):
        assert acquired["repairs"]["non_utf8_text_replaced"] >= 1


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_bad_model_rows_are_quarantined_or_repaired(corpus, fmt):
    run, acquired, report = corpus[fmt]
    assert quarantined(run, "models") == EXPECTED_MODEL_QUARANTINE
    models = interim(run, "models")
    assert set(models.index) == {1, 2, 3, 4, 201, 202, 204, 205}
    assert models.loc[1, "name"] == "Model 1" and models.loc[1, "download_count"] == 10
    assert list(models.loc[201, "tags"]) == ["anime", "style"]
    assert acquired["repairs"]["tags_string_to_list"] >= 1
    assert models.loc[202, "name"] == "Bold Model & Co alert('x')"
    rep = report["tables"]["models"]["repairs"]
    assert rep["html_in_name_stripped"] >= 1
    assert pd.isna(models.loc[204, "download_count"]) and pd.isna(models.loc[205, "download_count"])
    assert rep["download_count_negative_set_null"] == 1 and rep["download_count_non_numeric_set_null"] == 1


def test_api_nested_images_with_broken_fields(run, tmp_path):
    """API models whose versions/images/meta/stats have the wrong shape still flatten."""
    records = [
        {**api_model(model(1)), "modelVersions": "not a list"},
        {**api_model(model(2)), "modelVersions": [None, 7, {"createdAt": "2023-03-01T00:00:00Z",
                                                          "images": "nope"}]},
        {**api_model(model(3)), "modelVersions": [{"createdAt": "2023-03-01T00:00:00Z", "images": [
            {"id": 31, "nsfw": "Soft", "meta": "not a dict", "stats": [1, 2]},
            {"id": 32, "nsfw": "Mature", "meta": {"prompt": 12345, "resources": [{"name": 7}]}},
            "not an image"]}]},
        {**api_model(model(4)), "tags": {"not": "a list"}, "stats": "n/a", "creator": 42},
    ]
    path = tmp_path / "models.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "{broken json\n")
    acquired, report = acquire_and_clean(path, run, "api")
    assert acquired["rows"] == {"models": 4, "images": 2}
    assert acquired["repairs"]["json_line_unparseable"] == 1
    imgs = interim(run, "images")
    assert imgs.loc[31, "nsfw_level"] == "PG13" and imgs.loc[32, "prompt"] == "12345"
    assert list(imgs.loc[32, "resources"]) == ["7"]


# --------------------------------------------------------------------------- whole-file problems
def _acquire_error(snapshot: Path, run: RunPaths, fmt: str) -> str:
    with pytest.raises(sources.SourceError) as err:
        sources.acquire(source_of(fmt), run, path=str(snapshot))
    return str(err.value)


@pytest.mark.parametrize("fmt", LOCAL_FORMATS)
def test_missing_required_image_column_is_a_clear_error(run, tmp_path, fmt):
    records = [{k: v for k, v in r.items() if k != "id"} for r in good_images()]
    write_snapshot(tmp_path / "snap", fmt, images=records)
    msg = _acquire_error(tmp_path / "snap", run, fmt)
    assert f"part-0.{fmt}" in msg and "image_id" in msg and "imageId" in msg and "rename" in msg
    assert not db.table_exists(run.table("raw", "images"))


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_missing_required_model_column_is_a_clear_error(run, tmp_path, fmt):
    records = [{k: v for k, v in r.items() if k != "name"} for r in good_models()]
    snapshot = write_snapshot(tmp_path / "snap", fmt, models=records)
    msg = _acquire_error(snapshot, run, fmt)
    expected_file = "scrape.jsonl" if fmt == "api" else f"part-0.{fmt}"
    assert expected_file in msg and "'name'" in msg and "rename" in msg


@pytest.mark.parametrize("column,value", [("createdAt", True), ("browsingLevel", [1, 2])])
def test_required_column_of_the_wrong_type_everywhere_is_a_clear_error(run, tmp_path, column, value):
    """One bad value is quarantined; a whole column of the wrong type leaves nothing to study."""
    records = [{**r, column: value} for r in good_images()]
    write_snapshot(tmp_path / "snap", "parquet", images=records, models=good_models())
    sources.acquire("local", run, path=str(tmp_path / "snap"))
    with pytest.raises(clean.CleaningError) as err:
        clean.clean_all(run)
    msg = str(err.value)
    assert "images" in msg and "none of the 6 raw rows" in msg
    assert ("unparseable_created_at" if column == "createdAt" else "invalid_level") in msg
    assert "data/quarantine/images.parquet" in msg and "window" in msg
    q = pq.read_table(run.quarantined("images"))
    assert q.num_rows == 6  # the rows are kept for inspection


def test_id_column_stored_as_floats_is_read_as_ids(run, tmp_path):
    records = [{**r, "id": float(r["id"])} for r in good_images()]
    write_snapshot(tmp_path / "snap", "parquet", images=records)
    _, report = acquire_and_clean(tmp_path / "snap", run, "parquet")
    assert report["tables"]["images"]["clean"] == 6
    assert sorted(interim(run, "images").index) == [1, 2, 3, 4, 5, 6]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("table", ["images", "models"])
def test_truncated_parquet_is_a_clear_error(run, tmp_path, table):
    write_snapshot(tmp_path / "snap", "parquet", images=good_images(), models=good_models())
    _truncate(tmp_path / "snap" / table / "part-0.parquet")
    msg = _acquire_error(tmp_path / "snap", run, "parquet")
    assert "part-0.parquet" in msg and "truncated or corrupt" in msg and "re-download or remove" in msg


def test_parquet_corrupt_in_the_middle_is_a_clear_error(run, tmp_path):
    rows = [image(i, positivePrompt=f"prompt {i} " * 30) for i in range(1, 3000)]
    path = tmp_path / "snap" / "images" / "big.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(arrow_table(rows), path, compression="snappy", row_group_size=500)
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start:start + 4000] = b"\x55" * 4000  # footer intact, a data page destroyed
    path.write_bytes(bytes(data))
    msg = _acquire_error(tmp_path / "snap", run, "parquet")
    assert "big.parquet" in msg and "truncated or corrupt" in msg
    assert "Traceback" not in msg
    assert not db.table_exists(run.table("raw", "images"))


@pytest.mark.parametrize("fmt", ["jsonl.gz", "csv.gz"])
def test_gzip_that_is_not_gzip_is_a_clear_error(run, tmp_path, fmt):
    path = write_records(tmp_path / "snap" / "images", good_images(), fmt.removesuffix(".gz"))
    path.rename(path.with_name(path.name + ".gz"))
    msg = _acquire_error(tmp_path / "snap", run, fmt)
    assert f"part-0.{fmt}" in msg and "not gzip" in msg and "re-compress" in msg
    assert "Traceback" not in msg


@pytest.mark.parametrize("fmt", ["jsonl.gz", "api"])
def test_truncated_gzip_is_a_clear_error(run, tmp_path, fmt):
    if fmt == "api":
        path = tmp_path / "scrape.jsonl.gz"
        path.write_bytes(gzip.compress(b"".join(json.dumps(api_model(model(i))).encode() + b"\n"
                                                for i in range(1, 200)), mtime=0))
        snapshot = path
    else:
        path = write_records(tmp_path / "snap" / "images", [image(i) for i in range(1, 500)], fmt)
        snapshot = tmp_path / "snap"
    _truncate(path, 0.6)
    msg = _acquire_error(snapshot, run, fmt)
    assert path.name in msg and "truncated or corrupt" in msg and "Traceback" not in msg


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "api"])
def test_snapshot_with_zero_rows_is_a_clear_error(run, tmp_path, fmt):
    if fmt == "parquet":
        empty = pa.table({"id": pa.array([], pa.int64()), "createdAt": pa.array([], pa.string()),
                          "browsingLevel": pa.array([], pa.int64())})
        (tmp_path / "snap" / "images").mkdir(parents=True)
        pq.write_table(empty, tmp_path / "snap" / "images" / "part-0.parquet")
        snapshot = tmp_path / "snap"
    elif fmt == "csv":
        (tmp_path / "snap" / "images").mkdir(parents=True)
        (tmp_path / "snap" / "images" / "part-0.csv").write_text("id,createdAt,browsingLevel\n")
        snapshot = tmp_path / "snap"
    else:  # zero-byte files
        (tmp_path / "snap" / "models").mkdir(parents=True)
        (tmp_path / "snap" / "models" / "part-0.jsonl").write_bytes(b"")
        snapshot = tmp_path / "snap" if fmt == "jsonl" else tmp_path / "snap" / "models" / "part-0.jsonl"
    msg = _acquire_error(snapshot, run, fmt)
    assert "part-0" in msg and "snapshot is empty" in msg and "export or download finished" in msg
    assert not db.table_exists(run.table("raw", "images")) and not run.table("raw", "models").exists()


def test_empty_folder_is_a_clear_error(run, tmp_path):
    (tmp_path / "snap").mkdir()
    msg = _acquire_error(tmp_path / "snap", run, "parquet")
    assert "no Parquet, CSV or JSON Lines files" in msg and "images/*.parquet" in msg


def test_empty_file_next_to_good_ones_is_skipped_and_counted(run, tmp_path):
    write_snapshot(tmp_path / "snap", "parquet", images=good_images())
    (tmp_path / "snap" / "images" / "part-1.jsonl").write_bytes(b"")
    acquired, report = acquire_and_clean(tmp_path / "snap", run, "parquet")
    assert acquired["repairs"]["empty_files_skipped"] == 1
    assert report["tables"]["images"]["clean"] == 6


def test_a_table_whose_files_have_no_rows_is_absent(run, tmp_path):
    write_snapshot(tmp_path / "snap", "csv", models=good_models())
    (tmp_path / "snap" / "images").mkdir()
    (tmp_path / "snap" / "images" / "part-0.csv").write_text("id,createdAt,browsingLevel\n")
    acquired, report = acquire_and_clean(tmp_path / "snap", run, "csv")
    assert acquired["rows"] == {"models": 4}
    assert acquired["repairs"]["images_files_without_rows"] == 1
    assert report["tables"]["images"] is None


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("only", ["images", "models"])
def test_snapshot_with_only_one_table(run, tmp_path, fmt, only):
    snapshot = write_snapshot(tmp_path / "snap", fmt,
                              images=good_images() if only == "images" else None,
                              models=good_models() if only == "models" else None)
    # a previous run's files of the other table must not leak into this one
    other = "models" if only == "images" else "images"
    run.table("raw", other).write_bytes(b"stale")
    acquired, report = acquire_and_clean(snapshot, run, fmt)
    assert set(acquired["rows"]) == {only}
    assert report["tables"][other] is None and report["tables"][only]["clean"] > 0
    assert not db.table_exists(run.table("raw", other)) and not run.quarantined(other).exists()


def test_image_files_with_different_column_types_name_both_files(run, tmp_path):
    write_records(tmp_path / "snap" / "images", good_images(), "parquet", name="a")
    write_records(tmp_path / "snap" / "images", [{**r, "id": str(r["id"])} for r in good_images()],
                  "parquet", name="b")
    msg = _acquire_error(tmp_path / "snap", run, "parquet")
    assert "a.parquet and b.parquet" in msg and "id (int64 vs string)" in msg


def test_json_file_that_is_not_json_is_a_clear_error(run, tmp_path):
    (tmp_path / "page.json").write_text('{"items": [{"id": 1,')
    msg = _acquire_error(tmp_path / "page.json", run, "api")
    assert "page.json" in msg and "not valid JSON" in msg and "fix or remove" in msg


def test_lone_surrogates_and_control_characters_in_json(run, tmp_path):
    """JSON may escape half a surrogate pair (invalid Unicode); it must not sink the file."""
    lines = [json.dumps(api_image(image(1)))[:-1] + ', "username": "x\\ud800y"}',
             json.dumps(api_image(image(2, positivePrompt="tab\there nul\x00 bell\x07")))]
    lines[0] = lines[0].replace('"a photo of a cat 1"', '"half \\udfff pair"')
    (tmp_path / "images.jsonl").write_text("\n".join(lines) + "\n")
    _, report = acquire_and_clean(tmp_path / "images.jsonl", run, "api")
    imgs = interim(run, "images")
    assert imgs.loc[1, "prompt"] == "half \ufffd pair"
    assert imgs.loc[1, "user_hash"] is not None
    assert imgs.loc[2, "prompt"] == "tab\there nul\x00 bell\x07"


# --------------------------------------------------------------------------- through the CLI
def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", "run", "--quiet", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_truncated_parquet_exits_non_zero_naming_file_and_remedy(tmp_path):
    write_snapshot(tmp_path / "snap", "parquet", images=good_images(), models=good_models())
    _truncate(tmp_path / "snap" / "images" / "part-0.parquet")
    proc = _cli(["--source", "local", "--path", str(tmp_path / "snap"), "--out", str(tmp_path / "out")])
    assert proc.returncode == 1
    assert "00_acquire_snapshot" in proc.stderr and "SourceError" in proc.stderr
    assert "part-0.parquet" in proc.stderr and "truncated or corrupt" in proc.stderr
    assert "re-download or remove" in proc.stderr
    assert not db.table_exists(tmp_path / "out" / "data" / "raw" / "images.parquet")


@pytest.mark.slow
def test_cli_gzip_that_is_not_gzip_exits_non_zero(tmp_path):
    path = tmp_path / "scrape.jsonl.gz"
    path.write_text(json.dumps(api_model(model(1))) + "\n")
    proc = _cli(["--source", "api", "--path", str(path), "--out", str(tmp_path / "out")])
    assert proc.returncode == 1
    assert "scrape.jsonl.gz" in proc.stderr and "not gzip data" in proc.stderr
    assert "re-compress" in proc.stderr


@pytest.mark.slow
def test_cli_missing_column_exits_non_zero(tmp_path):
    records = [{k: v for k, v in r.items() if k != "createdAt"} for r in good_images()]
    write_snapshot(tmp_path / "snap", "csv", images=records)
    proc = _cli(["--source", "local", "--path", str(tmp_path / "snap"), "--out", str(tmp_path / "out")])
    assert proc.returncode == 1
    assert "part-0.csv" in proc.stderr and "created_at" in proc.stderr and "createdAt" in proc.stderr
    assert "rename the column" in proc.stderr


@pytest.mark.slow
def test_cli_nothing_survives_cleaning_exits_non_zero(tmp_path):
    records = [{**r, "createdAt": "2021-06-01T00:00:00Z"} for r in good_images()]
    write_snapshot(tmp_path / "snap", "jsonl", images=records)
    proc = _cli(["--source", "local", "--path", str(tmp_path / "snap"), "--out", str(tmp_path / "out")])
    assert proc.returncode == 1
    assert "01_clean_tables" in proc.stderr and "CleaningError" in proc.stderr
    assert "created_at_before_window: 6" in proc.stderr and "window 2022-11-01 to 2025-12-31" in proc.stderr


@pytest.mark.slow
def test_cli_empty_folder_is_refused_before_any_work(tmp_path):
    (tmp_path / "snap").mkdir()
    proc = _cli(["--source", "local", "--path", str(tmp_path / "snap"), "--out", str(tmp_path / "out")])
    assert proc.returncode == 2
    assert "no Parquet, CSV or JSON Lines files" in proc.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- loading runs no code
#: Calls that can execute code hidden in data (pickle payloads, Python source in text, scripts).
CODE_FROM_DATA = re.compile(r"\bpickle\b|read_pickle|\beval\(|\bexec\(|yaml\.load\(|allow_pickle\s*=\s*True"
                            r"|trust_remote_code\s*=\s*True|torch\.load|joblib\.load|dill\.")


def test_loading_code_never_executes_code_from_data():
    package = Path(sources.__file__).parent.parent  # every module of helpers, sub-packages too
    offending = []
    modules = sorted(package.rglob("*.py"))
    assert len(modules) > 15 and package.name == "helpers"
    for module in modules:
        for lineno, line in enumerate(module.read_text(encoding="utf-8").splitlines(), 1):
            if CODE_FROM_DATA.search(line.split("#", 1)[0]):
                offending.append(f"{module.name}:{lineno}: {line.strip()}")
    assert not offending, offending


class _FakeHubDataset:
    """Stands in for a ``datasets`` dataset: ``with_format("arrow").iter(n)`` yields tables."""

    def with_format(self, _fmt: str) -> "_FakeHubDataset":
        return self

    def iter(self, batch_size: int):
        yield pa.table({"id": [1], "createdAt": ["2023-01-01T00:00:00Z"], "browsingLevel": [1]})


def test_hub_loading_never_trusts_remote_code(monkeypatch, tmp_path):
    """``trust_remote_code=False`` where ``load_dataset`` takes it (datasets < 4), nothing where the
    argument no longer exists (datasets >= 4 runs no loading scripts at all)."""
    import datasets

    seen = []

    def old_api(path, name=None, split=None, streaming=False, revision=None, trust_remote_code=None):
        seen.append(("old", trust_remote_code))
        return _FakeHubDataset()

    def new_api(path, name=None, split=None, streaming=False, revision=None, **config_kwargs):
        seen.append(("new", config_kwargs.get("trust_remote_code", "not passed")))
        return _FakeHubDataset()

    for fake in (old_api, new_api):
        monkeypatch.setattr(datasets, "load_dataset", fake)
        assert sources.hf_dataset_reader(str(tmp_path), "").read_all().num_rows == 1
    assert seen == [("old", False), ("new", "not passed")]
