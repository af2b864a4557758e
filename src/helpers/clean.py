"""Cleaning: raw canonical tables → typed, de-duplicated interim tables, nothing lost silently.

Every row of ``data/raw/<table>.parquet`` ends in exactly one of

* ``data/interim/<table>.parquet`` (typed, canonical schema, one row per id), possibly with
  *repairs* (a bad optional value set to null, an empty prompt set to null, HTML stripped),
  each counted by reason; or
* ``data/quarantine/<table>.parquet`` (the raw row as it came, plus ``reason``).

The work runs as DuckDB SQL over Parquet, so memory stays bounded whatever the row count:
a narrow pass over the id, time and level columns finds every reason but duplicates, then
(for a table in id order but for repeated ids) one wide pass streams the kept rows into the
interim file and sets the few others aside with their raw values for the quarantine.
Parsing rules (levels, flags, counts, timestamps) are built once here from the encodings in
:mod:`helpers.schema` and used for both tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import db, schema
from .db import read_parquet_sql, sql_identifier, sql_literal, stream_query_to_parquet, table_sql
from .parameters import default
from .paths import RunPaths
from .sources import strip_html

#: Longest prompt kept whole; longer ones (pasted garbage, attacks) are truncated and counted.
MAX_PROMPT_CHARS = 20_000

IMAGE_COUNTS = ("like_count", "heart_count", "laugh_count", "cry_count", "comment_count")
MODEL_COUNTS = ("download_count", "favorite_count", "comment_count", "rating_count")


class CleaningError(RuntimeError):
    """Cleaning cannot proceed (e.g. rows would be lost); the message says why and what to do."""


@dataclass(frozen=True)
class Window:
    """The study's time window, inclusive, as ISO dates (UTC)."""

    start: str = field(default_factory=lambda: default("window_start"))
    end: str = field(default_factory=lambda: default("window_end"))

    def __post_init__(self) -> None:
        import datetime as dt

        try:
            start = dt.date.fromisoformat(self.start)
            end = dt.date.fromisoformat(self.end)
        except ValueError as exc:
            raise CleaningError(f"window dates must be YYYY-MM-DD: {exc}") from exc
        if start > end:
            raise CleaningError(f"window_start {self.start} is after window_end {self.end}")
        if start < dt.date.fromisoformat(schema.PLATFORM_START):
            raise CleaningError(f"window_start {self.start} is before CivitAI existed "
                                f"({schema.PLATFORM_START}); use a later date")


# --------------------------------------------------------------------------- SQL builders
def level_bit_sql(expr: str) -> str:
    """SQL giving the browsing-level bit (1…32) of a raw level (bits, bitmask or name), else NULL.

    A bitmask is named by its highest level, as :func:`helpers.schema.level_name` does.
    """
    # The number is spelled out in each branch rather than bound in a scalar sub-query: DuckDB
    # plans such a sub-query as a join that materialises every column of the input (prompts
    # included), which held the whole table in memory and tripled the cleaning time.
    v = f"TRY_CAST(TRY_CAST(trim({expr}) AS DOUBLE) AS BIGINT)"
    # Each mask's level looked up in a list (the number is parsed twice, not once per level).
    highest = [next((bit for bit in sorted(schema.BROWSING_LEVELS, reverse=True) if mask & bit), None)
               for mask in range(1, 64)]
    by_mask = "[" + ", ".join("NULL" if bit is None else str(bit) for bit in highest) + "]"
    by_name = " ".join(f"WHEN {sql_literal(name)} THEN {bit}" for name, bit in schema.LEVEL_SPELLINGS.items())
    return (f"(CASE WHEN {expr} IS NULL THEN NULL "
            f"WHEN regexp_full_match(trim({expr}), '[0-9]+(\\.0+)?') THEN "
            f"(CASE WHEN {v} BETWEEN 1 AND 63 THEN {by_mask}[{v}] END) "
            f"ELSE (CASE lower(trim({expr})) {by_name} END) END)")


def level_name_sql(bit_expr: str) -> str:
    """SQL giving the level name (PG … Blocked) of a level bit."""
    cases = " ".join(f"WHEN {bit} THEN {sql_literal(name)}" for bit, name in schema.BROWSING_LEVELS.items())
    return f"(CASE {bit_expr} {cases} END)"


def flag_sql(expr: str) -> str:
    """SQL giving TRUE/FALSE for a raw boolean spelling, NULL for anything else."""
    trues = ", ".join(sql_literal(t) for t in schema.TRUE_SPELLINGS)
    falses = ", ".join(sql_literal(f) for f in schema.FALSE_SPELLINGS)
    return (f"(CASE WHEN lower(trim({expr})) IN ({trues}) THEN TRUE "
            f"WHEN lower(trim({expr})) IN ({falses}) THEN FALSE END)")


def count_sql(expr: str) -> str:
    """SQL giving a non-negative whole count, NULL when absent, non-numeric or negative."""
    return (f"(CASE WHEN TRY_CAST({expr} AS DOUBLE) >= 0 "
            f"AND TRY_CAST({expr} AS DOUBLE) = floor(TRY_CAST({expr} AS DOUBLE)) "
            f"THEN CAST(TRY_CAST({expr} AS DOUBLE) AS BIGINT) END)")


