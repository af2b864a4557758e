"""The canonical schema: encodings, validation, and agreement with data/README.md."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import schema
from helpers.paths import repo_root


@pytest.mark.parametrize("value,expected", [
    (1, "PG"), (2, "PG13"), (4, "R"), (8, "X"), (16, "XXX"), (32, "Blocked"),
    ("4", "R"), ("8.0", "X"), (7, "R"), (31, "XXX"), (33, "Blocked"),  # bitmask → highest level
    (0, None), (64, None), (-4, None), (3.5, None),
    ("None", "PG"), ("soft", "PG13"), ("Mature", "R"), ("X", "X"), ("xxx", "XXX"),
    ("PG-13", "PG13"), ("blocked", "Blocked"), ("spicy", None), (None, None), (True, None),
])
def test_level_name_resolves_bits_bitmasks_and_strings(value, expected):
    assert schema.level_name(value) == expected


def test_level_tables_are_consistent():
    assert list(schema.BROWSING_LEVELS) == [1, 2, 4, 8, 16, 32]
    for legacy, name in schema.LEGACY_LEVELS.items():
        assert schema.LEVEL_SPELLINGS[legacy] == schema.LEVEL_BITS[name]


def test_find_alias_prefers_exact_then_case_insensitive():
    assert schema.find_alias(["positivePrompt", "id"], "images", "prompt") == "positivePrompt"
    assert schema.find_alias(["PositivePrompt"], "images", "prompt") == "PositivePrompt"
    assert schema.find_alias(["id", "image_id"], "images", "image_id") == "image_id"
    assert schema.find_alias(["foo"], "images", "prompt") is None


def test_validate_schema_names_every_problem():
    good = schema.arrow_schema("images", "interim")
    schema.validate_schema(good, "images", "interim")
    bad = good.remove(good.get_field_index("prompt"))
    bad = bad.set(bad.get_field_index("image_id"), pa.field("image_id", pa.string()))
    bad = bad.append(pa.field("surprise", pa.int8()))
    with pytest.raises(schema.SchemaError) as err:
        schema.validate_schema(bad, "images", "interim", where="x.parquet")
    msg = str(err.value)
    assert "missing column 'prompt'" in msg and "'image_id' is string" in msg
    assert "surprise" in msg and "x.parquet" in msg and "data/README.md" in msg


@pytest.mark.parametrize("table", ["images", "models"])
def test_processed_stage_is_interim_plus_labels_strictly(table):
    processed = schema.arrow_schema(table, "processed")
    schema.validate_schema(processed, table, "processed")
    assert processed.names == schema.arrow_schema(table, "interim").names + \
        [f.name for f in schema.LABEL_FIELDS[table]]
    with pytest.raises(schema.SchemaError, match="unexpected columns"):
        schema.validate_schema(processed, table, "interim")
    with pytest.raises(schema.SchemaError, match="unexpected columns .'stray'"):
        schema.validate_schema(processed.append(pa.field("stray", pa.string())), table, "processed")
    with pytest.raises(schema.SchemaError, match="missing column 'is_nsfw_r'"):
        schema.validate_schema(processed.remove(processed.get_field_index("is_nsfw_r")), table, "processed")


def test_validate_file_rejects_nulls_in_required_columns(tmp_path):
    sch = schema.arrow_schema("models", "interim")
    row = {c.name: None for c in schema.MODELS}
    table = pa.Table.from_pylist([row], schema=pa.schema([pa.field(f.name, f.type) for f in sch]))
    pq.write_table(table, tmp_path / "m.parquet")
    with pytest.raises(schema.SchemaError, match="required column"):
        schema.validate_file(tmp_path / "m.parquet", "models", "interim")
    with pytest.raises(schema.SchemaError, match="run the earlier notebooks"):
        schema.validate_file(tmp_path / "absent.parquet", "models", "interim")


def test_raw_schema_keeps_everything_as_text():
    for table in schema.CANONICAL:
        for field in schema.arrow_schema(table, "raw"):
            assert field.type in (pa.string(), schema.STR_LIST)


def test_data_readme_documents_every_canonical_column():
    text = (repo_root() / "data" / "README.md").read_text(encoding="utf-8")
    for table, cols in schema.CANONICAL.items():
        for col in cols:
            assert f"`{col.name}`" in text, f"data/README.md does not document {table}.{col.name}"
    for bit, name in schema.BROWSING_LEVELS.items():
        assert f"{bit}" in text and name in text
