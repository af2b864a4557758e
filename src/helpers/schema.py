"""Canonical tables, their columns, the aliases sources use for them, and NSFW encodings.

This module is the single source of truth for

* the canonical ``images`` and ``models`` tables (name, Arrow type, required, meaning),
  as written after cleaning (``data/interim``) and extended by labelling (``data/processed``);
* the *raw* form of the same tables (``data/raw``): canonical names, but every scalar kept
  as text so that nothing a source sent is lost before cleaning decides what is valid;
* the aliases under which sources (Hub datasets, CivitAI's REST API, Civiverse) name columns;
* the NSFW encodings: ``browsingLevel`` bits and the older string levels.

``data/README.md`` documents the same tables; ``tests/test_schema.py`` checks they agree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from . import db

UTC_TS = pa.timestamp("us", tz="UTC")
STR_LIST = pa.list_(pa.string())


@dataclass(frozen=True)
class Column:
    """One column of a canonical table."""

    name: str
    type: pa.DataType
    required: bool
    meaning: str


# --------------------------------------------------------------------------- encodings
#: CivitAI ``browsingLevel`` / ``nsfwLevel`` bit values and their names, mildest first.
BROWSING_LEVELS: dict[int, str] = {1: "PG", 2: "PG13", 4: "R", 8: "X", 16: "XXX", 32: "Blocked"}
LEVEL_NAMES: tuple[str, ...] = tuple(BROWSING_LEVELS.values())
LEVEL_BITS: dict[str, int] = {name: bit for bit, name in BROWSING_LEVELS.items()}
#: Older API string levels (``nsfw`` on images before 2024) mapped to the bit names.
LEGACY_LEVELS: dict[str, str] = {"none": "PG", "soft": "PG13", "mature": "R", "x": "X"}
#: Every spelling of a level the cleaner accepts, lower-cased, mapped to its bit value.
LEVEL_SPELLINGS: dict[str, int] = {
    **{name.lower(): bit for bit, name in BROWSING_LEVELS.items()},
    **{legacy: LEVEL_BITS[name] for legacy, name in LEGACY_LEVELS.items()},
    "pg-13": 2, "pg_13": 2,
}
#: Truthy / falsy spellings of the platform's boolean ``nsfw`` flag.
TRUE_SPELLINGS: tuple[str, ...] = ("true", "t", "1", "yes")
FALSE_SPELLINGS: tuple[str, ...] = ("false", "f", "0", "no")

#: CivitAI opened to the public in November 2022; nothing can be older.
PLATFORM_START = "2022-11-01"


def level_name(value: object) -> str | None:
    """Name (PG … Blocked) of a browsing-level bit, a bitmask, or a level string; None if invalid.

    A bitmask with several bits (as models carry) is named by its highest level, because a
    model whose images reach X is an X model. ``Blocked`` (32) wins over everything.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str)
                                           and re.fullmatch(r"[0-9]+(\.0+)?", value.strip())):
        bits = int(float(value))
        if bits <= 0 or bits >= 64:
            return None
        for bit in sorted(BROWSING_LEVELS, reverse=True):
            if bits & bit:
                return BROWSING_LEVELS[bit]
        return None
    if isinstance(value, str):
        bit = LEVEL_SPELLINGS.get(value.strip().lower())
        return BROWSING_LEVELS[bit] if bit else None
    return None



# --------------------------------------------------------------------------- study vocabulary
#: The three NSFW definitions of the study and the label column that holds each.
NSFW_DEFINITIONS: dict[str, str] = {
    "platform": "is_nsfw_platform",
    "r": "is_nsfw_r",
    "x": "is_nsfw_x",
}
#: How each definition is named in tables and figures.
NSFW_DEFINITION_LABELS: dict[str, str] = {
    "platform": "platform flag",
    "r": "level ≥ R",
    "x": "level ≥ X",
}
#: Marker categories of the lexicon, in reporting order.
MARKER_CATEGORIES: tuple[str, ...] = ("booru", "pony", "sexual", "minor", "real_person")
#: How each marker category is named in tables and figures.
MARKER_LABELS: dict[str, str] = {
    "booru": "booru tags",
    "pony": "Pony tokens",
    "sexual": "sexual terms",
    "minor": "minor-coded terms",
    "real_person": "real-person cues",
}