def count_problem_sql(expr: str) -> str:
    """SQL naming what is wrong with a present count ('negative' / 'non_numeric'), else NULL."""
    return (f"(CASE WHEN {expr} IS NULL OR trim({expr}) = '' THEN NULL "
            f"WHEN TRY_CAST({expr} AS DOUBLE) IS NULL THEN 'non_numeric' "
            f"WHEN TRY_CAST({expr} AS DOUBLE) < 0 THEN 'negative' "
            f"WHEN TRY_CAST({expr} AS DOUBLE) <> floor(TRY_CAST({expr} AS DOUBLE)) THEN 'non_numeric' END)")


def timestamp_sql(expr: str) -> str:
    """SQL parsing ISO-8601 text (any offset) or epoch seconds/milliseconds to UTC TIMESTAMPTZ."""
    # Text with a '-' is no epoch number: it goes straight to the ISO parse, skipping the regexes.
    return (f"(CASE WHEN {expr} IS NULL THEN NULL "
            f"WHEN strpos({expr}, '-') > 0 THEN TRY_CAST(trim({expr}) AS TIMESTAMPTZ) "
            f"WHEN regexp_full_match(trim({expr}), '[0-9]{{12,13}}') THEN "
            f"to_timestamp(TRY_CAST(trim({expr}) AS BIGINT) / 1000.0) "
            f"WHEN regexp_full_match(trim({expr}), '[0-9]{{9,11}}') THEN "
            f"to_timestamp(TRY_CAST(trim({expr}) AS BIGINT)) "
            f"ELSE TRY_CAST(trim({expr}) AS TIMESTAMPTZ) END)")


def id_sql(expr: str) -> str:
    """SQL giving a positive integer id, else NULL; ``12.0`` (a CSV written from floats) is 12."""
    whole = f"split_part(trim({expr}), '.', 1)"
    return (f"(CASE WHEN regexp_full_match(trim({expr}), '[0-9]{{1,18}}(\\.0+)?') "
            f"AND TRY_CAST({whole} AS BIGINT) > 0 THEN TRY_CAST({whole} AS BIGINT) END)")


def nonempty_sql(expr: str) -> str:
    return f"NULLIF(trim({expr}), '')"


def _window_reason_sql(ts: str, raw: str, window: Window) -> str:
    return (f"CASE WHEN {raw} IS NULL OR trim({raw}) = '' THEN 'missing_created_at' "
            f"WHEN {ts} IS NULL THEN 'unparseable_created_at' "
            f"WHEN {ts} < TIMESTAMPTZ {sql_literal(window.start + ' 00:00:00+00')} THEN 'created_at_before_window' "
            f"WHEN {ts} >= TIMESTAMPTZ {sql_literal(window.end + ' 00:00:00+00')} + INTERVAL 1 DAY "
            f"THEN 'created_at_after_window' END")


def raw_rows_sql(raw: Path) -> str:
    """The raw table with each row's position in it as ``_row`` (its stable identity)."""
    return table_sql(raw, row_numbers=True)


def duplicate_reasons_sql(keys: str, raw_rows: str, content_sql: str,
                          suspect_ids: str | None = None) -> str:
    """``(_row, reason)`` of every repeated id after its first row: exact or conflicting duplicate.

    ``keys`` holds ``_row, p_id, pre_reason`` of every raw row. Among rows with no other
    problem, the first occurrence of an id (in file order) is kept; a later one is an exact
    duplicate when its content hash equals the first row's, else a conflict. ``suspect_ids``,
    if given, names a relation whose ``p_id`` include every repeated id (see
    :func:`out_of_order_ids`), so only those are counted instead of every id. Only rows of ids
    that occur more than once are read back from ``raw_rows`` and hashed, so the window sorts a
    few narrow rows instead of the whole table with its prompt text.
    """
    only_suspects = "" if suspect_ids is None else f"AND p_id IN (SELECT p_id FROM {suspect_ids})"
    return f"""
    WITH considered AS (
        SELECT _row, p_id FROM {keys} WHERE pre_reason IS NULL {only_suspects}
    ), repeated AS (
        SELECT p_id FROM considered GROUP BY p_id HAVING count(*) > 1
    ), candidate_rows AS (
        SELECT _row, p_id FROM considered WHERE p_id IN (SELECT p_id FROM repeated)
    ), candidates AS (
        SELECT c._row, c.p_id, {content_sql} AS _content
        FROM candidate_rows c JOIN {raw_rows} r ON r._row = c._row
    ), ranked AS (
        SELECT _row, _content, row_number() OVER w AS _rank,
               first_value(_content) OVER w AS _first_content
        FROM candidates WINDOW w AS (PARTITION BY p_id ORDER BY _row)
    )
    SELECT _row, CASE WHEN _content = _first_content THEN 'duplicate_id_exact'
                      ELSE 'duplicate_id_conflict' END AS reason
    FROM ranked WHERE _rank > 1
    """


