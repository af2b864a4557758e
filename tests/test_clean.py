"""Cleaning rules: every raw row ends clean or quarantined, by reason; repairs are counted."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import clean, schema
from helpers import db


def raw_images(rows: list[dict]) -> pa.Table:
    full = [{c.name: r.get(c.name) for c in schema.IMAGES} for r in rows]
    return pa.Table.from_pylist(full, schema=schema.arrow_schema("images", "raw"))


def raw_models(rows: list[dict]) -> pa.Table:
    full = [{c.name: r.get(c.name) for c in schema.MODELS} for r in rows]
    return pa.Table.from_pylist(full, schema=schema.arrow_schema("models", "raw"))


GOOD = {"image_id": "1", "created_at": "2023-05-01T12:00:00.000Z", "browsing_level": "4",
        "nsfw": "true", "prompt": "1girl, solo", "like_count": "3"}


def img(**kw):
    return {**GOOD, **kw}


@pytest.fixture
def cleaned(run):
    rows = [
        img(image_id="1"),
        img(image_id="2", created_at="2023-05-01 13:00:00+02:00", browsing_level="Mature"),
        img(image_id="3", created_at="1700000000000", browsing_level="None", nsfw="None"),  # epoch ms
        img(image_id="4", created_at="1700000000", browsing_level=None, nsfw="X"),  # level in nsfw
        img(image_id="5", created_at="not a date"),
        img(image_id="6", created_at="2021-06-01T00:00:00Z"),
        img(image_id="7", created_at="2031-01-01T00:00:00Z"),
        img(image_id="8", browsing_level="128"),
        img(image_id="9", browsing_level="spicy"),
        img(image_id="10", browsing_level=None, nsfw=None),
        img(image_id="abc"),
        img(image_id=None),
        img(image_id="1"),  # exact duplicate of the first row
        img(image_id="2", prompt="different"),  # conflicting duplicate
        img(image_id="11", like_count="-5", heart_count="many", prompt="   "),
        img(image_id="12", prompt="x" * (clean.MAX_PROMPT_CHARS + 10), comment_count="2.0"),
        img(image_id="13", nsfw="maybe", model_id="m-1", browsing_level="31"),
        img(image_id="14", created_at=None),
    ]
    pq.write_table(raw_images(rows), run.table("raw", "images"))
    report = clean.clean_table("images", run)
    return run, report


def test_every_row_is_accounted_for(cleaned):
    run, report = cleaned
    assert report["raw"] == 18
    assert report["raw"] == report["clean"] + report["quarantined"]
    quarantine = pq.read_table(run.quarantined("images")).to_pandas()
    assert len(quarantine) == report["quarantined"]
    assert set(quarantine.columns) == {c.name for c in schema.IMAGES} | {"reason"}


def test_quarantine_reasons(cleaned):
    run, report = cleaned
    q = pq.read_table(run.quarantined("images")).to_pandas()
    by_id = dict(zip(q.image_id.fillna("<null>"), q.reason))
    assert by_id["5"] == "unparseable_created_at"
    assert by_id["6"] == "created_at_before_window"
    assert by_id["7"] == "created_at_after_window"
    assert by_id["8"] == "invalid_level"
    assert by_id["9"] == "invalid_level"
    assert by_id["10"] == "missing_level"
    assert by_id["abc"] == "invalid_id"
    assert by_id["<null>"] == "missing_id"
    assert by_id["14"] == "missing_created_at"
    assert sorted(q[q.image_id == "1"].reason) == ["duplicate_id_exact"]
    assert sorted(q[q.image_id == "2"].reason) == ["duplicate_id_conflict"]
    assert report["quarantine_reasons"]["duplicate_id_exact"] == 1


def test_clean_values_are_typed_and_repaired(cleaned):
    run, report = cleaned
    df = pq.read_table(run.table("interim", "images")).to_pandas().set_index("image_id")
    assert list(df.index) == [1, 2, 3, 4, 11, 12, 13]
    assert df.loc[2, "nsfw_level"] == "R" and df.loc[2, "created_at"] == pd.Timestamp("2023-05-01 11:00", tz="UTC")
    assert df.loc[2, "prompt"] == "1girl, solo"  # the first occurrence wins over the conflict
    assert df.loc[3, "created_at"] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert df.loc[3, "nsfw_level"] == "PG" and df.loc[3, "nsfw"] is None or pd.isna(df.loc[3, "nsfw"])
    assert df.loc[4, "browsing_level"] == 8 and df.loc[4, "nsfw_level"] == "X"
    assert df.loc[13, "nsfw_level"] == "XXX"  # bitmask 31 → highest level
    assert pd.isna(df.loc[11, "like_count"]) and pd.isna(df.loc[11, "heart_count"])
    assert pd.isna(df.loc[11, "prompt"])
    assert len(df.loc[12, "prompt"]) == clean.MAX_PROMPT_CHARS and df.loc[12, "comment_count"] == 2
    assert df.loc[1, "reaction_count"] == 3
    rep = report["repairs"]
    assert rep["like_count_negative_set_null"] == 1
    assert rep["heart_count_non_numeric_set_null"] == 1
    assert rep["empty_prompt_set_null"] == 1
    assert rep["prompt_truncated"] == 1
    assert rep["nsfw_flag_unrecognised_set_null"] == 1
    assert rep["model_id_invalid_set_null"] == 1
    schema.validate_file(run.table("interim", "images"), "images", "interim")


def test_sql_level_parsing_matches_python(run):
    values = ["1", "2", "4", "8", "16", "32", "7", "31", "33", "0", "64", "8.0", "None", "Soft",
              "mature", "X", "XXX", "pg-13", "Blocked", "nope", "-4", " 4 "]
    con = db.connect(run.tmp)
    con.register("v", pa.table({"x": values}))
    got = con.execute(f"SELECT x, {clean.level_bit_sql('x')} AS bit FROM v").fetchall()
    for value, bit in got:
        name = schema.level_name(value.strip()) if value.strip() else None
        assert (schema.BROWSING_LEVELS.get(bit) if bit else None) == name, value


def test_window_is_checked():
    with pytest.raises(clean.CleaningError, match="after"):
        clean.Window("2024-01-01", "2023-01-01")
    with pytest.raises(clean.CleaningError, match="before CivitAI"):
        clean.Window("2020-01-01", "2023-01-01")
    with pytest.raises(clean.CleaningError, match="YYYY-MM-DD"):
        clean.Window("Jan 2023", "2023-12-31")


def test_models_cleaning(run):
    base = {"model_id": "1", "name": "A <b>model</b>", "type": "LORA", "nsfw": "false",
            "poi": "true", "tags": [" Woman ", "woman", "Celebrity"], "description": "<p>hi &amp; bye</p>",
            "trigger_words": ["abc", "abc", " def "], "created_at": "2023-01-02T00:00:00Z",
            "download_count": "10", "rating": "4.5", "n_versions": "2", "nsfw_level": "7"}
    rows = [base, {**base, "model_id": "2", "name": "  ", "poi": None},
            {**base, "model_id": "3", "type": None}, {**base, "model_id": "4", "rating": "9",
                                                       "download_count": "-1", "poi": "perhaps"},
            {**base, "model_id": "5", "created_at": "2019-01-01"}]
    pq.write_table(raw_models(rows), run.table("raw", "models"))
    report = clean.clean_table("models", run)
    assert (report["raw"], report["clean"], report["quarantined"]) == (5, 2, 3)
    assert report["quarantine_reasons"] == {"created_at_before_window": 1, "missing_name": 1,
                                            "missing_type": 1}
    df = pq.read_table(run.table("interim", "models")).to_pandas().set_index("model_id")
    assert df.loc[1, "name"] == "A model"
    assert df.loc[1, "description"] == "hi & bye"
    assert list(df.loc[1, "tags"]) == ["woman", "celebrity"]
    assert list(df.loc[1, "trigger_words"]) == ["abc", "def"]
    assert df.loc[1, "nsfw_level"] == "R" and bool(df.loc[1, "poi"]) is True
    assert pd.isna(df.loc[4, "rating"]) and pd.isna(df.loc[4, "download_count"]) and pd.isna(df.loc[4, "poi"])
    assert report["repairs"]["html_in_name_stripped"] == 2
    assert report["repairs"]["rating_invalid_set_null"] == 1
    assert report["repairs"]["poi_unrecognised_set_null"] == 1


def test_clean_all_reports_absent_tables_and_removes_stale_outputs(run):
    pq.write_table(raw_images([img()]), run.table("raw", "images"))
    run.table("interim", "models").write_bytes(b"stale")
    report = clean.clean_all(run)
    assert report["tables"]["models"] is None
    assert not run.table("interim", "models").exists()
    acc = clean.row_accounting(report)
    assert acc.set_index("table").loc["models", "note"] == "not in this snapshot"


def test_values_shifted_between_nullable_columns_are_a_conflict_not_an_exact_duplicate(run):
    # concat_ws would skip the NULLs and hash both rows as "…|1girl|…": a false exact duplicate.
    rows = [img(image_id="21", prompt="1girl", negative_prompt=None),
            img(image_id="21", prompt=None, negative_prompt="1girl"),
            img(image_id="22", prompt="a|b", negative_prompt=None),
            img(image_id="22", prompt="a", negative_prompt="b"),
            img(image_id="23"), img(image_id="23")]
    pq.write_table(raw_images(rows), run.table("raw", "images"))
    report = clean.clean_table("images", run)
    assert report["quarantine_reasons"] == {"duplicate_id_conflict": 2, "duplicate_id_exact": 1}


def test_content_hash_tells_null_from_empty_and_from_the_text_null():
    con = db.connect()
    sql = clean.content_hash_sql(["a", "b"])
    hashes = [con.execute(f"SELECT {sql} FROM (SELECT {a} AS a, {b} AS b)").fetchone()[0]
              for a, b in [("NULL::VARCHAR", "'x'"), ("''", "'x'"), ("'null'", "'x'"), ("'x'", "NULL::VARCHAR")]]
    assert len(set(hashes)) == 4


def test_cleaning_into_a_folder_whose_name_needs_quoting(tmp_path):
    from helpers.paths import RunPaths

    run = RunPaths(tmp_path / "O'Brien's run ü").ensure()
    pq.write_table(raw_images([img(image_id="1"), img(image_id="1"), img(image_id="x")]),
                   run.table("raw", "images"))
    report = clean.clean_all(run)
    assert report["tables"]["images"]["clean"] == 1
    assert clean.rows_by_month(run, "images")["rows"].tolist() == [1]