#: What each marker category measures. ``syntax`` markers say how a prompt is written (booru tag
#: vocabulary, Pony's quality and source tokens), ``content`` markers what it asks for; lexicon v2
#: keeps every term that describes content out of the syntax markers.
MARKER_KINDS: dict[str, str] = {
    "booru": "syntax",
    "pony": "syntax",
    "sexual": "content",
    "minor": "content",
    "real_person": "content",
}
#: Marker categories whose terms *define* NSFW content: their association with an NSFW label is
#: true by construction (a prompt asking for nudity yields a nude image), so it is labelled
#: "definitional" and never reported as a finding.
MARKER_DEFINITIONAL: dict[str, bool] = {
    "booru": False,
    "pony": False,
    "sexual": True,
    "minor": False,
    "real_person": False,
}
#: Marker categories left out of the prompt analyses, with the reason: the hand check of hits on
#: real prompts (docs/codebook_markers.md) found them to be something else there. The column
#: stays, because the model labels use the same terms on tags and names.
MARKERS_DROPPED_ON_PROMPTS: dict[str, str] = {
    "real_person": "on prompts the real-person terms name genres and photo styles "
                   "('kpop idol', 'instagram', 'supermodel'), not real people (hand check)",
}
#: Smallest precision of a marker category on the hand-checked real prompts for it to be kept.
MARKER_MIN_PRECISION = 0.8


def marker_role(category: str) -> str:
    """How the NSFW association of a marker category is reported: ``finding`` (a marker that does
    not define NSFW content), ``definitional`` (true by construction, never a finding) or
    ``dropped`` (not valid on prompts, see :data:`MARKERS_DROPPED_ON_PROMPTS`)."""
    if category in MARKERS_DROPPED_ON_PROMPTS:
        return "dropped"
    return "definitional" if MARKER_DEFINITIONAL[category] else "finding"


def marker_column(category: str) -> str:
    """Name of the boolean column of a marker category, e.g. ``mk_booru``."""
    return f"mk_{category}"


#: Marker categories and their label columns (images and models alike).
MARKERS: dict[str, str] = {c: marker_column(c) for c in MARKER_CATEGORIES}
#: Depicted-gender categories in reporting order.
GENDERS: tuple[str, ...] = ("female", "male", "mixed", "unknown")
#: Adapter (extra-network) calls in prompts, e.g. ``<lora:name:0.8>``: one pattern for counting
#: them and for removing them before tokenising. ASCII-only, so Python ``re`` and DuckDB's RE2
#: match the same text.
ADAPTER_KINDS: tuple[str, ...] = ("lora", "lyco", "lycoris", "locon", "loha", "lokr", "hypernet")
ADAPTER_CALL_PATTERN = r"(?i)<[ \t]*(?:" + "|".join(ADAPTER_KINDS) + r")[ \t]*:[^<>]*>"
#: The same calls with the adapter's name (up to the first colon) as group 1.
ADAPTER_CALL_NAME_PATTERN = (r"(?i)<[ \t]*(?:" + "|".join(ADAPTER_KINDS)
                             + r")[ \t]*:[ \t]*([^:<>]*)[^<>]*>")

#: Label columns added to the images table (processed stage), with their Arrow types.
IMAGE_LABEL_FIELDS: tuple[pa.Field, ...] = (
    pa.field("is_nsfw_platform", pa.bool_()),
    pa.field("is_nsfw_r", pa.bool_()),
    pa.field("is_nsfw_x", pa.bool_()),
    pa.field("n_lora", pa.int32()),
    *(pa.field(marker_column(c), pa.bool_()) for c in MARKER_CATEGORIES),
)
#: Label columns added to the models table (processed stage), with their Arrow types.
MODEL_LABEL_FIELDS: tuple[pa.Field, ...] = (
    pa.field("is_nsfw_platform", pa.bool_()),
    pa.field("is_nsfw_r", pa.bool_()),
    pa.field("is_nsfw_x", pa.bool_()),
    pa.field("is_adapter", pa.bool_()),
    pa.field("real_person_score", pa.float64()),
    pa.field("is_real_person", pa.bool_()),
    pa.field("real_person_source", pa.string()),
    pa.field("depicted_gender", pa.string()),
    *(pa.field(marker_column(c), pa.bool_()) for c in MARKER_CATEGORIES),
)
LABEL_FIELDS: dict[str, tuple[pa.Field, ...]] = {"images": IMAGE_LABEL_FIELDS,
                                                 "models": MODEL_LABEL_FIELDS}