# --------------------------------------------------------------------------- images
def images_parse_sql(raw: Path, window: Window) -> str:
    """SELECT of raw image rows with parsed values and ``pre_reason`` (every reason but duplicates).

    It streams (no operator needs more than a batch of rows), so memory does not grow with the
    table; duplicates are found afterwards on a narrow projection (:func:`duplicate_reasons_sql`).
    """
    counts = ",\n".join(f"{count_sql(c)} AS p_{c}, {count_problem_sql(c)} AS x_{c}" for c in IMAGE_COUNTS)
    level = f"COALESCE({level_bit_sql('browsing_level')}, {level_bit_sql('nsfw_level')}, " \
            f"CASE WHEN {flag_sql('nsfw')} IS NULL THEN {level_bit_sql('nsfw')} END)"
    return f"""
    WITH src AS (SELECT * FROM {raw_rows_sql(raw)}
    ), parsed AS (
        SELECT src.*,
            {id_sql('image_id')} AS p_id,
            {timestamp_sql('created_at')} AS p_ts,
            {level} AS p_level,
            {flag_sql('nsfw')} AS p_nsfw,
            {counts},
            {id_sql('model_id')} AS p_model_id
        FROM src
    ), reasons AS (
        SELECT parsed.*,
            CASE WHEN image_id IS NULL OR trim(image_id) = '' THEN 'missing_id'
                 WHEN p_id IS NULL THEN 'invalid_id'
                 ELSE COALESCE({_window_reason_sql('p_ts', 'created_at', window)},
                    CASE WHEN p_level IS NULL AND browsing_level IS NULL AND nsfw_level IS NULL
                              AND (nsfw IS NULL OR {flag_sql('nsfw')} IS NOT NULL) THEN 'missing_level'
                         WHEN p_level IS NULL THEN 'invalid_level' END)
            END AS pre_reason
        FROM parsed
    )
    SELECT * FROM reasons"""


def content_hash_sql(columns: Iterable[str]) -> str:
    """SQL hash of a raw row's content: tells an exact duplicate from a conflicting one.

    The columns are serialised as one JSON object, so a NULL stays distinct from an empty or
    shifted value (``concat_ws`` skips NULLs: two rows whose values moved between nullable
    columns would hash alike) and a separator inside a value cannot fake a column boundary.
    """
    fields = ", ".join(f"{sql_identifier(c)} := {sql_identifier(c)}" for c in columns)
    return f"md5(CAST(to_json(struct_pack({fields})) AS VARCHAR))"


def images_content_sql() -> str:
    """Content hash of a raw image row (every canonical column)."""
    return content_hash_sql(c.name for c in schema.IMAGES)


def visible_start_sql(expr: str) -> str:
    """SQL true when text starts with a printable ASCII character (not a space): it is not
    empty after trimming, so the costlier trim (a copy of the text) can be skipped."""
    return f"(ascii({expr}) BETWEEN 33 AND 126)"


def images_clean_select() -> str:
    """SELECT turning parsed rows into the canonical interim images columns."""
    reactions = " + ".join(f"COALESCE(p_{c}, 0)" for c in IMAGE_COUNTS if c != "comment_count")
    any_reaction = " OR ".join(f"p_{c} IS NOT NULL" for c in IMAGE_COUNTS if c != "comment_count")
    return f"""
        p_id AS image_id,
        p_ts AS created_at,
        CAST(p_level AS SMALLINT) AS browsing_level,
        {level_name_sql('p_level')} AS nsfw_level,
        p_nsfw AS nsfw,
        CASE WHEN {visible_start_sql('prompt')} AND strlen(prompt) <= {MAX_PROMPT_CHARS} THEN prompt
             WHEN length(trim(prompt)) = 0 THEN NULL
             ELSE left(prompt, {MAX_PROMPT_CHARS}) END AS prompt,
        {nonempty_sql('negative_prompt')} AS negative_prompt,
        {", ".join(f"p_{c} AS {c}" for c in IMAGE_COUNTS)},
        CASE WHEN {any_reaction} THEN {reactions}
             ELSE {count_sql('reaction_count')} END AS reaction_count,
        {nonempty_sql('user_hash')} AS user_hash,
        {nonempty_sql('base_model')} AS base_model,
        p_model_id AS model_id,
        list_filter(resources, lambda x: x IS NOT NULL AND trim(x) <> '') AS resources,
        {nonempty_sql('url')} AS url
    """


