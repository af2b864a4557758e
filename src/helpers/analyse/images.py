"""Image-level analyses (notebook 03): every function aggregates the processed images table
in DuckDB and returns only the aggregate (one row per month, level, term, ...), so tens of
millions of rows never reach pandas; statistics are then computed on those aggregates exactly.

:func:`image_results` runs them all, in the notebook's order, into one :class:`ImageResults`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import duckdb
import numpy as np
import pandas as pd

from .. import db, schema, stats
from ..db import sql_literal
from ..schema import ADAPTER_CALL_PATTERN, MARKER_KINDS, MARKERS, NSFW_DEFINITIONS, marker_role
from ..stats import (NotEstimable, gini, lorenz_curve, odds_ratio, quantile_from_counts,
                     share_trend, top_share, weighted_log_odds, wilson_interval, with_share)
from .common import (IMAGE_ENGAGEMENT, MIN_USERS, compare_groups, definition_counts_sql,
                     flag_column, month_sql, nsfw_groups, nsfw_trend_wording, nsfw_wording,
                     split_definitions, two_groups)
from .names import personal_name_filter
from .results import Results

#: Frequent English function words, excluded from prompt vocabularies because they carry no
#: content and would otherwise fill the top of both lists.
STOPWORDS: frozenset[str] = frozenset("""
a an and are as at be but by for from has have he her his in is it its of on or she that the
their them they this to was were with without very into over under up down out off you your
""".split())


# --------------------------------------------------------------------------- images: overview
def image_overview(images: Path, con: duckdb.DuckDBPyConnection | None = None
                   ) -> dict[str, float | str | NotEstimable]:
    """Headline counts of the images table: rows, users, months covered, NSFW and LoRA shares.

    A share no image has a value for (e.g. a source without the platform's flag) is
    :class:`NotEstimable`, and so are its interval bounds.
    """
    con = db.connection_or_default(con)
    flags = ", ".join(f"count({c}) AS n_{d}, sum(CAST({c} AS INTEGER)) AS k_{d}"
                      for d, c in NSFW_DEFINITIONS.items())
    row = con.execute(f"""
        SELECT count(*) AS n_images, count(DISTINCT user_hash) AS n_users,
               min({month_sql()}) AS first_month, max({month_sql()}) AS last_month,
               count(DISTINCT {month_sql()}) AS n_months,
               sum(CAST(n_lora > 0 AS INTEGER)) AS k_lora, count(n_lora) AS n_lora, {flags}
        FROM {db.table_sql(images)}""").df().iloc[0]
    out: dict[str, float | str | NotEstimable] = {
        "n_images": int(row["n_images"]), "n_users": int(row["n_users"]),
        "first_month": row["first_month"], "last_month": row["last_month"],
        "n_months": int(row["n_months"]),
    }
    for d in [*NSFW_DEFINITIONS, "lora"]:
        k, n = float(row[f"k_{d}"] or 0), float(row[f"n_{d}"] or 0)
        low, high = wilson_interval([k], [n])
        key = "lora_share" if d == "lora" else f"nsfw_share_{d}"
        if not n:
            reason = NotEstimable("no image has a prompt" if d == "lora"
                                  else nsfw_wording(d)["neither"])
            out[key] = out[f"{key}_ci_low"] = out[f"{key}_ci_high"] = reason
            continue
        out[key] = k / n
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(low[0]), float(high[0])
    return out


def nsfw_share_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Monthly image volume and NSFW share under each definition, with Wilson 95% intervals.

    Long format: one row per (month, definition) with ``n_images`` (all images of the month),
    ``n`` (images where the definition is known), ``k`` (NSFW), ``share``, ``ci_low``,
    ``ci_high``. The platform flag is unknown (null) for sources without it.
    """
    con = db.connection_or_default(con)
    parts = ", ".join(f"count({c}) AS n_{d}, sum(CAST({c} AS INTEGER)) AS k_{d}"
                      for d, c in NSFW_DEFINITIONS.items())
    wide = con.execute(f"""
        SELECT {month_sql()} AS month, count(*) AS n_images, {parts}
        FROM {db.table_sql(images)} GROUP BY 1 ORDER BY 1""").df()
    rows = []
    for d in NSFW_DEFINITIONS:
        part = wide[["month", "n_images", f"n_{d}", f"k_{d}"]].rename(
            columns={f"n_{d}": "n", f"k_{d}": "k"})
        part.insert(1, "definition", d)
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out[["n_images", "n", "k"]] = out[["n_images", "n", "k"]].fillna(0).astype("int64")
    out = with_share(out)
    return out.sort_values(["definition", "month"], ignore_index=True)


def nsfw_share_trend(monthly: pd.DataFrame) -> dict[str, dict[str, float] | NotEstimable]:
    """Trend test of the monthly NSFW share under each definition (from :func:`nsfw_share_by_month`):
    definition → :func:`~helpers.stats.share_trend`, or :class:`NotEstimable` with the reason."""
    return {d: share_trend(part, **nsfw_trend_wording(d))
            for d, part in monthly.groupby("definition", sort=True)}


def trend_frame(trends: dict[str, dict[str, float] | NotEstimable],
                key: str = "definition") -> pd.DataFrame:
    """The estimable trends of :func:`nsfw_share_trend` as a table, one row per ``key``."""
    return pd.DataFrame([{key: name, **trend} for name, trend in trends.items()
                         if not isinstance(trend, NotEstimable)],
                        columns=[key, *stats.TREND_FIELDS])


def level_composition_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Share of each browsing level (PG … Blocked) among the images of each month.

    One row per (month, level) for every level in :data:`schema.LEVEL_NAMES`, zero-filled, with
    ``n``, ``n_month`` and ``share``; levels in schema order (mildest first).
    """
    con = db.connection_or_default(con)
    counts = con.execute(f"""
        SELECT {month_sql()} AS month, nsfw_level AS level, count(*) AS n
        FROM {db.table_sql(images)} GROUP BY 1, 2""").df()
    months = sorted(counts["month"].unique())
    grid = pd.MultiIndex.from_product([months, list(schema.LEVEL_NAMES)], names=["month", "level"])
    out = counts.set_index(["month", "level"])["n"].reindex(grid, fill_value=0).reset_index()
    out["n"] = out["n"].astype("int64")
    out["n_month"] = out.groupby("month")["n"].transform("sum")
    out["share"] = out["n"] / out["n_month"].where(out["n_month"] > 0)
    out["level"] = pd.Categorical(out["level"], categories=list(schema.LEVEL_NAMES), ordered=True)
    return out.sort_values(["month", "level"], ignore_index=True)


# --------------------------------------------------------------------------- images: adapters
def lora_use_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Share of images whose prompt calls at least one LoRA/LyCORIS (``n_lora > 0``), by month."""
    con = db.connection_or_default(con)
    out = con.execute(f"""
        SELECT {month_sql()} AS month, count(n_lora) AS n,
               sum(CAST(n_lora > 0 AS INTEGER)) AS k, avg(n_lora) AS mean_lora_calls
        FROM {db.table_sql(images)} GROUP BY 1 ORDER BY 1""").df()
    out[["n", "k"]] = out[["n", "k"]].fillna(0).astype("int64")
    return with_share(out)


def adapter_groups(n_with: float, n_without: float) -> NotEstimable | None:
    """Why images with and without adapter calls cannot be compared (None when they can)."""
    return two_groups(n_with, n_without, "no image has a prompt", "no image calls an adapter",
                      "every image calls an adapter")


def adapter_counts_by_definition(images: Path, con: duckdb.DuckDBPyConnection | None = None
                                 ) -> dict[str, pd.DataFrame]:
    """Per month and adapter use (images with a prompt), under every NSFW definition from one
    pass: definition → frame of ``month``, ``uses_adapter``, ``n`` (label known), ``k`` (NSFW)."""
    con = db.connection_or_default(con)
    wide = con.execute(f"""
        SELECT {month_sql()} AS month, n_lora > 0 AS uses_adapter, {definition_counts_sql()}
        FROM {db.table_sql(images)} WHERE n_lora IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2""").df()
    return split_definitions(wide, ["month", "uses_adapter"])


def adapter_comparison(counts: pd.DataFrame, definition: str) -> pd.DataFrame | NotEstimable:
    """NSFW share of images with and without adapter calls (Wilson intervals) and the odds ratio
    (with vs without, Woolf 95% interval, repeated on both rows so the frame is self-contained),
    from one definition's :func:`adapter_counts_by_definition`; :class:`NotEstimable` when one
    of the two groups is empty."""
    out = (counts.groupby("uses_adapter")[["n", "k"]].sum().reindex([False, True], fill_value=0)
           .rename_axis("uses_adapter").reset_index())
    empty = adapter_groups(out["n"].iloc[1], out["n"].iloc[0])
    if empty is not None:
        return empty
    out.insert(0, "definition", definition)
    out = with_share(out)
    with_, without = out.iloc[1], out.iloc[0]
    ratio = odds_ratio(int(with_.k), int(with_.n), int(without.k), int(without.n))
    out["odds_ratio"] = ratio["odds_ratio"]
    out["or_ci_low"] = ratio["ci_low"]
    out["or_ci_high"] = ratio["ci_high"]
    return out


def adapter_comparison_by_month(counts: pd.DataFrame, definition: str) -> pd.DataFrame | NotEstimable:
    """Monthly NSFW share of images with and without adapter calls (Wilson intervals), from one
    definition's :func:`adapter_counts_by_definition`; :class:`NotEstimable` when one of the two
    groups is empty."""
    empty = adapter_groups(counts.loc[counts["uses_adapter"] == True, "n"].sum(),  # noqa: E712
                           counts.loc[counts["uses_adapter"] == False, "n"].sum())  # noqa: E712
    if empty is not None:
        return empty
    out = counts.copy()
    out.insert(1, "definition", definition)
    return with_share(out)


def nsfw_share_by_adapter_use(images: Path, definition: str = "r",
                              con: duckdb.DuckDBPyConnection | None = None
                              ) -> pd.DataFrame | NotEstimable:
    """NSFW share of images with and without adapter calls, with Wilson intervals.

    Two rows (``uses_adapter`` False, True); the odds ratio (with vs without) and its Woolf
    95% interval are repeated on both rows so the frame is self-contained.
    :class:`NotEstimable` when one of the two groups is empty.
    """
    flag_column(definition)
    return adapter_comparison(adapter_counts_by_definition(images, con)[definition], definition)


def nsfw_share_by_adapter_use_by_month(images: Path, definition: str = "r",
                                       con: duckdb.DuckDBPyConnection | None = None
                                       ) -> pd.DataFrame | NotEstimable:
    """Monthly NSFW share of images with and without adapter calls (Wilson intervals);
    :class:`NotEstimable` when one of the two groups is empty."""
    flag_column(definition)
    return adapter_comparison_by_month(adapter_counts_by_definition(images, con)[definition],
                                       definition)


# --------------------------------------------------------------------------- images: engagement
def engagement_counts_by_definition(images: Path, metric: str = "reaction_count",
                                    con: duckdb.DuckDBPyConnection | None = None
                                    ) -> dict[str, pd.DataFrame]:
    """:func:`engagement_counts` under every NSFW definition from one pass over the images."""
    if metric not in {c.name for c in schema.IMAGES} or not metric.endswith("_count"):
        raise ValueError(f"unknown engagement metric {metric!r}; valid: {', '.join(IMAGE_ENGAGEMENT)}")
    con = db.connection_or_default(con)
    flags = ", ".join(f"{c} AS flag_{d}" for d, c in NSFW_DEFINITIONS.items())
    wide = con.execute(f"""
        SELECT {metric} AS value, {flags}, count(*) AS n
        FROM {db.table_sql(images)} WHERE {metric} IS NOT NULL GROUP BY ALL""").df()
    out = {}
    for d in NSFW_DEFINITIONS:
        part = wide[wide[f"flag_{d}"].notna()]
        out[d] = (part.assign(nsfw=part[f"flag_{d}"].astype(bool)).groupby(["value", "nsfw"], sort=True)
                  ["n"].sum().astype("int64").reset_index())
    return out


def engagement_counts(images: Path, metric: str = "reaction_count", definition: str = "r",
                      con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Frequency table of an engagement metric for NSFW and SFW images: (value, nsfw, n)."""
    flag_column(definition)
    return engagement_counts_by_definition(images, metric, con)[definition]


def engagement_comparison(counts: dict[str, pd.DataFrame], definition: str) -> pd.DataFrame | NotEstimable:
    """Engagement of NSFW vs SFW images under ``definition`` from metric → that definition's
    :func:`engagement_counts` (see :func:`engagement_nsfw_vs_sfw`)."""
    rows = [compare_groups(frame.rename(columns={"nsfw": "group"}), metric, True, False, "nsfw", "sfw")
            for metric, frame in counts.items()]
    out = pd.DataFrame(rows)
    empty = nsfw_groups(out["n_nsfw"].sum(), out["n_sfw"].sum(), definition) if len(out) else \
        NotEstimable("no engagement metric was asked for")
    if empty is not None:
        return empty
    out.insert(1, "definition", definition)
    return out


def engagement_by_definition(images: Path, metrics: Iterable[str] = IMAGE_ENGAGEMENT,
                             con: duckdb.DuckDBPyConnection | None = None
                             ) -> tuple[dict[str, pd.DataFrame | NotEstimable], dict[str, dict[str, pd.DataFrame]]]:
    """:func:`engagement_nsfw_vs_sfw` under every NSFW definition, one pass per metric; also
    returns the counts (definition → metric → :func:`engagement_counts`) for the figures."""
    per_metric = {m: engagement_counts_by_definition(images, m, con) for m in metrics}
    counts = {d: {m: per_metric[m][d] for m in per_metric} for d in NSFW_DEFINITIONS}
    return {d: engagement_comparison(counts[d], d) for d in NSFW_DEFINITIONS}, counts


def engagement_nsfw_vs_sfw(images: Path, metrics: Iterable[str] = IMAGE_ENGAGEMENT,
                           definition: str = "r",
                           con: duckdb.DuckDBPyConnection | None = None
                           ) -> pd.DataFrame | NotEstimable:
    """Engagement of NSFW vs SFW images: medians, means, Mann-Whitney U, rank-biserial r.

    A rank test because engagement is heavy-tailed (a few images collect most reactions), so
    means would be driven by outliers; the rank-biserial correlation says how much more likely
    an NSFW image is to out-score an SFW one (positive = NSFW higher). :class:`NotEstimable`
    when every image with engagement counts is on one side.
    """
    flag_column(definition)
    con = db.connection_or_default(con)
    return engagement_comparison({m: engagement_counts(images, m, definition, con) for m in metrics},
                                 definition)


# --------------------------------------------------------------------------- images: vocabulary
def _sample_sql(sample_percent: float | None) -> str:
    """``AND`` clause of a deterministic hash sample of images (empty for all images)."""
    if sample_percent is None:
        return ""
    if not 0 < sample_percent <= 100:
        raise ValueError(f"sample_percent must be in (0, 100], got {sample_percent}")
    return f"AND hash(image_id) % 10000 < {int(round(sample_percent * 100))}"


#: SQL regular expressions of prompt tokenising (letters, digits and underscores make a token),
#: of a capitalised token as group 1 (a capital then a lower-case letter: "Name", not "HDR"),
#: and of a credit ("by …", "artist: …", "style of …" up to the end of the phrase).
_TOKEN_SPLIT_SQL = r"[^\pL\pN_]+"
_TITLECASE_TOKEN_SQL = r"(?:^|[^\pL\pN_])(\p{Lu}\p{Ll}[\pL\pN_]*)"
_CREDIT_SQL = r"(?:\bby|\bartist:|\bstyle of)\s*([^,.;:()\[\]]+)"
#: Text every credit contains (prompts without any of it skip the credit pattern).
_CREDIT_CUES: tuple[str, ...] = ("by", "artist:", "style of")


def prompt_term_counts(images: Path, definition: str = "r", sample_percent: float | None = None,
                       min_count: int = 5, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Number of NSFW and SFW prompts that contain each term, counted in one DuckDB pass.

    Tokenising: adapter calls removed (their names are model slugs), split on anything that is
    not a letter, digit or underscore (so ``score_9`` and ``1girl`` stay whole), lower-cased;
    tokens of one character, pure numbers and :data:`STOPWORDS` are dropped. Each term counts
    once per prompt (weights such as ``(nude:1.3)`` and repetition do not inflate it).

    The same pass records how prompts write each term, the evidence :func:`names_in_prompts`
    uses to keep personal names out of published lists: ``n_titlecase`` (prompts writing it
    capitalised, e.g. "Name"; acronyms such as "HDR" do not count) and ``n_attributed``
    (prompts crediting it after "by", "artist:" or "style of").
    ``sample_percent`` takes a deterministic hash sample of images for very large tables. Each
    distinct prompt is tokenised once (grouping the prompts read is bounded by DuckDB's memory
    limit, past which it spills).
    Returns ``term``, ``n_nsfw``, ``n_sfw``, ``n_titlecase``, ``n_attributed`` for terms in at
    least ``min_count`` prompts.
    """
    con = db.connection_or_default(con)
    flag = flag_column(definition)
    stop = ", ".join(sql_literal(w) for w in sorted(STOPWORDS))
    split, title, credit = (_TOKEN_SPLIT_SQL, _TITLECASE_TOKEN_SQL, _CREDIT_SQL)
    cue = " OR ".join(f"contains(lower(text), {sql_literal(w)})" for w in _CREDIT_CUES)
    # Each distinct prompt is tokenised once, weighted by its NSFW and SFW images, into one list
    # of marks, each kind de-duplicated so it counts once per prompt: the terms, the capitalised
    # ones behind chr(1), the credited ones behind chr(2) (no token holds either). Lower-casing
    # the whole text gives the tokens of lower-casing each one, as lower() maps code point to
    # code point within the token class (a test checks every code point). The term filters run
    # on the counted marks.
    counts = con.execute(f"""
        WITH distinct_prompts AS (
            SELECT prompt, count(*) FILTER (WHERE {flag}) AS k, count(*) FILTER (WHERE NOT {flag}) AS s
            FROM {db.table_sql(images)}
            WHERE prompt IS NOT NULL AND {flag} IS NOT NULL {_sample_sql(sample_percent)}
            GROUP BY prompt
        ), prompts AS (
            SELECT k, s, regexp_replace(prompt, {sql_literal(ADAPTER_CALL_PATTERN)}, ' ', 'g') AS text
            FROM distinct_prompts
        ), marks AS (
            SELECT k, s, list_concat(
                list_distinct(regexp_split_to_array(lower(text), '{split}')),
                list_distinct(list_transform(regexp_extract_all(text, '{title}', 1),
                                             lambda w: chr(1) || lower(w))),
                CASE WHEN {cue} THEN list_distinct(list_transform(flatten(list_transform(
                                  regexp_extract_all(lower(text), '{credit}', 1),
                                  lambda c: regexp_split_to_array(c, '{split}'))),
                              lambda t: chr(2) || t)) ELSE [] END) AS marks
            FROM prompts
        ), counted AS (
            SELECT mark, sum(k)::BIGINT AS k, sum(s)::BIGINT AS s
            FROM (SELECT k, s, unnest(marks) AS mark FROM marks) GROUP BY mark
        )
        SELECT t.mark AS term, t.k AS n_nsfw, t.s AS n_sfw,
               coalesce(c.k + c.s, 0) AS n_titlecase, coalesce(a.k + a.s, 0) AS n_attributed
        FROM counted t
        LEFT JOIN counted c ON c.mark = chr(1) || t.mark
        LEFT JOIN counted a ON a.mark = chr(2) || t.mark
        WHERE t.k + t.s >= {int(min_count)} AND length(t.mark) > 1 AND ascii(t.mark) > 2
              AND NOT regexp_full_match(t.mark, '[0-9_]+') AND t.mark NOT IN ({stop})
        ORDER BY term""").df()
    return counts.astype({c: "int64" for c in ("n_nsfw", "n_sfw", "n_titlecase", "n_attributed")})


def names_in_prompts(counts: pd.DataFrame, titlecase_share: float = 0.5,
                     attributed_share: float = 0.4, min_attributed: int = 3) -> set[str]:
    """Terms of :func:`prompt_term_counts` that prompts write like personal names.

    Prompts name artists and people in two recognisable ways: as capitalised words
    ("Firstname Lastname") in otherwise lower-case text, and after "by", "artist:" or
    "style of". A term is a name when at least ``titlecase_share`` of the prompts using it write
    it capitalised, or when at least ``attributed_share`` of them (and ``min_attributed``
    prompts) credit it. Brand names (cameras, sites) are caught too; dropping them from a list
    costs little.
    """
    written = (counts["n_nsfw"] + counts["n_sfw"]).clip(lower=1)
    proper = counts["n_titlecase"] / written >= titlecase_share
    credited = (counts["n_attributed"] / written >= attributed_share) & \
        (counts["n_attributed"] >= min_attributed)
    return set(counts.loc[proper | credited, "term"])


def distinctive_terms(images: Path, definition: str = "r", top_n: int = 25,
                      exclude: Callable[[str], bool] | None = None, prior_scale: float = 1.0,
                      sample_percent: float | None = None, min_count: int = 5,
                      con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame | NotEstimable:
    """Prompt terms that most distinguish NSFW from SFW images (weighted log-odds, z-scores).

    Returns the ``top_n`` terms on each side: ``side`` 'nsfw' (z > 0) and 'sfw' (z < 0), with
    their prompt counts, log-odds and z. Personal names never reach the list: ``exclude``
    (normally a :class:`PersonalNameFilter`) removes names known from the models, and
    :func:`names_in_prompts` removes terms that prompts write like names (capitalised, or
    credited with "by"). ``n_name_terms_removed`` counts the terms dropped as names (the same
    on every row). :class:`NotEstimable` when no term is frequent enough or every prompt is
    on one side.
    """
    columns = ["side", "rank", "term", "n_nsfw", "n_sfw", "log_odds", "z", "n_name_terms_removed"]
    con = db.connection_or_default(con)
    counts = prompt_term_counts(images, definition, sample_percent, min_count, con)
    if counts.empty:
        return NotEstimable(f"no prompt term occurs in at least {min_count} prompts")
    empty = nsfw_groups(counts["n_nsfw"].sum(), counts["n_sfw"].sum(), definition)
    if empty is not None:
        return empty
    scored = weighted_log_odds(counts, a="n_nsfw", b="n_sfw", prior_scale=prior_scale)
    removed = 0
    if exclude is not None:
        is_name = scored["term"].map(exclude).astype(bool)
        removed += int(is_name.sum())
        scored = scored[~is_name]
    written_as_names = scored["term"].isin(names_in_prompts(scored))
    removed += int(written_as_names.sum())
    scored = scored[~written_as_names]
    sides = {"nsfw": scored[scored["z"] > 0].sort_values(["z", "term"], ascending=[False, True]),
             "sfw": scored[scored["z"] < 0].sort_values(["z", "term"], ascending=[True, True])}
    parts = []
    for side, ranked in sides.items():
        part = ranked.head(top_n).copy()
        part.insert(0, "side", side)
        part.insert(1, "rank", np.arange(1, len(part) + 1))
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    if out.empty:
        return NotEstimable("no prompt term is more typical of NSFW or of SFW prompts"
                            + (" (after removing personal names)" if removed else ""))
    out["n_name_terms_removed"] = removed
    return out[columns]


def markers_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Share of prompts with each marker category (booru, pony, sexual, minor, real person), by month.

    Among images with a prompt; Wilson intervals. Minor-coded markers are reported as counts
    and shares only.
    """
    con = db.connection_or_default(con)
    parts = ", ".join(f"sum(CAST({c} AS INTEGER)) AS k_{m}" for m, c in MARKERS.items())
    wide = con.execute(f"""
        SELECT {month_sql()} AS month, count(*) AS n, {parts}
        FROM {db.table_sql(images)} WHERE prompt IS NOT NULL GROUP BY 1 ORDER BY 1""").df()
    rows = []
    for m in MARKERS:
        part = wide[["month", "n", f"k_{m}"]].rename(columns={f"k_{m}": "k"})
        part.insert(1, "marker", m)
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out[["n", "k"]] = out[["n", "k"]].fillna(0).astype("int64")
    return with_share(out).sort_values(["marker", "month"], ignore_index=True)


def marker_groups(n_with: float, n_without: float) -> NotEstimable | None:
    """Why prompts with and without a marker cannot be compared (None when they can)."""
    return two_groups(n_with, n_without, "no image has a prompt", "no prompt carries this marker",
                      "every prompt carries this marker")


def nsfw_share_by_marker(images: Path, definition: str = "r",
                         con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame | NotEstimable:
    """NSFW share of prompts with vs without each marker category (Wilson intervals, odds ratio).

    Only markers that some prompts carry and others do not are compared (the others are named,
    with the reason, by :func:`markers_not_compared`); :class:`NotEstimable` when none is.
    Every row carries the marker's ``kind`` (syntax / content) and ``role``
    (:func:`helpers.schema.marker_role`): the odds ratio is given only for ``finding`` markers;
    a ``definitional`` marker (sexual terms: NSFW by construction) and a marker ``dropped`` on
    prompts keep their shares but no odds ratio, so neither can be read as a finding.
    """
    con = db.connection_or_default(con)
    flag = flag_column(definition)
    rows, reasons = [], set()
    # Every marker's counts with and without it, from one pass over the prompts.
    sides = {True: "{col}", False: "NOT {col}"}
    counts = ", ".join(
        f"count({flag}) FILTER (WHERE {side.format(col=col)}) AS n_{m}_{has}, "
        f"count(*) FILTER (WHERE {side.format(col=col)} AND {flag}) AS k_{m}_{has}"
        for m, col in MARKERS.items() for has, side in sides.items())
    totals = con.execute(f"""
        SELECT {counts} FROM {db.table_sql(images)} WHERE prompt IS NOT NULL""").df().iloc[0]
    for m, col in MARKERS.items():
        k = {has: int(totals[f"k_{m}_{has}"]) for has in (False, True)}
        n = {has: int(totals[f"n_{m}_{has}"]) for has in (False, True)}
        empty = marker_groups(n[True], n[False])
        if empty is not None:
            reasons.add(empty.reason)
            continue
        role = marker_role(m)
        ratio = (odds_ratio(int(k[True]), int(n[True]), int(k[False]), int(n[False])) if role == "finding"
                 else {"odds_ratio": math.nan, "ci_low": math.nan, "ci_high": math.nan})
        for has in (False, True):
            rows.append({"marker": m, "kind": MARKER_KINDS[m], "role": role, "has_marker": has,
                         "n": int(n[has]), "k": int(k[has]),
                         "odds_ratio": ratio["odds_ratio"], "or_ci_low": ratio["ci_low"],
                         "or_ci_high": ratio["ci_high"]})
    if not rows:
        return NotEstimable(reasons.pop() if len(reasons) == 1 else
                            "every marker is carried by every prompt or by none")
    out = with_share(pd.DataFrame(rows))
    out.insert(1, "definition", definition)
    return out


def marker_findings(markers_nsfw: pd.DataFrame | NotEstimable) -> pd.DataFrame | NotEstimable:
    """The marker × NSFW associations that are findings: one row per ``finding`` marker of
    :func:`nsfw_share_by_marker` (NSFW share with and without it, odds ratio); definitional and
    dropped markers are left out. :class:`NotEstimable` when no finding marker is compared."""
    if isinstance(markers_nsfw, NotEstimable):
        return markers_nsfw
    rows = markers_nsfw[(markers_nsfw["role"] == "finding") & markers_nsfw["has_marker"]]
    if rows.empty:
        return NotEstimable("no marker that does not define NSFW content is compared")
    without = markers_nsfw[(markers_nsfw["role"] == "finding") & ~markers_nsfw["has_marker"]]
    out = rows[["marker", "kind", "definition", "n", "share", "odds_ratio", "or_ci_low", "or_ci_high"]]
    out = out.rename(columns={"n": "n_with", "share": "share_with"}).reset_index(drop=True)
    out.insert(5, "share_without", without["share"].to_numpy())
    return out


def markers_not_compared(markers: pd.DataFrame) -> dict[str, NotEstimable]:
    """Marker → why prompts with and without it cannot be compared, from :func:`markers_by_month`
    (the markers :func:`nsfw_share_by_marker` leaves out)."""
    out = {}
    for m in MARKERS:
        part = markers[markers["marker"] == m]
        k, n = int(part["k"].sum()), int(part["n"].sum())
        empty = marker_groups(k, n - k)
        if empty is not None:
            out[m] = empty
    return out


# --------------------------------------------------------------------------- images: creators
def images_per_user_distribution(images: Path,
                                 con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """How many users posted exactly ``images`` images: (images, users), from SQL.

    A frequency table rather than one row per user, so it stays small at any scale and holds
    no user identifiers.
    """
    con = db.connection_or_default(con)
    return con.execute(f"""
        WITH per_user AS (
            SELECT user_hash, count(*) AS images FROM {db.table_sql(images)}
            WHERE user_hash IS NOT NULL GROUP BY 1)
        SELECT images, count(*) AS users FROM per_user GROUP BY 1 ORDER BY 1""").df()


def creator_concentration(images: Path, min_users: int = MIN_USERS, lorenz_points: int = 101,
                          con: duckdb.DuckDBPyConnection | None = None
                          ) -> tuple[dict[str, float | NotEstimable] | NotEstimable,
                                     pd.DataFrame | NotEstimable]:
    """Concentration of posting among hashed users: Gini, top-1% and top-10% shares, Lorenz curve.

    Returns ``(summary, lorenz)``. ``lorenz`` is the curve sampled at ``lorenz_points``
    population shares; points whose bottom or top group would hold fewer than ``min_users``
    users are left out (only the trivial ends remain), and a top-share is :class:`NotEstimable`
    when its top group is smaller than ``min_users``: no statistic describes fewer than
    ``min_users`` people. With fewer than ``min_users`` users both are :class:`NotEstimable`.
    """
    dist = images_per_user_distribution(images, con)
    n_users = float(dist["users"].sum())
    n_images = float((dist["images"] * dist["users"]).sum())
    summary: dict[str, float | NotEstimable] = {"n_users": n_users, "n_images_with_user": n_images}
    if n_users < min_users:
        floor = NotEstimable(f"fewer than {min_users} users posted images (privacy floor)")
        return floor, floor
    values, weights = dist["images"].to_numpy(float), dist["users"].to_numpy(float)
    summary["gini"] = gini(values, weights)
    for label, frac in (("top1_share", 0.01), ("top10_share", 0.10)):
        summary[label] = (top_share(values, weights, frac)
                          if math.ceil(frac * n_users) >= min_users else
                          NotEstimable(f"the top {frac:.0%} of users are fewer than {min_users} "
                                       "(privacy floor)"))
    summary["median_images_per_user"] = quantile_from_counts(values, weights, 0.5)
    summary["mean_images_per_user"] = n_images / n_users
    curve = lorenz_curve(values, weights)
    grid = np.linspace(0.0, 1.0, lorenz_points)
    share = np.interp(grid, curve["population_share"], curve["value_share"])
    keep = ((grid * n_users >= min_users) & ((1 - grid) * n_users >= min_users)) | \
        (grid == 0.0) | (grid == 1.0)
    lorenz = pd.DataFrame({"population_share": grid[keep], "image_share": share[keep]})
    return summary, lorenz


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ImageResults(Results):
    """Everything notebook 03 shows, computed by :func:`image_results`.

    Parameters: ``definition`` (NSFW definition of the comparisons), ``top_terms`` and
    ``term_sample_percent``. Frames and summaries are named after the function that made them;
    a field this snapshot cannot estimate is a :class:`~helpers.stats.NotEstimable`.
    """

    part: ClassVar[str] = "images"

    definition: str
    top_terms: int
    term_sample_percent: float | None
    overview: dict[str, Any]                    # image_overview
    monthly: pd.DataFrame                       # nsfw_share_by_month
    trend: dict[str, Any]                       # nsfw_share_trend (definition → trend)
    levels: pd.DataFrame                        # level_composition_by_month
    lora_monthly: pd.DataFrame                  # lora_use_by_month
    lora_trend: dict[str, float] | NotEstimable  # share_trend of lora_monthly
    adapter: pd.DataFrame | NotEstimable        # nsfw_share_by_adapter_use
    adapter_monthly: pd.DataFrame | NotEstimable  # nsfw_share_by_adapter_use_by_month
    engagement: pd.DataFrame | NotEstimable     # engagement_nsfw_vs_sfw
    reaction_counts: pd.DataFrame               # engagement_counts of reactions
    terms: pd.DataFrame | NotEstimable          # distinctive_terms
    markers: pd.DataFrame                       # markers_by_month
    markers_nsfw: pd.DataFrame | NotEstimable   # nsfw_share_by_marker
    concentration: dict[str, Any] | NotEstimable  # creator_concentration (summary)
    lorenz: pd.DataFrame | NotEstimable         # creator_concentration (curve)
    # "disproportionate" defined (growth.growth_fields)
    growth: dict[str, float] | NotEstimable       # NSFW vs SFW growth per year and their ratio
    segmented: dict[str, Any] | NotEstimable      # logistic trend with one break
    sensitivity: pd.DataFrame                     # every headline under every definition (long)
    # inference that respects users (users.user_fields)
    clustered_share: pd.DataFrame | NotEstimable  # NSFW share: naive and cluster-bootstrap CI
    clustered_monthly: pd.DataFrame | NotEstimable
    adapter_clustered: dict[str, float] | NotEstimable  # adapter odds ratio, both intervals
    adapter_adjusted: dict[str, float] | NotEstimable   # Mantel–Haenszel over user × month
    per_user: pd.DataFrame | NotEstimable               # per-user NSFW share quantiles
    per_user_histogram: pd.DataFrame | NotEstimable     # per-user NSFW shares binned (users, images)
    decomposition: pd.DataFrame | NotEstimable          # rise within users vs who posts
    # through the image → model link (links.link_fields)
    family_monthly: pd.DataFrame                        # images by base-model family and month
    real_person_adapter_monthly: pd.DataFrame | NotEstimable
    real_person_adapter_nsfw: pd.DataFrame | NotEstimable
    real_person_adapter_adjusted: dict[str, float] | NotEstimable  # MH over user × month, adapter callers
    real_person_adapter_links: pd.DataFrame | NotEstimable
    family_nsfw: pd.DataFrame | NotEstimable
    # ---- subculture: tools vs practices, minor-coded ∧ NSFW (subculture.subculture_image_fields)
    lineage_monthly: pd.DataFrame                       # images from booru-lineage families
    lineage_models_monthly: pd.DataFrame | NotEstimable  # new models from booru-lineage families
    syntax_by_family: pd.DataFrame | NotEstimable       # syntax-marker share of prompts by family
    syntax_by_lineage: dict[str, float] | NotEstimable  # booru syntax: lineage vs other families
    minor_nsfw_monthly: pd.DataFrame | NotEstimable     # minor-coded ∧ NSFW prompts by month
    minor_nsfw: dict[str, float] | NotEstimable         # ... and over the window (counts, shares)
    family_nsfw_monthly: pd.DataFrame | NotEstimable    # NSFW by family and month, every definition
    family_nsfw_clustered: pd.DataFrame | NotEstimable  # NSFW by family, every definition, both CIs


def image_results(images: Path, models: pd.DataFrame | None = None, definition: str = "r",
                  top_terms: int = 20, term_sample_percent: float | None = None,
                  con: duckdb.DuckDBPyConnection | None = None, links: Path | None = None,
                  models_file: Path | None = None, boot_replicates: int = 1000,
                  seed: int = 0) -> ImageResults:
    """Every image-level analysis of the study on the processed images table ``images``.

    ``models`` (the processed models table, when there is one) feeds the personal-name filter
    of the prompt vocabulary; ``links`` and ``models_file`` (the link table and the processed
    models file) feed the analyses through the image → model link; ``boot_replicates`` and
    ``seed`` drive the cluster bootstrap over users. The notebook, the paper's numbers, the
    benchmark and the tests all take their image results from here, so an analysis added here
    reaches all of them.

    Every comparison runs under every NSFW definition: each analysis aggregates the images once
    with the counts of all three definitions and is reduced per definition; the headline fields
    use ``definition``, the ``sensitivity`` table holds every headline under every definition.
    """
    from . import links as link
    from .growth import growth_fields, growth_ratios
    from .sensitivity import image_sensitivity
    from .subculture import subculture_image_fields
    from .users import shared_weights, user_counts_by_definition, user_estimates, user_fields

    flag_column(definition)
    # Most bootstraps resample the same users with the same seed: their draws are made once.
    with shared_weights():
        con = db.connection_or_default(con)
        monthly = nsfw_share_by_month(images, con)
        lora_monthly = lora_use_by_month(images, con)
        concentration, lorenz = creator_concentration(images, con=con)
        name_filter = personal_name_filter(models) if models is not None else None
        overview = image_overview(images, con)
        adapter_counts = adapter_counts_by_definition(images, con)
        adapter = {d: adapter_comparison(c, d) for d, c in adapter_counts.items()}
        engagement, engagement_counts_ = engagement_by_definition(images, con=con)
        trends = nsfw_share_trend(monthly)
        user_counts_ = user_counts_by_definition(images, con=con)
        ratios = growth_ratios(monthly, user_counts_, boot_replicates, seed)
        user_by_definition = user_estimates(user_counts_, boot_replicates, seed)
        users = user_fields(images, definition, boot_replicates, seed, con, counts=user_counts_,
                            estimates=user_by_definition)
        del user_counts_  # per user × month: not needed by what follows
        has_links = link.link_inputs(links, models_file)
        link_counts_ = link.link_counts_by_definition(images, links, models_file, con) if has_links else None
        strata = (link.real_person_adapter_strata_by_definition(images, links, models_file, con)
                  if has_links else None)
        linked = link.link_fields(images, links, models_file, definition, boot_replicates, seed, con,
                                  counts=link_counts_, strata=strata)
        rp_by_definition = (linked["real_person_adapter_nsfw"] if link_counts_ is None else
                            {d: {"raw": link.real_person_adapter_comparison(c),
                                 "adjusted": link.real_person_adapter_adjusted(strata[d])}
                             for d, c in link_counts_.items()})
        no_prompt = overview["lora_share"]  # not estimable when no image has a prompt
        return ImageResults(
            definition=definition, top_terms=top_terms, term_sample_percent=term_sample_percent,
            overview=overview,
            monthly=monthly,
            trend=trends,
            levels=level_composition_by_month(images, con),
            lora_monthly=lora_monthly,
            lora_trend=(no_prompt if isinstance(no_prompt, NotEstimable) else
                        share_trend(lora_monthly, never="no image calls an adapter",
                                    always="every image calls an adapter")),
            adapter=adapter[definition],
            adapter_monthly=adapter_comparison_by_month(adapter_counts[definition], definition),
            engagement=engagement[definition],
            reaction_counts=engagement_counts_[definition]["reaction_count"],
            terms=distinctive_terms(images, definition=definition, top_n=top_terms,
                                    exclude=name_filter, sample_percent=term_sample_percent, con=con),
            markers=markers_by_month(images, con),
            markers_nsfw=nsfw_share_by_marker(images, definition, con),
            concentration=concentration,
            lorenz=lorenz,
            **growth_fields(monthly, definition, ratios),
            sensitivity=image_sensitivity(monthly, trends, ratios, adapter, user_by_definition,
                                          engagement, rp_by_definition, linked["family_nsfw_clustered"]),
            **users,
            **linked,
            **subculture_image_fields(images, linked["family_monthly"], models, definition,
                                      boot_replicates, seed, con),
        )
