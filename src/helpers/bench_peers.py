"""The benchmark's peers: what a competent analyst writes to get the study's image results in
one pass from the raw snapshot, with no intermediate tables.

Both peers apply the cleaning rules that matter on a Hub snapshot (a positive id, a parseable
``createdAt`` inside the study window, a valid browsing level, the first row of a repeated id
in file order, an empty prompt as none, a prompt cut at ``clean.MAX_PROMPT_CHARS``), label
every prompt with the project's own light normalisation and lexicon patterns, and aggregate:

* :func:`polars_peer`: a polars lazy query run by the streaming engine;
* :func:`duckdb_peer`: one DuckDB query.

Each returns :func:`peer frames <pipeline_frames>`: ``monthly`` (one row per month: images, the
three NSFW definitions' known and flagged counts, prompts, prompts calling an adapter, adapter
calls, and each marker's count) and ``adapter`` (the headline definition's counts among images
with and without an adapter call). :func:`pipeline_frames` reads the same two frames from the
pipeline's :class:`~helpers.analyse.ImageResults`, and :func:`compare_frames` says where they
differ. polars is a benchmark-only dependency (the ``bench`` extra): :func:`polars_available`.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from . import db, schema
from .clean import MAX_PROMPT_CHARS, Window
from .label import Lexicon, LIGHT_STEPS, light_category_patterns

POLARS_PEER = "polars_peer"
DUCKDB_PEER = "duckdb_peer"
#: Raw snapshot columns the peers read.
PEER_COLUMNS: tuple[str, ...] = ("id", "createdAt", "nsfw", "browsingLevel", "positivePrompt")
#: The Hub's timestamp spelling (the peers parse only this; anything else is not a date).
CREATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
#: Level bits a valid ``browsingLevel`` may combine (PG … Blocked).
MAX_LEVEL_MASK = 63


def polars_available() -> bool:
    """True when polars (the ``bench`` extra) is installed."""
    return importlib.util.find_spec("polars") is not None


def window_bounds(window: Window) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of the study window as UTC datetimes (the end day included)."""
    start = dt.datetime.fromisoformat(window.start).replace(tzinfo=dt.timezone.utc)
    end = dt.datetime.fromisoformat(window.end).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    return start, end


def monthly_columns(lexicon: Lexicon) -> list[str]:
    """Count columns of the ``monthly`` peer frame, in order."""
    nsfw = [f"{p}_{d}" for d in schema.NSFW_DEFINITIONS for p in ("n", "k")]
    return ["n_images", *nsfw, "n_prompt", "k_lora", "sum_lora",
            *(f"k_{c}" for c in lexicon.categories)]


def _frames_from_groups(groups: pd.DataFrame, lexicon: Lexicon, definition: str) -> dict[str, pd.DataFrame]:
    """Peer frames from counts grouped by (month, uses_adapter): the months summed over adapter
    use, adapter use summed over months (images with a prompt only)."""
    cols = monthly_columns(lexicon)
    groups[cols] = groups[cols].fillna(0).astype("int64")
    monthly = groups.groupby("month", sort=True)[cols].sum().reset_index()
    with_prompt = groups[groups["uses_adapter"].notna()]
    adapter = (with_prompt.assign(uses_adapter=with_prompt["uses_adapter"].astype(bool))
               .groupby("uses_adapter", sort=True)[[f"n_{definition}", f"k_{definition}"]].sum()
               .reindex([False, True], fill_value=0).rename_axis("uses_adapter").reset_index()
               .rename(columns={f"n_{definition}": "n", f"k_{definition}": "k"}))
    return {"monthly": monthly, "adapter": adapter.astype({"n": "int64", "k": "int64"})}