def images_repairs_sql() -> dict[str, str]:
    """Each kind of repair among kept image rows: name → SQL condition true on a repaired row."""
    repairs = {
        "empty_prompt_set_null": f"CASE WHEN {visible_start_sql('prompt')} THEN FALSE "
                                 f"ELSE prompt IS NOT NULL AND length(trim(prompt)) = 0 END",
        # Fewer bytes than the limit: fewer characters too, no need to count them.
        "prompt_truncated": f"CASE WHEN strlen(prompt) > {MAX_PROMPT_CHARS} "
                            f"THEN length(prompt) > {MAX_PROMPT_CHARS} ELSE FALSE END",
        "prompt_missing": "prompt IS NULL",
        "nsfw_flag_unrecognised_set_null":
            f"CASE WHEN nsfw IS NOT NULL AND p_nsfw IS NULL THEN {level_bit_sql('nsfw')} IS NULL "
            f"ELSE FALSE END",
        "model_id_invalid_set_null": "model_id IS NOT NULL AND trim(model_id) <> '' AND p_model_id IS NULL",
    }
    for c in IMAGE_COUNTS:
        repairs[f"{c}_negative_set_null"] = f"x_{c} = 'negative'"
        repairs[f"{c}_non_numeric_set_null"] = f"x_{c} = 'non_numeric'"
    return repairs


# --------------------------------------------------------------------------- models
def models_parse_sql(raw: Path, window: Window) -> str:
    """SELECT of raw model rows with parsed values and ``pre_reason`` (every reason but duplicates)."""
    counts = ",\n".join(f"{count_sql(c)} AS p_{c}, {count_problem_sql(c)} AS x_{c}" for c in MODEL_COUNTS)
    return f"""
    WITH src AS (SELECT * FROM {raw_rows_sql(raw)}
    ), parsed AS (
        SELECT src.*,
            {id_sql('model_id')} AS p_id,
            {timestamp_sql('created_at')} AS p_ts,
            {level_bit_sql('nsfw_level')} AS p_level,
            {flag_sql('nsfw')} AS p_nsfw,
            {flag_sql('poi')} AS p_poi,
            {counts},
            CASE WHEN TRY_CAST(rating AS DOUBLE) BETWEEN 0 AND 5 THEN TRY_CAST(rating AS DOUBLE) END AS p_rating,
            CASE WHEN TRY_CAST(n_versions AS INTEGER) >= 0 THEN TRY_CAST(n_versions AS INTEGER) END AS p_versions,
            NULLIF(trim(strip_html(name)), '') AS p_name
        FROM src
    ), reasons AS (
        SELECT parsed.*,
            CASE WHEN model_id IS NULL OR trim(model_id) = '' THEN 'missing_id'
                 WHEN p_id IS NULL THEN 'invalid_id'
                 WHEN p_name IS NULL THEN 'missing_name'
                 WHEN type IS NULL OR trim(type) = '' THEN 'missing_type'
                 ELSE {_window_reason_sql('p_ts', 'created_at', window)}
            END AS pre_reason
        FROM parsed
    )
    SELECT * FROM reasons"""


def distinct_names_sql(column: str) -> str:
    """A list of names trimmed, without empty entries or repeats, in first-seen order."""
    return (f"list_distinct_ordered(list_filter(list_transform({column}, lambda t: trim(t)), "
            f"lambda t: t IS NOT NULL AND t <> ''))")


def models_content_sql() -> str:
    """Content hash of a raw model row (every canonical column)."""
    return content_hash_sql(c.name for c in schema.MODELS)


def models_clean_select() -> str:
    """SELECT turning parsed model rows into the canonical interim models columns."""
    return f"""
        p_id AS model_id,
        p_name AS name,
        trim(type) AS type,
        p_nsfw AS nsfw,
        {level_name_sql('p_level')} AS nsfw_level,
        p_poi AS poi,
        list_distinct_ordered(list_filter(list_transform(tags, lambda t: lower(trim(t))), lambda t: t IS NOT NULL AND t <> '')) AS tags,
        NULLIF(strip_html(description), '') AS description,
        {distinct_names_sql('trigger_words')} AS trigger_words,
        {nonempty_sql('creator_hash')} AS creator_hash,
        p_ts AS created_at,
        {nonempty_sql('base_model')} AS base_model,
        {", ".join(f"p_{c} AS {c}" for c in MODEL_COUNTS)},
        p_rating AS rating,
        p_versions AS n_versions,
        {distinct_names_sql('version_names')} AS version_names,
        {distinct_names_sql('file_names')} AS file_names
    """


def models_repairs_sql() -> dict[str, str]:
    """Each kind of repair among kept model rows: name → SQL condition true on a repaired row."""
    repairs = {
        "html_in_name_stripped": "name IS NOT NULL AND name <> strip_html(name)",
        "nsfw_level_invalid_set_null": "nsfw_level IS NOT NULL AND p_level IS NULL",
        "nsfw_flag_unrecognised_set_null": "nsfw IS NOT NULL AND p_nsfw IS NULL",
        "poi_unrecognised_set_null": "poi IS NOT NULL AND p_poi IS NULL",
        "rating_invalid_set_null": "rating IS NOT NULL AND p_rating IS NULL",
    }
    for c in MODEL_COUNTS:
        repairs[f"{c}_negative_set_null"] = f"x_{c} = 'negative'"
        repairs[f"{c}_non_numeric_set_null"] = f"x_{c} = 'non_numeric'"
    return repairs


# --------------------------------------------------------------------------- running
def _strip_html_udf(values: pa.Array) -> pa.Array:
    return pa.array([strip_html(v) for v in values.to_pylist()], type=pa.string())


