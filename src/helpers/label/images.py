"""Image labels: the three NSFW definitions, the marker lexicon and adapter-call counts.

Reads the interim images table and writes only the labels: ``data/processed/image_labels.parquet``
(``image_id`` + the ``IMAGE_LABEL_FIELDS`` of :mod:`helpers.schema`, row for row the interim table)
and the processed images table as a stored view of both (``images.view.json``, read through
:func:`helpers.db.table_sql`). Each distinct prompt of a batch is labelled once.

* **NSFW.** Three boolean definitions side by side (platform flag, level ≥ R, level ≥ X), from
  the encodings in :mod:`helpers.schema` (never re-declared here).
* **Markers.** A versioned lexicon (``resources/lexicon_v2.json``; v1 kept for the record) of booru, Pony, sexual,
  minor-coded and real-person vocabulary. The *reference* definition normalises the text
  (:data:`NORMALISE_STEPS`: adapter calls and weights such as ``(word:1.2)`` removed, every
  other non-alphanumeric run one space, lower case) and matches each term as whole words
  (:func:`match_markers_reference`). The study runs an equivalent that skips most of that
  pass: only the adapter-call and weight steps (:data:`LIGHT_STEPS`), then patterns compiled
  from the lexicon for that lightly normalised text (:func:`light_category_regex`). The same
  patterns run in Python and in DuckDB SQL, so the 40-million-row image pass is one streamed
  ``SELECT`` and the small-frame path used by tests gives identical labels; tests prove both
  equal to the reference. Adapter calls (``schema.ADAPTER_CALL_PATTERN``) are counted into
  ``n_lora``.

The lexicon and the normaliser are shared with the model labels (:mod:`.models`).
"""
from __future__ import annotations

import json
import os
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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


@lru_cache(maxsize=16)
def _compile(build: Callable[[Iterable[str]], str],
             categories: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, re.Pattern[str]]:
    return {c: re.compile(build(terms)) for c, terms in categories}


def _compiled(build: Callable[[Iterable[str]], str], lexicon: Lexicon) -> dict[str, re.Pattern[str]]:
    """The pattern ``build`` makes of each category, compiled (cached: a lexicon compiles once)."""
    return _compile(build, tuple((c, tuple(t)) for c, t in lexicon.categories.items()))


def _compiled_categories(lexicon: Lexicon) -> dict[str, re.Pattern[str]]:
    """Compiled whole-word pattern per category."""
    return _compiled(category_regex, lexicon)


def match_markers_reference(text: str | None, lexicon: Lexicon) -> dict[str, bool | None]:
    """The reference definition of the markers: normalise the whole text, then match whole words.

    Kept as the oracle that :func:`match_markers` (the fast path the study runs) is tested
    against; model tags are still matched this way (:mod:`.models`).
    """
    norm = normalise_text(text)
    return {c: (None if norm is None else bool(p.search(norm)))
            for c, p in _compiled_categories(lexicon).items()}


# --------------------------------------------------------------------------- matching lightly normalised text
#: The steps of ``NORMALISE_STEPS`` still applied before matching: they delete digits and names
#: (weights, adapter calls), so no pattern can stand in for them. The rest of the normalisation
#: (every other non-alphanumeric run becomes one space, then lower case) is folded into the
#: patterns by :func:`light_term_regex`, which saves the costliest regex pass over every prompt.
LIGHT_STEPS: tuple[tuple[str, str], ...] = NORMALISE_STEPS[:2]
_LIGHT_COMPILED = tuple((re.compile(p), r) for p, r in LIGHT_STEPS)
#: One separator character: whatever the full normalisation turns into a space.
_SEPARATOR = "[^A-Za-z0-9]"


def light_text(text: str | None) -> str | None:
    """The text after only the :data:`LIGHT_STEPS` (None stays None)."""
    if text is None:
        return None
    for pattern, repl in _LIGHT_COMPILED:
        text = pattern.sub(repl, text)
    return text