# --------------------------------------------------------------------------- base-model families
#: Base-model families in reporting order, each with the pattern that recognises the platform's
#: ``baseModel`` strings (case-insensitive; first match wins, so Pony and Illustrious/NoobAI,
#: which are SDXL fine-tunes the platform names on their own, come before SDXL). Anything else
#: (``Other``, Kolors, Hunyuan, PixArt, SVD, …) or a missing value is ``other/unknown``.
BASE_MODEL_FAMILY_RULES: tuple[tuple[str, str], ...] = (
    ("Pony", r"(?i)\bpony\b"),
    ("Illustrious/NoobAI", r"(?i)illustrious|noob[ _-]?ai"),
    ("Flux", r"(?i)\bflux"),
    ("SD 3.x", r"(?i)^[ ]*sd[ ]?3\b"),
    ("SDXL", r"(?i)sdxl|\bxl\b"),
    ("SD 2.x", r"(?i)^[ ]*sd[ ]?2\b"),
    ("SD 1.x", r"(?i)^[ ]*sd[ ]?1\b"),
)
OTHER_FAMILY = "other/unknown"
#: Families in reporting order (oldest lineage first), ``other/unknown`` last.
BASE_MODEL_FAMILIES: tuple[str, ...] = ("SD 1.x", "SD 2.x", "SDXL", "Pony", "Illustrious/NoobAI",
                                        "Flux", "SD 3.x", OTHER_FAMILY)
_FAMILY_RES = tuple((family, re.compile(pattern)) for family, pattern in BASE_MODEL_FAMILY_RULES)


#: Whether each family is of anime/booru lineage, and why. A family is of that lineage when its
#: base model was trained on images captioned with booru tags (Danbooru, e621, Derpibooru), so
#: that it answers to booru tag syntax by design; fine-tunes in a family do not change its flag.
BOORU_LINEAGE: dict[str, tuple[bool, str]] = {
    "SD 1.x": (False, "Stable Diffusion 1.x was trained on LAION web images with alt-text "
                      "captions; anime fine-tunes of it exist, but the base is general"),
    "SD 2.x": (False, "trained on LAION-5B subsets with alt-text captions"),
    "SDXL": (False, "Stability AI's general model, trained on web images with natural-language "
                    "captions"),
    "Pony": (True, "Pony Diffusion (an SDXL fine-tune) was trained on images from booru "
                   "boards (Derpibooru, e621, Danbooru) with their tags, and introduced the "
                   "score_9 ... quality and source_ / rating_ tokens"),
    "Illustrious/NoobAI": (True, "Illustrious XL was trained on Danbooru images and their tags; "
                                 "NoobAI-XL continues it on Danbooru and e621"),
    "Flux": (False, "Black Forest Labs' model, trained on web images with natural-language "
                    "captions"),
    "SD 3.x": (False, "Stability AI's general model, natural-language captions"),
    OTHER_FAMILY: (False, "unknown or mixed base models: not counted as booru lineage"),
}
#: Families of anime/booru lineage (:data:`BOORU_LINEAGE`), in reporting order.
BOORU_LINEAGE_FAMILIES: tuple[str, ...] = tuple(f for f in BASE_MODEL_FAMILIES if BOORU_LINEAGE[f][0])


def is_booru_lineage(family: str) -> bool:
    """Whether a base-model family (:data:`BASE_MODEL_FAMILIES`) is of anime/booru lineage."""
    return BOORU_LINEAGE[family][0]