# --------------------------------------------------------------------------- polars
def polars_peer(files: Iterable[Path], lexicon: Lexicon, window: Window = Window(),
                definition: str = "r") -> dict[str, pd.DataFrame]:
    """The study's image results from the raw snapshot in one lazy, streamed polars query."""
    import polars as pl

    start, end = window_bounds(window)
    ts = (pl.col("createdAt").str.strptime(pl.Datetime("ms"), CREATED_AT_FORMAT, strict=False)
          .dt.replace_time_zone("UTC"))
    level = pl.col("browsingLevel")
    raw = pl.col("positivePrompt")
    prompt = (pl.when(raw.str.strip_chars(" ").str.len_chars() == 0).then(None)
              .otherwise(raw.str.slice(0, MAX_PROMPT_CHARS)))
    kept = (pl.scan_parquet([str(f) for f in files]).select(PEER_COLUMNS)
            .with_columns(ts=ts)
            .filter((pl.col("id") > 0) & (pl.col("ts") >= start) & (pl.col("ts") < end)
                    & level.is_between(1, MAX_LEVEL_MASK))
            .filter(pl.col("id").is_first_distinct())  # the first row of a repeated id, in file order
            .with_columns(prompt=prompt))
    light = pl.col("prompt")
    for pattern, repl in LIGHT_STEPS:
        light = light.str.replace_all(pattern, repl)
    n_lora = pl.col("prompt").str.count_matches(schema.ADAPTER_CALL_PATTERN)
    flags = {"platform": pl.col("nsfw"), "r": level >= schema.LEVEL_BITS["R"],
             "x": level >= schema.LEVEL_BITS["X"]}
    labelled = kept.with_columns(
        month=pl.col("ts").dt.strftime("%Y-%m"), n_lora=n_lora, light=light,
        **{f"f_{d}": flags[d] for d in schema.NSFW_DEFINITIONS})
    labelled = labelled.with_columns(
        uses_adapter=pl.col("n_lora") > 0,
        **{f"m_{c}": pl.col("light").str.contains(p) for c, p in light_category_patterns(lexicon).items()})
    aggs = [pl.len().alias("n_images")]
    for d in schema.NSFW_DEFINITIONS:
        aggs += [pl.col(f"f_{d}").count().alias(f"n_{d}"), pl.col(f"f_{d}").sum().alias(f"k_{d}")]
    aggs += [pl.col("prompt").count().alias("n_prompt"), pl.col("uses_adapter").sum().alias("k_lora"),
             pl.col("n_lora").sum().alias("sum_lora"),
             *(pl.col(f"m_{c}").sum().alias(f"k_{c}") for c in lexicon.categories)]
    groups = labelled.group_by("month", "uses_adapter").agg(aggs).collect(engine="streaming")
    return _frames_from_groups(groups.to_pandas(), lexicon, definition)


# --------------------------------------------------------------------------- DuckDB
def duckdb_peer_sql(files: Iterable[Path], lexicon: Lexicon, window: Window = Window()) -> str:
    """The DuckDB peer: one query from the raw snapshot to counts by (month, uses_adapter)."""
    from .analyse.common import month_sql
    from .label import adapter_calls_sql, light_text_sql

    start, end = window_bounds(window)
    source = db.read_parquet_sql(list(files), filename=True, file_row_number=True)
    light_in = f"CASE WHEN length(trim(positivePrompt)) = 0 THEN NULL ELSE left(positivePrompt, {MAX_PROMPT_CHARS}) END"
    flags = {"platform": "nsfw", "r": f"browsingLevel >= {schema.LEVEL_BITS['R']}",
             "x": f"browsingLevel >= {schema.LEVEL_BITS['X']}"}
    nsfw = ", ".join(f"count({flags[d]}) AS n_{d}, count_if({flags[d]}) AS k_{d}"
                     for d in schema.NSFW_DEFINITIONS)
    markers = ", ".join(f"count_if(regexp_matches(light, {db.sql_literal(p)})) AS k_{c}"
                        for c, p in light_category_patterns(lexicon).items())
    return f"""
    WITH valid AS NOT MATERIALIZED (
        SELECT id, ts, nsfw, browsingLevel, positivePrompt, struct_pack(f := filename, r := file_row_number) AS pos
        FROM (SELECT *, TRY_CAST(createdAt AS TIMESTAMPTZ) AS ts FROM {source})
        WHERE id > 0 AND ts >= TIMESTAMPTZ {db.sql_literal(start.isoformat())}
          AND ts < TIMESTAMPTZ {db.sql_literal(end.isoformat())}
          AND browsingLevel BETWEEN 1 AND {MAX_LEVEL_MASK}
    ), repeated AS (
        SELECT id, min(pos) AS first_pos FROM valid
        WHERE id IN (SELECT id FROM valid GROUP BY id HAVING count(*) > 1) GROUP BY id
    ), kept AS (
        SELECT v.*, {light_in} AS prompt FROM valid v LEFT JOIN repeated r ON v.id = r.id
        WHERE r.id IS NULL OR v.pos = r.first_pos
    ), labelled AS (
        SELECT *, {adapter_calls_sql('prompt')} AS n_lora, {light_text_sql('prompt')} AS light FROM kept
    )
    SELECT {month_sql('ts')} AS month, n_lora > 0 AS uses_adapter, count(*) AS n_images, {nsfw},
           count(prompt) AS n_prompt, count_if(n_lora > 0) AS k_lora, sum(n_lora) AS sum_lora, {markers}
    FROM labelled GROUP BY ALL"""