def light_text_sql(expr: str) -> str:
    """DuckDB expression computing :func:`light_text` of the SQL expression ``expr``."""
    out = expr
    for pattern, repl in LIGHT_STEPS:
        out = f"regexp_replace({out}, {db.sql_literal(pattern)}, {db.sql_literal(repl)}, 'g')"
    return out


def light_term_regex(term: str) -> str:
    """Regex for one lexicon term on lightly normalised text, equivalent to :func:`term_regex`
    on fully normalised text.

    Translated from the reference alternative: a letter becomes an explicit ``[xX]`` class (a
    case-insensitive flag would also match the Kelvin sign or a dotted capital I, which the
    reference turns into separators), a space becomes a run of separators, and the optional
    space between a digit and a letter an optional run.
    """
    reference = term_regex(term)
    out: list[str] = []
    i = 0
    while i < len(reference):
        ch = reference[i]
        if reference.startswith(" ?", i):
            out.append(_SEPARATOR + "*")
            i += 2
            continue
        if ch == " ":
            out.append(_SEPARATOR + "+")
        elif "a" <= ch <= "z":
            out.append(f"[{ch}{ch.upper()}]")
        elif "0" <= ch <= "9":
            out.append(ch)
        else:  # term_regex only yields lower-case ASCII letters, digits, spaces and " ?"
            raise ValueError(f"unexpected character {ch!r} in the reference pattern of {term!r}")
        i += 1
    return "".join(out)


def light_category_regex(terms: Iterable[str]) -> str:
    """Alternation of the terms of one category on lightly normalised text, bounded by a
    separator or the text's edge on both sides (what ``\\b`` is on normalised text; written
    out because ``\\b`` counts accented letters as word characters)."""
    alternatives = sorted({light_term_regex(t) for t in terms if normalise_text(t)},
                          key=lambda s: (-len(s), s))
    if not alternatives:
        raise ValueError("a marker category needs at least one term")
    return f"(?:^|{_SEPARATOR})(?:" + "|".join(alternatives) + f")(?:{_SEPARATOR}|$)"


def light_category_patterns(lexicon: Lexicon) -> dict[str, str]:
    """Category -> :func:`light_category_regex`, for every category the lexicon holds."""
    return {c: light_category_regex(terms) for c, terms in lexicon.categories.items()}


def _compiled_light(lexicon: Lexicon) -> dict[str, re.Pattern[str]]:
    """Compiled light pattern per category."""
    return _compiled(light_category_regex, lexicon)