def base_model_family(base_model: str | None) -> str:
    """Family of a platform ``baseModel`` string, e.g. ``SDXL Lightning`` → ``SDXL``."""
    if base_model is None:
        return OTHER_FAMILY
    return next((family for family, rx in _FAMILY_RES if rx.search(base_model)), OTHER_FAMILY)


def base_model_family_sql(expr: str) -> str:
    """DuckDB expression computing :func:`base_model_family` of the SQL expression ``expr``.

    The patterns are ASCII-only, so Python ``re`` and DuckDB's RE2 agree (a test checks it).
    """
    from .db import sql_literal

    other = sql_literal(OTHER_FAMILY)
    cases = " ".join(f"WHEN regexp_matches({expr}, {sql_literal(pattern)}) THEN {sql_literal(family)}"
                     for family, pattern in BASE_MODEL_FAMILY_RULES)
    return f"(CASE WHEN {expr} IS NULL THEN {other} {cases} ELSE {other} END)"


# --------------------------------------------------------------------------- images
IMAGES: tuple[Column, ...] = (
    Column("image_id", pa.int64(), True, "CivitAI image id (unique after cleaning)"),
    Column("created_at", UTC_TS, True, "when the image was posted, UTC"),
    Column("browsing_level", pa.int16(), True, "CivitAI browsing level bit: 1 PG, 2 PG13, 4 R, 8 X, 16 XXX, 32 Blocked"),
    Column("nsfw_level", pa.string(), True, "name of the browsing level: PG, PG13, R, X, XXX, Blocked"),
    Column("nsfw", pa.bool_(), False, "the platform's own boolean NSFW flag, where the source has it"),
    Column("prompt", pa.string(), False, "positive prompt (null when absent or empty)"),
    Column("negative_prompt", pa.string(), False, "negative prompt"),
    Column("like_count", pa.int64(), False, "likes (thumbs up)"),
    Column("heart_count", pa.int64(), False, "hearts"),
    Column("laugh_count", pa.int64(), False, "laugh reactions"),
    Column("cry_count", pa.int64(), False, "cry reactions"),
    Column("comment_count", pa.int64(), False, "comments"),
    Column("reaction_count", pa.int64(), False, "likes + hearts + laughs + cries (the reactions present)"),
    Column("user_hash", pa.string(), False, "hashed username of the poster (never a clear username)"),
    Column("base_model", pa.string(), False, "base model family, e.g. SD 1.5, SDXL 1.0, Pony, Flux.1 D"),
    Column("model_id", pa.int64(), False, "id of the checkpoint/model the image was made with, where known"),
    Column("resources", STR_LIST, False, "names of resources (checkpoints, LoRAs) the source lists for the image"),
    Column("url", pa.string(), False, "image URL on CivitAI's CDN (never downloaded)"),
)

# --------------------------------------------------------------------------- models
MODELS: tuple[Column, ...] = (
    Column("model_id", pa.int64(), True, "CivitAI model id (unique after cleaning)"),
    Column("name", pa.string(), True, "model name, HTML stripped"),
    Column("type", pa.string(), True, "model type: LORA, LoCon, Checkpoint, TextualInversion, Hypernetwork, ..."),
    Column("nsfw", pa.bool_(), False, "the platform's boolean NSFW flag for the model"),
    Column("nsfw_level", pa.string(), False, "highest browsing level of the model (PG … Blocked), where known"),
    Column("poi", pa.bool_(), False, "the platform's 'person of interest' flag (depicts a real person); null when the source lacks it"),
    Column("tags", STR_LIST, False, "tags, lower-cased and trimmed"),
    Column("description", pa.string(), False, "description as plain text (HTML stripped)"),
    Column("trigger_words", STR_LIST, False, "trained words of all versions, de-duplicated"),
    Column("creator_hash", pa.string(), False, "hashed username of the creator"),
    Column("created_at", UTC_TS, True, "creation time of the first version, UTC"),
    Column("base_model", pa.string(), False, "base model of the first version"),
    Column("download_count", pa.int64(), False, "downloads"),
    Column("favorite_count", pa.int64(), False, "favourites"),
    Column("comment_count", pa.int64(), False, "comments"),
    Column("rating_count", pa.int64(), False, "ratings"),
    Column("rating", pa.float64(), False, "mean rating (0-5)"),
    Column("n_versions", pa.int32(), False, "number of model versions"),
    Column("version_names", STR_LIST, False, "names of the model's versions, de-duplicated (e.g. v1.0, Lucy XL)"),
    Column("file_names", STR_LIST, False, "names of the files of every version, as uploaded (e.g. lucy_v1.safetensors); prompts call adapters by them"),
)