def register_udfs(con: duckdb.DuckDBPyConnection) -> None:
    """Register the HTML stripper (Python, vectorised over Arrow) and list helpers."""
    # De-duplicate a list keeping first occurrences (list_distinct does not keep order).
    con.execute("CREATE OR REPLACE MACRO list_distinct_ordered(l) AS "
                "list_filter(l, lambda x, i: list_position(l, x) = i)")
    varchar = duckdb.sqltypes.VARCHAR if hasattr(duckdb, "sqltypes") else duckdb.typing.VARCHAR
    con.create_function("strip_html", _strip_html_udf, [varchar], varchar, type="arrow",
                        null_handling="special")


#: The kept rows: no problem found while parsing and not a later copy of a repeated id.
KEPT_ROWS = "pre_reason IS NULL AND _row NOT IN (SELECT _row FROM duplicate_rows)"


def without_rows(rows: pa.Array, column: str = "_row") -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """A batch transform dropping the rows whose ``column`` is in ``rows``, then ``column``.

    Excludes the later copies of repeated ids while the kept rows stream out in file order:
    a hash lookup per row, where an SQL anti-join would not keep the order (DuckDB does not
    promise it for joins, and it did reorder rows here) and an in-line list costs its length
    for every row.
    """
    def transform(batch: pa.RecordBatch) -> pa.RecordBatch:
        keep = pc.invert(pc.is_in(batch.column(column), value_set=rows))
        return batch.filter(keep).drop_columns([column])

    return transform


#: Above this many out-of-order rows the file is taken as unsorted: GROUP BY every id, then sort.
MAX_OUT_OF_ORDER_ROWS = 1_000_000


def out_of_order_ids(con: duckdb.DuckDBPyConnection, keys: str, max_rows: int | None = None,
                     batch_rows: int = 100_000) -> pa.Array | None:
    """Ids of the rows (parsed, no problem found) that are not above every id before them in
    file order; ``None`` when there are more than ``max_rows`` (the file is not sorted by id).

    The later copy of a repeated id is always among them (its first copy came before it), so
    duplicates are looked for among these ids only: a ``GROUP BY`` over every id held a hash
    table that grew with the table (see benchmarks/README.md). And when every such
    row turns out to be a later copy, the kept rows are already in increasing id order. The
    narrow columns stream past in file order with only the running maximum carried over.
    """
    max_rows = MAX_OUT_OF_ORDER_ROWS if max_rows is None else max_rows
    reader = con.sql(f"SELECT p_id FROM {keys} WHERE pre_reason IS NULL").to_arrow_reader(batch_rows)
    found: list[pa.Array] = []
    n_found = 0
    running_max: int | None = None
    for batch in reader:
        ids = batch.column("p_id")  # never null: a missing or invalid id is a pre_reason
        if len(ids) == 0:
            continue
        floor = ids[0].as_py() - 1 if running_max is None else running_max  # first row: not late
        # Each row's maximum of every id before it: the carried one, then the batch's running max.
        before = pa.concat_arrays([pa.array([floor], ids.type),
                                   pc.cumulative_max(ids).slice(0, len(ids) - 1)])
        late = ids.filter(pc.less_equal(ids, pc.max_element_wise(before, floor)))
        found.append(late)
        n_found += len(late)
        if n_found > max_rows:
            reader.close()  # release the unfinished result so the connection takes new work
            return None
        running_max = max(floor, pc.max(ids).as_py())
    return pa.concat_arrays(found) if found else pa.array([], pa.int64())


TABLE_SQL = {
    "images": (images_parse_sql, images_clean_select, images_repairs_sql),
    "models": (models_parse_sql, models_clean_select, models_repairs_sql),
}
CONTENT_SQL = {"images": images_content_sql, "models": models_content_sql}


def repeated_rows_sql(keys: str, suspect_ids: str) -> str:
    """``(_row, p_id, _rank)`` of every row (no problem found while parsing) whose id repeats
    among the ids of ``suspect_ids``; ``_rank`` 1 is the first copy in file order, above 1 a
    later copy. Read from the narrow keys alone: no raw row is needed to know which rows go."""
    return f"""
    WITH considered AS (
        SELECT _row, p_id FROM {keys}
        WHERE pre_reason IS NULL AND p_id IN (SELECT p_id FROM {suspect_ids})
    ), repeated AS (
        SELECT p_id FROM considered GROUP BY p_id HAVING count(*) > 1
    )
    SELECT _row, p_id, row_number() OVER (PARTITION BY p_id ORDER BY _row) AS _rank
    FROM considered WHERE p_id IN (SELECT p_id FROM repeated)
    """


def duckdb_type(name: str) -> Any:
    """A DuckDB SQL type by name, for registering functions (the module moved between versions)."""
    types = duckdb.sqltypes if hasattr(duckdb, "sqltypes") else duckdb.typing
    return getattr(types, name)


def in_set_udf(values: pa.Array) -> Callable[[pa.Array], pa.Array]:
    """A vectorised function telling, for each value, whether it is in ``values`` (never NULL)."""
    def in_set(column: pa.Array) -> pa.Array:
        return pc.fill_null(pc.is_in(column, value_set=values), False)

    return in_set