def duckdb_peer(files: Iterable[Path], lexicon: Lexicon, window: Window = Window(),
                definition: str = "r", con=None) -> dict[str, pd.DataFrame]:
    """The study's image results from the raw snapshot in one DuckDB query."""
    own = con is None
    con = con or db.connect()
    try:
        groups = con.execute(duckdb_peer_sql(files, lexicon, window)).df()
    finally:
        if own:
            con.close()
    return _frames_from_groups(groups, lexicon, definition)


# --------------------------------------------------------------------------- the pipeline's side
def pipeline_frames(results: Any, lexicon: Lexicon) -> dict[str, pd.DataFrame]:
    """The peer frames read from the pipeline's ``ImageResults`` (monthly NSFW shares, LoRA use by
    month, markers by month, NSFW share with vs without an adapter call)."""
    monthly = results.monthly.pivot(index="month", columns="definition", values=["n", "k"])
    wide = pd.DataFrame({"month": monthly.index})
    wide["n_images"] = results.monthly.groupby("month")["n_images"].first().reindex(monthly.index).to_numpy()
    for d in schema.NSFW_DEFINITIONS:
        wide[f"n_{d}"] = monthly[("n", d)].to_numpy()
        wide[f"k_{d}"] = monthly[("k", d)].to_numpy()
    lora = results.lora_monthly.set_index("month").reindex(wide["month"])
    wide["n_prompt"] = lora["n"].fillna(0).to_numpy()
    wide["k_lora"] = lora["k"].fillna(0).to_numpy()
    wide["sum_lora"] = (lora["mean_lora_calls"].fillna(0) * lora["n"].fillna(0)).round().to_numpy()
    markers = results.markers.pivot(index="month", columns="marker", values="k").reindex(wide["month"])
    for c in lexicon.categories:
        wide[f"k_{c}"] = markers[c].fillna(0).to_numpy() if c in markers else 0
    cols = monthly_columns(lexicon)
    wide[cols] = wide[cols].astype("int64")
    adapter = results.adapter
    if not isinstance(adapter, pd.DataFrame):  # not estimable: both groups are not there
        adapter = pd.DataFrame({"uses_adapter": [False, True], "n": [0, 0], "k": [0, 0]})
    adapter = adapter[["uses_adapter", "n", "k"]].astype({"uses_adapter": bool, "n": "int64", "k": "int64"})
    return {"monthly": wide.reset_index(drop=True), "adapter": adapter.reset_index(drop=True)}


def compare_frames(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> list[str]:
    """Where a peer's frames differ from the pipeline's (empty when identical)."""
    problems = []
    for name, frame in want.items():
        other = got.get(name)
        if other is None:
            problems.append(f"{name}: missing")
            continue
        try:
            pd.testing.assert_frame_equal(other.reset_index(drop=True), frame.reset_index(drop=True),
                                          check_dtype=False)
        except AssertionError as exc:
            problems.append(f"{name}: {str(exc)[:400]}")
    return problems


def save_frames(frames: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write peer frames as small Parquet files (one per frame)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)


def load_frames(folder: Path) -> dict[str, pd.DataFrame]:
    """The frames :func:`save_frames` wrote."""
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