CANONICAL: dict[str, tuple[Column, ...]] = {"images": IMAGES, "models": MODELS}
LIST_COLUMNS: frozenset[str] = frozenset(
    c.name for cols in CANONICAL.values() for c in cols if pa.types.is_list(c.type)
)

# Extra columns of the quarantine files: why a row was set aside.
QUARANTINE_REASON = Column("reason", pa.string(), True, "why the row was quarantined")

# --------------------------------------------------------------------------- aliases
#: Source column names (Hub datasets, REST API, Civiverse) for each canonical raw column,
#: in order of preference. Matching is case-sensitive first, then case-insensitive.
IMAGE_ALIASES: dict[str, tuple[str, ...]] = {
    "image_id": ("image_id", "id", "imageId"),
    "created_at": ("created_at", "createdAt", "date", "timestamp"),
    "browsing_level": ("browsing_level", "browsingLevel", "nsfwLevel", "nsfw_level"),
    "nsfw": ("nsfw", "isNsfw"),
    "prompt": ("prompt", "positivePrompt", "positive_prompt", "Prompt"),
    "negative_prompt": ("negative_prompt", "negativePrompt", "NegativePrompt"),
    "like_count": ("like_count", "likeCount"),
    "heart_count": ("heart_count", "heartCount"),
    "laugh_count": ("laugh_count", "laughCount"),
    "cry_count": ("cry_count", "cryCount"),
    "comment_count": ("comment_count", "commentCount"),
    "user_hash": ("user_hash", "usernameHash", "username_hash", "userHash"),
    "base_model": ("base_model", "baseModel", "Model", "model_name"),
    "model_id": ("model_id", "modelId"),
    "resources": ("resources",),
    "url": ("url",),
}
#: Columns that hold nested reaction counts (struct or JSON text) in some sources.
IMAGE_STATS_COLUMNS: tuple[str, ...] = ("statsSummary", "stats")
#: Columns that hold a username in clear; hashed with a salt at acquisition, never kept.
CLEAR_USERNAME_COLUMNS: tuple[str, ...] = ("username", "user", "creator")
#: Civiverse-style resource columns folded into ``resources``.
RESOURCE_COLUMNS: tuple[str, ...] = ("Resource1", "Resource2", "Resource3")

MODEL_ALIASES: dict[str, tuple[str, ...]] = {
    "model_id": ("model_id", "id", "modelId"),
    "name": ("name", "model_name"),
    "type": ("type", "model_type"),
    "nsfw": ("nsfw",),
    "nsfw_level": ("nsfw_level", "nsfwLevel", "browsingLevel"),
    "poi": ("poi", "is_poi"),
    "tags": ("tags",),
    "description": ("description",),
    "download_count": ("download_count", "downloadCount"),
    "favorite_count": ("favorite_count", "favoriteCount"),
    "comment_count": ("comment_count", "commentCount"),
    "rating_count": ("rating_count", "ratingCount"),
    "rating": ("rating",),
    "creator_hash": ("creator_hash", "creatorHash", "usernameHash"),
}

ALIASES: dict[str, dict[str, tuple[str, ...]]] = {"images": IMAGE_ALIASES, "models": MODEL_ALIASES}


def find_alias(available: Iterable[str], table: str, canonical: str) -> str | None:
    """The source column that provides ``canonical`` in ``table``, or None."""
    names = list(available)
    lowered = {n.lower(): n for n in names}
    for alias in ALIASES[table].get(canonical, (canonical,)):
        if alias in names:
            return alias
    for alias in ALIASES[table].get(canonical, (canonical,)):
        if alias.lower() in lowered:
            return lowered[alias.lower()]
    return None