class _OrderLost(RuntimeError):
    """The wide pass did not see the raw rows in file order (the sorted path does not apply)."""


def one_pass_splitter(clean_columns: list[str], later_rows: pa.Array, flags: list[str],
                      repaired: dict[str, int]) -> Callable[[pa.RecordBatch], list[pa.RecordBatch]]:
    """A batch transform of the one wide pass: ``[kept rows, set-aside rows]``.

    Kept rows (no ``pre_reason``, not in ``later_rows``) keep ``clean_columns``; rows carrying
    their raw values in ``_raw`` (quarantined or a copy of a repeated id) keep ``_row``,
    ``pre_reason`` and ``_raw``. The repair flags of the kept rows are counted into
    ``repaired`` on the way. Raises :class:`_OrderLost` when ``_row`` does not increase.
    """
    last = [-1]

    def split(batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        rows = batch.column("_row")
        if len(rows):
            if rows[0].as_py() <= last[0] or (len(rows) > 1 and pc.any(pc.less_equal(
                    rows.slice(1), rows.slice(0, len(rows) - 1))).as_py()):
                raise _OrderLost("rows out of file order")
            last[0] = rows[-1].as_py()
        kept = pc.and_(pc.is_null(batch.column("pre_reason")),
                       pc.invert(pc.is_in(rows, value_set=later_rows)))
        for name, flag in zip(repaired, flags):
            repaired[name] += int(pc.sum(pc.filter(batch.column(flag), kept)).as_py() or 0)
        return [batch.filter(kept).select(clean_columns),
                batch.filter(pc.is_valid(batch.column("_raw"))).select(["_row", "pre_reason", "_raw"])]

    return split


def set_aside_quarantine_sql(set_aside: str, repeated: str, table: str) -> str:
    """The quarantine (raw columns + ``reason``, in file order) from the set-aside rows of the
    one wide pass: rows with a ``pre_reason``, and later copies of repeated ids named exact or
    conflicting by the content hash of their first copy (as :func:`duplicate_reasons_sql`)."""
    raw_cols = ", ".join(sql_identifier(c.name) for c in schema.CANONICAL[table])
    return f"""
    WITH s AS (SELECT _row, pre_reason, _raw.* FROM {set_aside}
    ), ranked AS (
        SELECT s._row, c._rank, first_value({CONTENT_SQL[table]()}) OVER w AS _first_content,
               {CONTENT_SQL[table]()} AS _content
        FROM s JOIN {repeated} c ON c._row = s._row
        WINDOW w AS (PARTITION BY c.p_id ORDER BY c._row)
    ), duplicates AS (
        SELECT _row, CASE WHEN _content = _first_content THEN 'duplicate_id_exact'
                          ELSE 'duplicate_id_conflict' END AS reason
        FROM ranked WHERE _rank > 1
    )
    SELECT {raw_cols}, COALESCE(s.pre_reason, d.reason) AS reason
    FROM s LEFT JOIN duplicates d ON d._row = s._row
    WHERE s.pre_reason IS NOT NULL OR d.reason IS NOT NULL ORDER BY s._row
    """


def clean_table(table: str, paths: RunPaths, window: Window = Window(),
                memory_limit: str = "3GB", trust_file_order: bool = True) -> dict[str, Any]:
    """Clean one raw table into interim + quarantine; return its report (counts by reason).

    ``trust_file_order`` looks for duplicates among out-of-order ids only and keeps file order
    when the file is sorted by id; False forces the full ``GROUP BY`` and the sort (same result,
    more memory: for snapshots known to be unsorted).

    Raises :class:`CleaningError` if raw rows ≠ clean rows + quarantined rows.
    """
    raw = paths.table("raw", table)
    if not raw.exists() and db.table_exists(raw):
        db.verify_view(raw)  # the snapshot read in place is still the one acquired
    schema.validate_file(raw, table, "raw")
    parse_sql, _, _ = TABLE_SQL[table]
    con = db.connect(paths.tmp, memory_limit=memory_limit)
    register_udfs(con)
    keys_path = paths.tmp / f"{table}_keys.parquet"
    set_aside_path = paths.tmp / f"{table}_set_aside.parquet"
    parse = f"({parse_sql(raw, window)})"
    try:
        # A narrow first pass keeps every row's number, parsed id and reason (all but
        # duplicates); only the columns those need are read (no prompt, no reaction counts).
        stream_query_to_parquet(con, f"SELECT _row, p_id, pre_reason FROM {parse}", keys_path)
        keys = read_parquet_sql(keys_path)
        suspects = out_of_order_ids(con, keys) if trust_file_order else None
        repaired = None
        if suspects is not None:
            repaired = _clean_sorted(con, table, parse, keys, suspects, paths, set_aside_path)
        if repaired is None:
            repaired = _clean_unsorted(con, table, raw, parse, keys, suspects, paths)
        # Counted from the small file just written, not by joining every key again.
        reasons = dict(con.execute(f"SELECT reason, count(*) FROM "
                                   f"{read_parquet_sql(paths.quarantined(table))} "
                                   f"GROUP BY reason ORDER BY reason").fetchall())
    finally:
        con.close()
        keys_path.unlink(missing_ok=True)
        set_aside_path.unlink(missing_ok=True)
    n_raw = db.table_rows(raw)
    n_clean = schema.validate_file(paths.table("interim", table), table, "interim")
    n_quarantined = pq.ParquetFile(paths.quarantined(table)).metadata.num_rows
    if n_raw != n_clean + n_quarantined:
        raise CleaningError(f"{table}: {n_raw} raw rows but {n_clean} clean + {n_quarantined} "
                            f"quarantined; rows were lost — this is a bug, please report it")
    return {"raw": n_raw, "clean": n_clean, "quarantined": n_quarantined,
            "quarantine_reasons": {k: int(v) for k, v in reasons.items()},
            "repairs": {k: v for k, v in sorted(repaired.items()) if v}}


def _clean_sorted(con: duckdb.DuckDBPyConnection, table: str, parse: str, keys: str,
                  suspects: pa.Array, paths: RunPaths, set_aside_path: Path) -> dict[str, int] | None:
    """Clean a table whose rows are in id order but for later copies of repeated ids, in one
    wide pass: kept rows stream in file order into the interim file while the quarantined rows
    and the copies of repeated ids are set aside with their raw values (a few rows), then the
    quarantine is written from those. Returns the repair counts, or ``None`` (nothing written)
    when the table is not so sorted."""
    _, clean_select, repairs_sql = TABLE_SQL[table]
    con.register("suspect_ids", pa.table({"p_id": suspects}))
    con.execute("CREATE OR REPLACE TEMP TABLE repeated_rows AS " + repeated_rows_sql(keys, "suspect_ids"))
    later = con.sql("SELECT _row FROM repeated_rows WHERE _rank > 1 ORDER BY _row").to_arrow_table()
    later_rows = later.column(0).combine_chunks()
    if len(later_rows) != len(suspects):  # some out-of-order row is no copy: not sorted by id
        return None
    repairs = repairs_sql()
    flags = [f"_repair_{i}" for i in range(len(repairs))]
    flag_sql = ", ".join(f"({cond}) AS {f}" for f, cond in zip(flags, repairs.values()))
    raw_struct = ", ".join(f"{sql_identifier(c.name)} := {sql_identifier(c.name)}"
                           for c in schema.CANONICAL[table])
    clean_columns = [c.name for c in schema.CANONICAL[table]]
    # The rows to set aside are looked up by a vectorised function, not an SQL join: a join
    # does not keep the rows in file order.
    repeated = con.sql("SELECT _row FROM repeated_rows ORDER BY _row").to_arrow_table().column(0)
    con.create_function("repeated_row", in_set_udf(repeated.combine_chunks()),
                        [duckdb_type("BIGINT")], duckdb_type("BOOLEAN"), type="arrow")
    sql = (f"SELECT {clean_select()}, _row, pre_reason, {flag_sql}, "
           f"CASE WHEN pre_reason IS NOT NULL OR repeated_row(_row) "
           f"THEN struct_pack({raw_struct}) END AS _raw FROM {parse}")
    repaired = dict.fromkeys(repairs, 0)
    try:
        db.stream_query_split_to_parquet(
            con, sql, [paths.table("interim", table), set_aside_path],
            one_pass_splitter(clean_columns, later_rows, flags, repaired))
    except _OrderLost:
        return None
    finally:
        con.remove_function("repeated_row")
    stream_query_to_parquet(con, set_aside_quarantine_sql(read_parquet_sql(set_aside_path),
                                                          "repeated_rows", table),
                            paths.quarantined(table))
    return repaired


def _clean_unsorted(con: duckdb.DuckDBPyConnection, table: str, raw: Path, parse: str, keys: str,
                    suspects: pa.Array | None, paths: RunPaths) -> dict[str, int]:
    """Clean any table: duplicates by content hash of the rows of repeated ids, kept rows
    sorted by id, quarantine by joining the raw rows with their reasons. Returns the repair
    counts."""
    _, clean_select, repairs_sql = TABLE_SQL[table]
    if suspects is not None:
        con.register("suspect_ids", pa.table({"p_id": suspects}))
    con.execute("CREATE OR REPLACE TEMP TABLE duplicate_rows AS " + duplicate_reasons_sql(
        keys, raw_rows_sql(raw), CONTENT_SQL[table](), None if suspects is None else "suspect_ids"))
    stream_query_to_parquet(con, f"SELECT {clean_select()} FROM {parse} WHERE {KEPT_ROWS} "
                                 f"ORDER BY p_id", paths.table("interim", table))
    reasons_sql = (f"(SELECT k._row, COALESCE(k.pre_reason, d.reason) AS reason FROM {keys} k "
                   f"LEFT JOIN duplicate_rows d ON k._row = d._row "
                   f"WHERE k.pre_reason IS NOT NULL OR d.reason IS NOT NULL)")
    raw_cols = ", ".join(f"r.{sql_identifier(c.name)}" for c in schema.CANONICAL[table])
    stream_query_to_parquet(con, f"SELECT {raw_cols}, q.reason FROM {raw_rows_sql(raw)} r "
                                 f"JOIN {reasons_sql} q ON r._row = q._row ORDER BY r._row",
                            paths.quarantined(table))
    repairs = repairs_sql()
    counts = ", ".join(f"count_if({cond})" for cond in repairs.values())
    values = con.execute(f"SELECT {counts} FROM {parse} WHERE {KEPT_ROWS}").fetchall()[0]
    return {name: int(v or 0) for name, v in zip(repairs, values)}


def require_clean_rows(table: str, report: dict[str, Any], window: Window, paths: RunPaths) -> None:
    """Raise :class:`CleaningError` when a table has raw rows but none survived cleaning.

    Nothing could be analysed, and it almost always means a misread column or a wrong window;
    saying so here beats an obscure failure in a later notebook.
    """
    if report["raw"] == 0 or report["clean"] > 0:
        return
    reasons = ", ".join(f"{reason}: {n}" for reason, n in
                        sorted(report["quarantine_reasons"].items(), key=lambda kv: (-kv[1], kv[0])))
    raise CleaningError(
        f"{table}: none of the {report['raw']} raw rows survived cleaning ({reasons}); nothing is "
        f"left to analyse. Check that the snapshot's id, created_at and level columns hold what "
        f"data/README.md describes, and that the window {window.start} to {window.end} covers the "
        f"data; the rows and their reasons are in {paths.relative(paths.quarantined(table))}")


def clean_all(paths: RunPaths, window: Window = Window(), memory_limit: str = "3GB",
              trust_file_order: bool = True) -> dict[str, Any]:
    """Clean every raw table present; tables the snapshot lacks are reported as absent.

    Stale interim/quarantine files of an absent table are removed so later stages see the
    same tables as this run's raw stage.
    """
    report: dict[str, Any] = {"window": {"start": window.start, "end": window.end}, "tables": {}}
    for table in schema.CANONICAL:
        if db.table_exists(paths.table("raw", table)):
            report["tables"][table] = clean_table(table, paths, window, memory_limit,
                                                   trust_file_order)
            require_clean_rows(table, report["tables"][table], window, paths)
        else:
            for stale in (paths.table("interim", table), paths.quarantined(table)):
                stale.unlink(missing_ok=True)
            report["tables"][table] = None
    return report


def report_frame(report: dict[str, Any]):
    """The cleaning report as a tidy table: table, kind (quarantined/repaired), reason, rows."""
    rows = []
    for table, rep in sorted(report["tables"].items()):
        if rep is None:
            continue
        for reason, n in sorted(rep["quarantine_reasons"].items()):
            rows.append({"table": table, "kind": "quarantined", "reason": reason, "rows": n})
        for reason, n in sorted(rep["repairs"].items()):
            rows.append({"table": table, "kind": "repaired (kept)", "reason": reason, "rows": n})
    return pd.DataFrame(rows, columns=["table", "kind", "reason", "rows"])


# --------------------------------------------------------------------------- first look
def _query_df(sql: str, paths: RunPaths):
    con = db.connect(paths.tmp)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def rows_by_month(paths: RunPaths, table: str) -> pd.DataFrame:
    """Clean rows per calendar month (UTC) of ``created_at``: month, rows."""
    src = table_sql(paths.table("interim", table))
    df = _query_df(f"SELECT strftime(created_at, '%Y-%m') AS month, count(*) AS rows "
                   f"FROM {src} GROUP BY month ORDER BY month", paths)
    return df


def level_counts(paths: RunPaths) -> pd.DataFrame:
    """Clean images per NSFW level, mildest first, with their share."""
    src = table_sql(paths.table("interim", "images"))
    df = _query_df(f"SELECT browsing_level, nsfw_level, count(*) AS images FROM {src} "
                   f"GROUP BY ALL ORDER BY browsing_level", paths)
    df["share"] = (df["images"] / df["images"].sum()).round(4)
    return df


def models_by_type(paths: RunPaths) -> pd.DataFrame:
    """Clean models per type, most common first, with how many carry the platform poi flag."""
    src = table_sql(paths.table("interim", "models"))
    return _query_df(f"SELECT type, count(*) AS models, count(poi) AS with_poi_flag, "
                     f"count_if(poi) AS poi_true FROM {src} "
                     f"GROUP BY type ORDER BY models DESC, type", paths)


def row_accounting(report: dict[str, Any]) -> pd.DataFrame:
    """raw = clean + quarantined, per table, as a small table (absent tables say so)."""
    rows = []
    for table, rep in sorted(report["tables"].items()):
        if rep is None:
            rows.append({"table": table, "raw": 0, "clean": 0, "quarantined": 0,
                         "note": "not in this snapshot"})
        else:
            rows.append({"table": table, "raw": rep["raw"], "clean": rep["clean"],
                         "quarantined": rep["quarantined"],
                         "note": "balanced" if rep["raw"] == rep["clean"] + rep["quarantined"]
                         else "ROWS LOST"})
    return pd.DataFrame(rows)
