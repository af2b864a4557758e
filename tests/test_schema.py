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


#: Every ``baseModel`` spelling seen on the platform (the 2023 API records, the synthetic sample,
#: and the platform's later names), with the family the study reports it under.
PLATFORM_BASE_MODELS = {
    "SD 1.4": "SD 1.x", "SD 1.5": "SD 1.x", "SD 1.5 LCM": "SD 1.x", "SD 1.5 Hyper": "SD 1.x",
    "SD 2.0": "SD 2.x", "SD 2.0 768": "SD 2.x", "SD 2.1": "SD 2.x", "SD 2.1 768": "SD 2.x",
    "SD 2.1 Unclip": "SD 2.x", "SDXL 0.9": "SDXL", "SDXL 1.0": "SDXL", "SDXL 1.0 LCM": "SDXL",
    "SDXL Turbo": "SDXL", "SDXL Lightning": "SDXL", "SDXL Hyper": "SDXL", "SDXL Distilled": "SDXL",
    "Pony": "Pony", "Illustrious": "Illustrious/NoobAI", "NoobAI": "Illustrious/NoobAI",
    "Flux.1 D": "Flux", "Flux.1 S": "Flux", "SD 3": "SD 3.x", "SD 3.5": "SD 3.x",
    "SD 3.5 Large": "SD 3.x", "SD 3.5 Medium": "SD 3.x", "SD 3.5 Large Turbo": "SD 3.x",
    "Other": "other/unknown", "Kolors": "other/unknown", "Hunyuan 1": "other/unknown",
    "PixArt a": "other/unknown", "SVD": "other/unknown", "Stable Cascade": "other/unknown",
    "Playground v2": "other/unknown", "AuraFlow": "other/unknown", "": "other/unknown",
    None: "other/unknown",
}


def test_base_model_families_of_every_platform_spelling_in_python_and_sql():
    import duckdb

    got = {b: schema.base_model_family(b) for b in PLATFORM_BASE_MODELS}
    assert got == PLATFORM_BASE_MODELS
    con = duckdb.connect()
    rows = con.execute(f"SELECT b, {schema.base_model_family_sql('b')} FROM (SELECT unnest(?) AS b)",
                       [list(PLATFORM_BASE_MODELS)]).fetchall()
    assert dict(rows) == PLATFORM_BASE_MODELS
    assert set(PLATFORM_BASE_MODELS.values()) == set(schema.BASE_MODEL_FAMILIES)


def test_base_model_families_of_the_synthetic_sample():
    from helpers import synth

    families = {schema.base_model_family(b) for b, *_ in synth.default_params().base_models}
    assert families <= set(schema.BASE_MODEL_FAMILIES) and "other/unknown" not in families


@pytest.mark.realdata
def test_every_base_model_spelling_in_the_real_records_has_its_family(real_data):
    import gzip
    import json

    seen = set()
    with gzip.open(real_data, "rt", encoding="utf-8") as handle:
        for line in handle:
            seen |= {v.get("baseModel") for v in json.loads(line).get("modelVersions") or []}
    unknown = sorted(str(b) for b in seen if b not in PLATFORM_BASE_MODELS)
    assert not unknown, f"baseModel spellings without a family in the test table: {unknown}"


# --------------------------------------------------------------------------- markers and lineage
def test_every_marker_category_has_a_kind_and_a_definitional_flag():
    assert set(schema.MARKER_KINDS) == set(schema.MARKER_CATEGORIES)
    assert set(schema.MARKER_KINDS.values()) == {"syntax", "content"}
    assert set(schema.MARKER_DEFINITIONAL) == set(schema.MARKER_CATEGORIES)
    # A syntax marker never defines NSFW content; the sexual terms do.
    assert not any(schema.MARKER_DEFINITIONAL[c] for c, k in schema.MARKER_KINDS.items() if k == "syntax")
    assert schema.MARKER_DEFINITIONAL["sexual"]
    assert set(schema.MARKERS_DROPPED_ON_PROMPTS) <= set(schema.MARKER_CATEGORIES)


def test_booru_lineage_flag_covers_every_family_with_a_reason():
    assert set(schema.BOORU_LINEAGE) == set(schema.BASE_MODEL_FAMILIES)
    for family, (flag, why) in schema.BOORU_LINEAGE.items():
        assert isinstance(flag, bool) and len(why) > 20, family
    assert schema.BOORU_LINEAGE_FAMILIES == ("Pony", "Illustrious/NoobAI")
    assert not schema.is_booru_lineage(schema.OTHER_FAMILY)
