"""Image labels: the three NSFW definitions, the marker lexicon and adapter-call counts.

Reads the interim images table and writes ``data/processed/images.parquet`` = interim columns
+ the ``IMAGE_LABEL_FIELDS`` of :mod:`helpers.schema`.

* **NSFW.** Three boolean definitions side by side (platform flag, level ≥ R, level ≥ X), from
  the encodings in :mod:`helpers.schema` (never re-declared here).
* **Markers.** A versioned lexicon (``resources/lexicon_v2.json``; v1 kept for the record) of booru, Pony, sexual,
  minor-coded and real-person vocabulary. Text is normalised (case, underscores, weights such
  as ``(word:1.2)``, brackets) by the *same* regular expressions in Python and in DuckDB SQL,
  so the 40-million-row image pass is one streamed ``SELECT`` and the small-frame path used by
  tests gives identical labels. Adapter calls (``schema.ADAPTER_CALL_PATTERN``) are counted
  into ``n_lora``.

The lexicon and the normaliser are shared with the model labels (:mod:`.models`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from .. import db, schema
from ..paths import RunPaths
from ..schema import ADAPTER_CALL_PATTERN, MARKER_CATEGORIES, marker_column

LEXICON_VERSION = 2


# --------------------------------------------------------------------------- lexicon
@dataclass(frozen=True)
class Lexicon:
    """A versioned marker lexicon: category -> terms (lower case, as written in the file)."""

    version: int
    categories: Mapping[str, tuple[str, ...]]


def load_lexicon(version: int = LEXICON_VERSION) -> Lexicon:
    """Read ``resources/lexicon_v<version>.json`` shipped with the package and check it."""
    text = resources.files("helpers").joinpath(f"resources/lexicon_v{version}.json").read_text("utf-8")
    data = json.loads(text)
    if data.get("version") != version:
        raise ValueError(f"lexicon_v{version}.json says version {data.get('version')!r}")
    cats = data.get("categories", {})
    missing = [c for c in MARKER_CATEGORIES if not cats.get(c)]
    if missing:
        raise ValueError(f"lexicon_v{version}.json lacks terms for categories {missing}")
    return Lexicon(version=version, categories={c: tuple(cats[c]) for c in MARKER_CATEGORIES})


def lexicon_summary(lexicon: Lexicon | None = None) -> pd.DataFrame:
    """Terms per marker category of the lexicon (counts only: the terms are in the data file)."""
    lexicon = lexicon or load_lexicon()
    return pd.DataFrame([{"category": c, "column": marker_column(c), "terms": len(lexicon.categories[c])}
                         for c in MARKER_CATEGORIES])


# --------------------------------------------------------------------------- normalisation
#: Regex replacements applied in this order, then lower-casing and trimming. Both engines
#: (Python ``re`` and DuckDB's RE2) treat these ASCII-only patterns identically, which is what
#: lets the SQL path and the pandas path agree row for row.
NORMALISE_STEPS: tuple[tuple[str, str], ...] = (
    (r"<[A-Za-z]+:[^<>]*>", " "),            # extra-network calls: their names are not prompt words
    (r":[ \t]*-?[0-9]+(?:\.[0-9]+)?", " "),  # attention weights, e.g. (nude:1.3) -> (nude )
    (r"[^A-Za-z0-9]+", " "),                 # underscores, brackets, punctuation, non-Latin script
)
_NORMALISE_COMPILED = tuple((re.compile(p), r) for p, r in NORMALISE_STEPS)
_ADAPTER_CALL_RE = re.compile(ADAPTER_CALL_PATTERN)
_DIGIT_LETTER_SPACE_RE = re.compile(r"(?<=[0-9]) (?=[a-z])|(?<=[a-z]) (?=[0-9])")
_DIGIT_LETTER_EDGE_RE = re.compile(r"(?<=[0-9])(?=[a-z])|(?<=[a-z])(?=[0-9])")


def normalise_text(text: str | None) -> str | None:
    """Lower-cased text of ASCII letters, digits and single spaces (None stays None)."""
    if text is None:
        return None
    for pattern, repl in _NORMALISE_COMPILED:
        text = pattern.sub(repl, text)
    return text.lower().strip()


def normalised_text_sql(expr: str) -> str:
    """DuckDB expression computing :func:`normalise_text` of the SQL expression ``expr``."""
    out = expr
    for pattern, repl in NORMALISE_STEPS:
        out = f"regexp_replace({out}, {db.sql_literal(pattern)}, {db.sql_literal(repl)}, 'g')"
    return f"trim(lower({out}))"


def term_regex(term: str) -> str:
    """Regex (no anchors) for one lexicon term on normalised text.

    The term is normalised like the text; a digit next to a letter may or may not be
    separated (``1girl`` matches ``1 girl``; ``score 8 up`` matches ``score_8_up``).
    """
    norm = normalise_text(term) or ""
    joined = _DIGIT_LETTER_SPACE_RE.sub("", norm)
    return _DIGIT_LETTER_EDGE_RE.sub(" ?", joined)


def category_regex(terms: Iterable[str]) -> str:
    """Whole-word alternation of the terms of one category (longest first, de-duplicated)."""
    alternatives = sorted({term_regex(t) for t in terms if normalise_text(t)}, key=lambda s: (-len(s), s))
    if not alternatives:
        raise ValueError("a marker category needs at least one term")
    return r"\b(?:" + "|".join(alternatives) + r")\b"


@lru_cache(maxsize=8)
def _compile_categories(categories: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, re.Pattern[str]]:
    return {c: re.compile(category_regex(terms)) for c, terms in categories}


def _compiled_categories(lexicon: Lexicon) -> dict[str, re.Pattern[str]]:
    """Compiled whole-word pattern per category (cached: the same lexicon compiles once)."""
    return _compile_categories(tuple((c, tuple(lexicon.categories[c])) for c in MARKER_CATEGORIES))


def match_markers(text: str | None, lexicon: Lexicon) -> dict[str, bool | None]:
    """Marker categories present in one text (None for every category if the text is None)."""
    norm = normalise_text(text)
    return {c: (None if norm is None else bool(p.search(norm)))
            for c, p in _compiled_categories(lexicon).items()}


def count_adapter_calls(prompt: str | None) -> int | None:
    """Number of ``<lora:…>`` / ``<lyco:…>`` calls in a prompt (None if no prompt)."""
    return None if prompt is None else len(_ADAPTER_CALL_RE.findall(prompt))


def adapter_calls_sql(expr: str) -> str:
    """DuckDB expression computing :func:`count_adapter_calls` of ``expr`` as INTEGER."""
    return f"CAST(len(regexp_extract_all({expr}, {db.sql_literal(ADAPTER_CALL_PATTERN)})) AS INTEGER)"


# --------------------------------------------------------------------------- NSFW definitions
def nsfw_bit(level: object) -> int | None:
    """Highest browsing-level bit of a level name / bitmask (via schema.level_name); None if unknown."""
    name = schema.level_name(level)
    return schema.LEVEL_BITS[name] if name is not None else None


def image_nsfw_sql(level_col: str = "browsing_level", flag_col: str = "nsfw") -> list[str]:
    """SQL select items of the three image NSFW definitions (bits taken from schema.LEVEL_BITS)."""
    return [f"CAST({flag_col} AS BOOLEAN) AS is_nsfw_platform",
            f"({level_col} >= {schema.LEVEL_BITS['R']}) AS is_nsfw_r",
            f"({level_col} >= {schema.LEVEL_BITS['X']}) AS is_nsfw_x"]


# --------------------------------------------------------------------------- images
def image_labels_select_sql(relation: str, lexicon: Lexicon) -> str:
    """``SELECT`` of interim image columns + label columns from ``relation`` (one pass).

    The prompt is normalised once per row in a sub-query; each category is one RE2
    ``regexp_matches`` with a whole-word alternation, so cost is linear in rows and memory
    does not depend on the row count.
    """
    cols = ", ".join(f'"{c.name}"' for c in schema.IMAGES)
    markers = ", ".join(
        f"regexp_matches(_norm, {db.sql_literal(category_regex(lexicon.categories[c]))}) AS {marker_column(c)}"
        for c in MARKER_CATEGORIES)
    nsfw = ", ".join(image_nsfw_sql())
    return (f"SELECT {cols}, {nsfw}, {adapter_calls_sql('prompt')} AS n_lora, {markers} "
            f"FROM (SELECT {cols}, {normalised_text_sql('prompt')} AS _norm FROM {relation})")


def image_labels_of_file_sql(source: Path, lexicon: Lexicon) -> str:
    """:func:`image_labels_select_sql` over one interim images Parquet file."""
    return image_labels_select_sql(db.read_parquet_sql(source), lexicon)


def label_image_frame(images: pd.DataFrame, lexicon: Lexicon | None = None) -> pd.DataFrame:
    """Image label columns for a small frame, identical to the SQL path (used by tests).

    Returns a frame with the same index and exactly the ``IMAGE_LABEL_FIELDS`` columns.
    """
    lexicon = lexicon or load_lexicon()
    level = pd.to_numeric(images["browsing_level"], errors="coerce")
    prompts = images["prompt"].astype(object).where(images["prompt"].notna(), None)
    out = pd.DataFrame(index=images.index)
    out["is_nsfw_platform"] = images["nsfw"].astype("boolean") if "nsfw" in images else pd.NA
    out["is_nsfw_r"] = (level >= schema.LEVEL_BITS["R"]).astype("boolean").where(level.notna())
    out["is_nsfw_x"] = (level >= schema.LEVEL_BITS["X"]).astype("boolean").where(level.notna())
    out["n_lora"] = pd.array([count_adapter_calls(p) for p in prompts], dtype="Int32")
    patterns = _compiled_categories(lexicon)
    normed = [normalise_text(p) for p in prompts]
    for cat, pat in patterns.items():
        out[marker_column(cat)] = pd.array([None if n is None else bool(pat.search(n)) for n in normed],
                                           dtype="boolean")
    return out


def image_label_counts(con, parquet: Path) -> dict[str, Any]:
    """Counts of every image label in a processed file (aggregates only, one SQL pass)."""
    rel = db.read_parquet_sql(parquet)
    items = ["count(*) AS rows", "count(prompt) AS with_prompt",
             "count_if(is_nsfw_platform) AS is_nsfw_platform", "count(is_nsfw_platform) AS has_platform_flag",
             "count_if(is_nsfw_r) AS is_nsfw_r", "count_if(is_nsfw_x) AS is_nsfw_x",
             "count_if(n_lora > 0) AS with_lora", "coalesce(sum(n_lora), 0) AS lora_calls"]
    items += [f"count_if({marker_column(c)}) AS {marker_column(c)}" for c in MARKER_CATEGORIES]
    cur = con.execute(f"SELECT {', '.join(items)} FROM {rel}")
    values = cur.fetchall()[0]
    return {d[0]: int(v or 0) for d, v in zip(cur.description, values)}


def label_images(paths: RunPaths, con=None, lexicon: Lexicon | None = None,
                 memory_limit: str = "3GB") -> dict[str, Any]:
    """Write ``data/processed/images.parquet`` from the interim table in one DuckDB pass.

    Returns label counts for the stage report; ``{"rows": None}`` (and no file) when the run
    has no images table. The file is written under a temporary name and renamed atomically.
    """
    source = paths.table("interim", "images")
    dest = paths.table("processed", "images")
    if not source.exists():
        dest.unlink(missing_ok=True)  # a stale file from an earlier run would mislead later stages
        return {"rows": None}
    schema.validate_file(source, "images", "interim")
    lexicon = lexicon or load_lexicon()
    own = con is None
    con = con or db.connect(paths.tmp, memory_limit=memory_limit)
    try:
        db.stream_query_to_parquet(con, image_labels_of_file_sql(source, lexicon), dest)
        counts = image_label_counts(con, dest)
    finally:
        if own:
            con.close()
    schema.validate_file(dest, "images", "processed")
    return counts

