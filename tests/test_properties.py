"""Property-based tests: any record either lands clean or lands in quarantine, never vanishes,
never crashes the adapters or the cleaning.

Generated records put arbitrary text (or nothing) in every field, mixed with plausible values
so that some rows survive and duplicates occur. Bounded (40 examples, no deadline) to stay fast.
"""
from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import clean, schema, sources
from helpers.paths import RunPaths

# Each test acquires or cleans dozens of generated snapshots: in `make test`, not in `make test-fast`.
pytestmark = pytest.mark.slow

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --------------------------------------------------------------------------- strategies
#: Text with any code point Arrow can store (no lone surrogates: they are not Unicode text).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
#: Text, including lone surrogates, as a JSON decoder can produce them from ``\\ud800`` escapes.
json_text = st.text(st.characters(exclude_categories=()), max_size=30)

PLAUSIBLE: dict[str, list[str]] = {
    "image_id": ["1", "2", "3", " 4 ", "5.0", "0", "-1", "abc", "99999999999999999999"],
    "model_id": ["1", "2", "3", "x", "7.0"],
    "created_at": ["2023-05-01T12:00:00Z", "2023-05-01 13:00:00+02:00", "1700000000", "1700000000000",
                   "2021-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "not a date", "", "2023-02-30"],
    "browsing_level": ["1", "2", "4", "8", "16", "32", "3", "64", "0", "-4", "Mature", "None", "x", "spicy"],
    "nsfw_level": ["PG", "R", "X", "Soft", "bogus"],
    "nsfw": ["true", "false", "1", "0", "Mature", "maybe"],
    "poi": ["true", "false", "yes", "perhaps"],
    "name": ["<b>A</b>", "<p></p>", "Plain name", "&amp;", "  "],
    "type": ["LORA", "Checkpoint", "", " LoCon "],
    "rating": ["4.5", "7", "-1", "NaN"],
    "n_versions": ["1", "-2", "three"],
}
COUNT_VALUES = ["0", "5", "-3", "2.5", "1e3", "many", ""]


def raw_value(column: str) -> st.SearchStrategy[str | None]:
    """A raw (text) value for ``column``: nothing, arbitrary text, or a plausible spelling."""
    plausible = PLAUSIBLE.get(column, COUNT_VALUES if column.endswith("_count") else ["x", ""])
    return st.one_of(st.none(), any_text, st.sampled_from(plausible))


def raw_list() -> st.SearchStrategy[list[str | None] | None]:
    return st.one_of(st.none(), st.lists(st.one_of(st.none(), any_text), max_size=4))


def raw_record(table: str) -> st.SearchStrategy[dict[str, Any]]:
    """A record of the raw canonical table: every column text (or a list of text) or None."""
    return st.fixed_dictionaries({c.name: raw_list() if c.name in schema.LIST_COLUMNS else raw_value(c.name)
                                  for c in schema.CANONICAL[table]})


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                        st.floats(allow_nan=True, allow_infinity=True), json_text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(json_text, inner, max_size=3)), max_leaves=8)


def api_field(key: str) -> st.SearchStrategy[Any]:
    """A value for an API field: any JSON, or one of the shapes the API really sends."""
    shapes = {
        "id": st.one_of(st.integers(1, 6), st.sampled_from(["7", "x"])),
        "createdAt": st.sampled_from(["2023-03-01T00:00:00Z", "2021-01-01T00:00:00Z", "soon"]),
        "nsfw": st.one_of(st.booleans(), st.sampled_from(["None", "Soft", "Mature", "X", "bad"])),
        "browsingLevel": st.sampled_from([1, 4, 8, 64, "R"]),
        "tags": st.one_of(st.lists(json_text, max_size=3), json_text),
        "name": st.sampled_from(["<i>Name</i>", "Name", ""]),
        "type": st.sampled_from(["LORA", "Checkpoint"]),
        "meta": st.one_of(st.none(), st.fixed_dictionaries({"prompt": json_value, "negativePrompt": json_value,
                                                            "Model": json_value, "resources": json_value})),
        "stats": st.one_of(st.dictionaries(st.sampled_from(["likeCount", "downloadCount", "rating"]),
                                           json_value, max_size=3), json_value),
        "creator": st.one_of(st.fixed_dictionaries({"username": json_value}), json_value),
        "username": json_value,
        "resources": json_value,
    }
    return st.one_of(shapes[key], json_value) if key in shapes else json_value


def api_image_record() -> st.SearchStrategy[dict[str, Any]]:
    keys = ("id", "createdAt", "nsfw", "browsingLevel", "meta", "stats", "username", "resources", "url")
    return st.fixed_dictionaries({}, optional={k: api_field(k) for k in keys}).flatmap(
        lambda known: st.dictionaries(json_text, json_value, max_size=2).map(lambda extra: {**extra, **known}))