# --------------------------------------------------------------------------- arrow schemas
def raw_type(col: Column) -> pa.DataType:
    """Raw tables keep every scalar as text; lists stay lists of text."""
    return STR_LIST if pa.types.is_list(col.type) else pa.string()


def arrow_schema(table: str, stage: str = "interim") -> pa.Schema:
    """Arrow schema of a canonical table at ``raw``, ``quarantine``, ``interim`` or ``processed`` stage."""
    cols = CANONICAL[table]
    if stage == "raw":
        return pa.schema([pa.field(c.name, raw_type(c)) for c in cols])
    if stage == "quarantine":
        return pa.schema([pa.field(c.name, raw_type(c)) for c in cols]
                         + [pa.field(QUARANTINE_REASON.name, pa.string())])
    fields = [pa.field(c.name, c.type, nullable=not c.required) for c in cols]
    if stage == "processed":
        fields += list(LABEL_FIELDS[table])
    return pa.schema(fields)


class SchemaError(ValueError):
    """A table at a stage boundary does not have its canonical columns and types."""


def validate_schema(schema: pa.Schema, table: str, stage: str, where: str = "") -> None:
    """Raise :class:`SchemaError` listing every missing, mistyped or unexpected column.

    Every stage is checked strictly: a column the schema does not name is refused, never
    passed through.
    """
    expected = arrow_schema(table, stage)
    problems: list[str] = []
    for field in expected:
        if field.name not in schema.names:
            problems.append(f"missing column {field.name!r} ({field.type})")
            continue
        got = schema.field(field.name).type
        if not got.equals(field.type):
            problems.append(f"column {field.name!r} is {got}, expected {field.type}")
    extra = [n for n in schema.names if n not in expected.names]
    if extra:
        problems.append(f"unexpected columns {extra}")
    if problems:
        loc = f" in {where}" if where else ""
        raise SchemaError(f"{table} table at stage {stage!r}{loc} does not match the canonical "
                          f"schema (see data/README.md): " + "; ".join(problems))


def validate_file(path: Path, table: str, stage: str) -> int:
    """Validate a Parquet file's schema and required columns; return its row count."""
    if not db.table_exists(path):
        raise SchemaError(f"{table} table at stage {stage!r} is missing: {Path(path).name} was not "
                          "written; run the earlier notebooks first (python -m helpers run)")
    if not Path(path).exists():  # a stored view: its columns, its rows from its files' metadata
        validate_schema(db.table_arrow_schema(path), table, stage, where=db.view_path(path).name)
        return db.table_rows(path)
    pf = pq.ParquetFile(path)
    validate_schema(pf.schema_arrow, table, stage, where=Path(path).name)
    if stage in ("interim", "processed"):
        required = [c.name for c in CANONICAL[table] if c.required]
        meta = pf.metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for i in range(group.num_columns):
                col = group.column(i)
                if col.path_in_schema in required and col.statistics is not None \
                        and col.statistics.has_null_count and col.statistics.null_count > 0:
                    raise SchemaError(f"{table} table at stage {stage!r}: required column "
                                      f"{col.path_in_schema!r} has nulls in {Path(path).name}")
    return pf.metadata.num_rows


def describe(table: str) -> list[dict[str, str]]:
    """Rows of a human-readable schema table (column, type, required, meaning)."""
    return [{"column": c.name, "type": str(c.type), "required": "yes" if c.required else "no",
             "meaning": c.meaning} for c in CANONICAL[table]]


def markdown(table: str, extra: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The schema of ``table`` as a Markdown table (used in data/README.md)."""
    lines = ["| column | type | required | meaning |", "|---|---|---|---|"]
    for row in describe(table):
        lines.append(f"| `{row['column']}` | {row['type']} | {row['required']} | {row['meaning']} |")
    for name, (typ, meaning) in (extra or {}).items():
        lines.append(f"| `{name}` | {typ} | label | {meaning} |")
    return "\n".join(lines)