def match_markers(text: str | None, lexicon: Lexicon) -> dict[str, bool | None]:
    """Marker categories present in one text (None for every category if the text is None).

    Matches the light patterns on :func:`light_text`; equal to :func:`match_markers_reference`
    by construction and by test.
    """
    light = light_text(text)
    return {c: (None if light is None else bool(p.search(light)))
            for c, p in _compiled_light(lexicon).items()}


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

    The prompt goes through the :data:`LIGHT_STEPS` once per row in a sub-query; each category
    is one RE2 ``regexp_matches`` of its light pattern (:func:`light_category_regex`), so cost
    is linear in rows and memory does not depend on the row count.
    """
    cols = ", ".join(f'"{c.name}"' for c in schema.IMAGES)
    return (f"SELECT {cols}, {image_label_items_sql(lexicon, 'prompt', '_light')} "
            f"FROM (SELECT {cols}, {light_text_sql('prompt')} AS _light FROM {relation})")


def prompt_label_items_sql(lexicon: Lexicon, prompt: str = "prompt", light: str = "_light") -> str:
    """The prompt-only label select items (``n_lora``, markers) given the prompt column and its
    :func:`light_text_sql` column."""
    markers = ", ".join(f"regexp_matches({light}, {db.sql_literal(p)}) AS {marker_column(c)}"
                        for c, p in light_category_patterns(lexicon).items())
    return f"{adapter_calls_sql(prompt)} AS n_lora, {markers}"


def image_label_items_sql(lexicon: Lexicon, prompt: str = "prompt", light: str = "_light") -> str:
    """The label select items (NSFW definitions, ``n_lora``, markers) given the prompt column and
    its :func:`light_text_sql` column."""
    return f"{', '.join(image_nsfw_sql())}, {prompt_label_items_sql(lexicon, prompt, light)}"


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
    light = [light_text(p) for p in prompts]
    for cat, pat in _compiled_light(lexicon).items():
        out[marker_column(cat)] = pd.array([None if t is None else bool(pat.search(t)) for t in light],
                                           dtype="boolean")
    return out


def image_label_counts(con, table: Path) -> dict[str, Any]:
    """Counts of every image label in a table holding the label columns (the narrow labels file
    or the processed images), aggregates only, one SQL pass. A prompt is there exactly when its
    adapter calls were counted, so ``count(n_lora)`` counts the prompts."""
    rel = db.table_sql(table)
    items = ["count(*) AS rows", "count(n_lora) AS with_prompt",
             "count_if(is_nsfw_platform) AS is_nsfw_platform", "count(is_nsfw_platform) AS has_platform_flag",
             "count_if(is_nsfw_r) AS is_nsfw_r", "count_if(is_nsfw_x) AS is_nsfw_x",
             "count_if(n_lora > 0) AS with_lora", "coalesce(sum(n_lora), 0) AS lora_calls"]
    items += [f"count_if({marker_column(c)}) AS {marker_column(c)}" for c in MARKER_CATEGORIES]
    cur = con.execute(f"SELECT {', '.join(items)} FROM {rel}")
    values = cur.fetchall()[0]
    return {d[0]: int(v or 0) for d, v in zip(cur.description, values)}


#: Image rows labelled per batch: each batch's distinct prompts are labelled once, so memory
#: holds one batch's prompts whatever the table's size.
LABEL_BATCH_ROWS = 250_000


def prompt_labels_sql(relation: str, lexicon: Lexicon, prompt: str = "prompt") -> str:
    """``SELECT`` of the prompt-only labels (``n_lora`` and the markers) of every row of ``relation``
    (in its order): the same expressions as :func:`image_label_items_sql`."""
    return (f"SELECT {prompt_label_items_sql(lexicon, prompt)} "
            f"FROM (SELECT {prompt}, {light_text_sql(prompt)} AS _light FROM {relation})")


def label_batch(con, batch: pa.RecordBatch, lexicon: Lexicon) -> pa.RecordBatch:
    """The label columns (``image_id`` first, then ``IMAGE_LABEL_FIELDS``) of one batch of interim
    images with ``image_id``, ``nsfw``, ``browsing_level`` and ``prompt``.

    The prompts are dictionary-encoded and each distinct prompt labelled once in DuckDB, then the
    labels are taken back to the rows: identical to labelling every row (test), cheaper because
    prompts repeat.
    """
    encoded = pc.dictionary_encode(batch.column("prompt"))
    con.register("_batch", pa.table({"nsfw": batch.column("nsfw"),
                                      "browsing_level": batch.column("browsing_level")}))
    con.register("_prompts", pa.table({"prompt": encoded.dictionary}))
    try:
        rowwise = con.sql(f"SELECT {', '.join(image_nsfw_sql())} FROM _batch").to_arrow_table()
        distinct = con.sql(prompt_labels_sql("_prompts", lexicon)).to_arrow_table()
    finally:
        con.unregister("_batch")
        con.unregister("_prompts")
    columns = {"image_id": batch.column("image_id")}
    columns.update({name: rowwise.column(name).combine_chunks() for name in rowwise.column_names})
    columns.update({name: pc.take(distinct.column(name).combine_chunks(), encoded.indices)
                    for name in distinct.column_names})
    out = image_labels_schema()
    return pa.RecordBatch.from_arrays([columns[f.name].cast(f.type) for f in out], schema=out)


#: Interim columns the labels are computed from.
LABEL_INPUT_COLUMNS: tuple[str, ...] = ("image_id", "nsfw", "browsing_level", "prompt")


def image_label_batches(con, source: Path, lexicon: Lexicon, batch_rows: int = LABEL_BATCH_ROWS,
                        workers: int = 2) -> Iterator[pa.RecordBatch]:
    """The label batches of the interim images file ``source``, in its row order.

    ``workers`` batches are labelled at once, each on its own cursor of ``con`` (a query over one
    Arrow batch runs on about one core); at most ``workers`` + 1 batches are held in memory.
    """
    batches = pq.ParquetFile(source).iter_batches(batch_rows, columns=list(LABEL_INPUT_COLUMNS))
    cursors = [con.cursor() for _ in range(max(1, workers))]
    free = list(cursors)
    try:
        with ThreadPoolExecutor(max_workers=len(cursors)) as pool:
            pending: deque = deque()
            for batch in batches:
                if not free:
                    done, cursor = pending.popleft()
                    yield done.result()
                    free.append(cursor)
                cursor = free.pop()
                pending.append((pool.submit(label_batch, cursor, batch, lexicon), cursor))
            while pending:
                yield pending.popleft()[0].result()
    finally:
        for cursor in cursors:
            cursor.close()


def image_labels_schema() -> pa.Schema:
    """Schema of the narrow image labels table: ``image_id`` then ``IMAGE_LABEL_FIELDS``."""
    id_type = schema.arrow_schema("images", "interim").field("image_id").type
    return pa.schema([pa.field("image_id", id_type), *schema.IMAGE_LABEL_FIELDS])


def processed_images_view(paths: RunPaths) -> dict[str, Any]:
    """The processed images table as a view: the interim images and their labels side by side."""
    processed = paths.table("processed", "images").parent
    return {"kind": "positional",
            "parts": [{"path": os.path.relpath(paths.table("interim", "images"), processed)},
                      {"path": os.path.relpath(paths.image_labels, processed), "exclude": ["image_id"]}]}


def check_aligned(con, paths: RunPaths) -> int:
    """Rows of the processed images view; raises if the labels are not row for row the interim
    images (a bug: the labels file is written in the interim file's order)."""
    interim = db.read_parquet_sql(paths.table("interim", "images"))
    labels = db.read_parquet_sql(paths.image_labels)
    n, n_labels, misaligned = con.execute(
        f"SELECT count(*), (SELECT count(*) FROM {labels}), count_if(a.image_id IS DISTINCT FROM b.image_id) "
        f"FROM (SELECT image_id FROM {interim}) a POSITIONAL JOIN (SELECT image_id FROM {labels}) b").fetchone()
    if misaligned or n != n_labels:
        raise RuntimeError(f"image labels are not aligned with the interim images ({n:,} images, "
                           f"{n_labels:,} label rows, {misaligned:,} ids differ); this is a bug, please report it")
    return int(n)


def label_images(paths: RunPaths, con=None, lexicon: Lexicon | None = None,
                 memory_limit: str = "3GB", batch_rows: int = LABEL_BATCH_ROWS) -> dict[str, Any]:
    """Label the interim images: ``data/processed/image_labels.parquet`` (``image_id`` + the label
    columns, row for row the interim table) and ``data/processed/images.view.json``, the processed
    images table as a view of both (read with :func:`helpers.db.table_sql`). Only the label
    columns are written: the image columns are not copied again.

    Returns label counts for the stage report; ``{"rows": None}`` (and no table) when the run
    has no images table. Files are written under temporary names and renamed atomically.
    """
    source = paths.table("interim", "images")
    dest = paths.table("processed", "images")
    if not db.table_exists(source):
        db.remove_table(dest)  # a stale table from an earlier run would mislead later stages
        paths.image_labels.unlink(missing_ok=True)
        return {"rows": None}
    schema.validate_file(source, "images", "interim")
    lexicon = lexicon or load_lexicon()
    own = con is None
    con = con or db.connect(paths.tmp, memory_limit=memory_limit)
    try:
        db.write_parquet_atomic(image_label_batches(con, source, lexicon, batch_rows), paths.image_labels,
                                image_labels_schema(), store_schema=False)
        db.write_view(dest, processed_images_view(paths))
        check_aligned(con, paths)
        counts = image_label_counts(con, paths.image_labels)
    finally:
        if own:
            con.close()
    schema.validate_file(dest, "images", "processed")
    return counts