def api_model_record() -> st.SearchStrategy[dict[str, Any]]:
    version = st.one_of(json_value, st.fixed_dictionaries({}, optional={
        "createdAt": api_field("createdAt"), "baseModel": json_value, "trainedWords": json_value,
        "images": st.one_of(json_value, st.lists(api_image_record(), max_size=2))}))
    keys = ("id", "name", "type", "nsfw", "tags", "stats", "creator")
    return st.fixed_dictionaries(
        {"modelVersions": st.one_of(json_value, st.lists(version, max_size=3))},
        optional={**{k: api_field(k) for k in keys}, "poi": json_value, "description": json_value})


# --------------------------------------------------------------------------- checks
def check_accounting(run: RunPaths, table: str, raw_rows: list[dict[str, Any]]) -> None:
    """Clean ``raw_rows`` (already in ``run``'s raw table) and check nothing vanished."""
    report = clean.clean_table(table, run)
    id_col = "image_id" if table == "images" else "model_id"
    assert report["raw"] == len(raw_rows) == report["clean"] + report["quarantined"]
    quarantine = pq.read_table(run.quarantined(table)).to_pylist()
    assert all(row["reason"] for row in quarantine)
    # every quarantined row is a raw row exactly as it came
    raw_keys = Counter(json.dumps(r, sort_keys=True) for r in raw_rows)
    q_keys = Counter(json.dumps({k: v for k, v in row.items() if k != "reason"}, sort_keys=True)
                     for row in quarantine)
    assert not q_keys - raw_keys
    # the clean rows are the rest, one per id
    clean_ids = pq.read_table(run.table("interim", table), columns=[id_col]).column(id_col).to_pylist()
    assert len(clean_ids) == len(set(clean_ids)) == len(raw_rows) - len(quarantine)
    assert all(isinstance(i, int) and i > 0 for i in clean_ids)


def fresh_run(folder: str) -> RunPaths:
    return RunPaths(Path(folder) / "run").ensure()


# --------------------------------------------------------------------------- properties
def clean_raw_rows(table: str, rows: list[dict]) -> None:
    """Write rows as a raw table in a fresh run, clean it, and check the row accounting."""
    with tempfile.TemporaryDirectory() as folder:
        run = fresh_run(folder)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema.arrow_schema(table, "raw")),
                       run.table("raw", table))
        check_accounting(run, table, rows)


@SETTINGS
@given(st.lists(raw_record("images"), max_size=12))
def test_any_raw_image_rows_end_clean_or_quarantined(rows):
    clean_raw_rows("images", rows)


@SETTINGS
@given(st.lists(raw_record("models"), max_size=12))
def test_any_raw_model_rows_end_clean_or_quarantined(rows):
    clean_raw_rows("models", rows)


@SETTINGS
@given(st.lists(api_image_record(), max_size=8))
def test_any_api_image_item_flattens_and_cleans(records):
    raw_schema = schema.arrow_schema("images", "raw")
    rows = [sources.flatten_api_image(r, salt="pepper") for r in records]
    table = pa.Table.from_pylist(rows, schema=raw_schema)  # every value fits the raw schema
    with tempfile.TemporaryDirectory() as folder:
        run = fresh_run(folder)
        pq.write_table(table, run.table("raw", "images"))
        check_accounting(run, "images", table.to_pylist())


@SETTINGS
@given(st.lists(api_model_record(), max_size=6))
def test_any_api_model_record_flattens_and_cleans(records):
    repairs: Counter = Counter()
    rows = [sources.flatten_model(r, "pepper", repairs) for r in records]
    table = pa.Table.from_pylist(rows, schema=schema.arrow_schema("models", "raw"))
    images = [sources.flatten_api_image(i) for r in records for i in sources.model_images(r)]
    image_table = pa.Table.from_pylist(images, schema=schema.arrow_schema("images", "raw"))
    with tempfile.TemporaryDirectory() as folder:
        run = fresh_run(folder)
        pq.write_table(table, run.table("raw", "models"))
        check_accounting(run, "models", table.to_pylist())
        pq.write_table(image_table, run.table("raw", "images"))
        check_accounting(run, "images", image_table.to_pylist())


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(api_model_record(), api_image_record()), min_size=1, max_size=6))
def test_any_api_file_acquires_with_a_clear_error_or_every_row(records):
    """Through the whole API adapter (JSON Lines on disk): a defined error or every row kept."""
    with tempfile.TemporaryDirectory() as folder:
        run = fresh_run(folder)
        path = Path(folder) / "scrape.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        try:
            result = sources.acquire("api", run, path=str(path))
        except sources.SourceError as err:
            # the only defined refusals for well-formed JSON: no rows, or a required column empty
            assert "scrape.jsonl" in str(err)
            assert "snapshot is empty" in str(err) or "required column" in str(err)
            return
        n_models = sum(1 for r in records if "modelVersions" in r or "poi" in r)
        assert result.rows.get("models", 0) == n_models
        n_images = (len(records) - n_models) + sum(
            1 for r in records if "modelVersions" in r or "poi" in r for _ in sources.model_images(r))
        assert result.rows.get("images", 0) == n_images
        for table, n in result.rows.items():
            report = clean.clean_table(table, run)
            assert report["raw"] == n == report["clean"] + report["quarantined"]
