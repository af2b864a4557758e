"""What every analysis shares: the DuckDB connection, the NSFW definition's column, months,
the privacy floor, and the comparison of one metric between two groups."""
from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from .. import db
from ..paths import RunPaths
from ..schema import NSFW_DEFINITION_LABELS, NSFW_DEFINITIONS
from ..stats import NotEstimable, mann_whitney_from_counts, quantile_from_counts, with_share

# --------------------------------------------------------------------------- constants
#: Engagement columns of the images table compared between groups.
IMAGE_ENGAGEMENT: tuple[str, ...] = ("reaction_count", "like_count", "heart_count", "comment_count")
#: Engagement columns of the models table compared between groups.
MODEL_ENGAGEMENT: tuple[str, ...] = ("download_count", "favorite_count", "comment_count",
                                     "rating_count")
#: Smallest number of users a per-user statistic may aggregate over (privacy floor).
MIN_USERS = 10


# --------------------------------------------------------------------------- plumbing
def connect(paths: RunPaths | None = None, memory_limit: str = "3GB",
            threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A bounded DuckDB connection for the analyses (UTC, spill space under the run)."""
    return db.connect(paths.tmp if paths is not None else None, memory_limit=memory_limit,
                      threads=threads)


def flag_column(definition: str) -> str:
    """Label column of an NSFW definition; refuses unknown definitions with the valid ones."""
    try:
        return NSFW_DEFINITIONS[definition]
    except KeyError:
        raise ValueError(f"unknown NSFW definition {definition!r}; valid: "
                         f"{', '.join(NSFW_DEFINITIONS)}") from None


#: SQL for the UTC calendar month ``YYYY-MM`` of a timestamp with time zone.
def month_sql(column: str = "created_at") -> str:
    return f"strftime(timezone('UTC', {column}), '%Y-%m')"


def definition_counts_sql(alias: str = "") -> str:
    """SQL select list of every NSFW definition's counts: ``n_<d>`` (images whose label under the
    definition is known) and ``k_<d>`` (NSFW), so one pass over the images serves all three."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"count({prefix}{c}) AS n_{d}, count(*) FILTER (WHERE {prefix}{c}) AS k_{d}"
                     for d, c in NSFW_DEFINITIONS.items())


def rank_sql(column: str, table: str) -> str:
    """A CTE ``<column>_rank`` (``column``, ``rank``): each distinct value of ``table.column`` and
    its rank from 0 in sorted order, so a query can hand out numbers instead of text."""
    return (f"{column}_rank AS (SELECT {column}, CAST(row_number() OVER (ORDER BY {column}) - 1 "
            f"AS INTEGER) AS rank FROM (SELECT DISTINCT {column} FROM {table}))")


def shared_text(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with each repeated text value of ``columns`` held once (DuckDB hands a query's
    text over as one new string per row; per-user tables repeat a user on every month and a
    month on every user). Values and dtypes are unchanged; returns ``frame``, changed in place."""
    for c in columns:
        values = frame[c].to_numpy()
        if values.dtype != object or frame[c].isna().any():
            continue  # only text without missing values, whose values cannot change
        codes, uniques = pd.factorize(values)
        frame[c] = np.asarray(uniques, dtype=object)[codes]
    return frame


def split_definitions(wide: pd.DataFrame, keys: list[str],
                      extra: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """Definition → its frame of ``keys`` plus ``n`` and ``k`` (and each ``extra`` count), from a
    frame with ``n_<d>``/``k_<d>`` (and ``<extra>_<d>``) columns for every definition
    (:func:`definition_counts_sql`). Counts are integers, missing ones zero."""
    out = {}
    for d in NSFW_DEFINITIONS:
        columns = {f"{c}_{d}": c for c in ("n", "k", *extra)}
        part = wide[[*keys, *columns]].rename(columns=columns)
        part[list(columns.values())] = part[list(columns.values())].fillna(0).astype("int64")
        out[d] = part.reset_index(drop=True)
    return out


def months_of(series: pd.Series) -> pd.Series:
    """UTC calendar month ``YYYY-MM`` of a pandas timestamp column."""
    ts = pd.to_datetime(series, utc=True)
    return ts.dt.strftime("%Y-%m")


def as_bool(series: pd.Series) -> pd.Series:
    """A nullable boolean column as plain bool (null → False) for counting."""
    return series.fillna(False).astype(bool)


def flag_share_by_month(created_at: pd.Series, flag: pd.Series) -> pd.DataFrame:
    """Per month of ``created_at``: items whose ``flag`` is known (``n``), items flagged (``k``),
    and the share with its Wilson interval. A null flag is left out of ``n``."""
    data = pd.DataFrame({"month": months_of(created_at), "flag": flag})
    data = data[data["flag"].notna()]
    out = (data.assign(k=data["flag"].astype(bool).astype(int))
           .groupby("month", sort=True).agg(n=("k", "size"), k=("k", "sum")).reset_index())
    return with_share(out)


def two_groups(n_a: float, n_b: float, neither: str, no_a: str, no_b: str) -> NotEstimable | None:
    """Why two groups cannot be compared (``neither``: both empty, ``no_a``: the first is
    empty, ``no_b``: the second), or None when both hold something."""
    if n_a <= 0 and n_b <= 0:
        return NotEstimable(neither)
    if n_a <= 0:
        return NotEstimable(no_a)
    if n_b <= 0:
        return NotEstimable(no_b)
    return None


def nsfw_wording(definition: str, unit: str = "image") -> dict[str, str]:
    """The reasons an NSFW comparison or trend under ``definition`` is not estimable, as the
    keyword arguments of :func:`two_groups` (NSFW first) and of :func:`~helpers.stats.share_trend`."""
    label = NSFW_DEFINITION_LABELS[definition]
    return {"neither": f"no {unit} has a known NSFW label under this definition ({label})",
            "no_a": f"every {unit} is SFW under this definition ({label})",
            "no_b": f"every {unit} is NSFW under this definition ({label})"}


def nsfw_groups(n_nsfw: float, n_sfw: float, definition: str,
                unit: str = "image") -> NotEstimable | None:
    """Why NSFW and SFW ``unit``s cannot be compared under ``definition`` (None when they can)."""
    return two_groups(n_nsfw, n_sfw, **nsfw_wording(definition, unit))


def nsfw_trend_wording(definition: str, unit: str = "image") -> dict[str, str]:
    """``never``/``always`` reasons of :func:`~helpers.stats.share_trend` for an NSFW share."""
    wording = nsfw_wording(definition, unit)
    return {"never": wording["no_a"], "always": wording["no_b"]}


def compare_groups(counts: pd.DataFrame, metric: str, a: object, b: object,
                    a_name: str, b_name: str) -> dict[str, float | str]:
    """Medians, means and the Mann-Whitney test of one metric between two groups."""
    test = mann_whitney_from_counts(counts, value="value", group="group", n="n", a=a, b=b)
    row: dict[str, float | str] = {"metric": metric}
    for label, g in ((a_name, a), (b_name, b)):
        part = counts[counts["group"] == g]
        total = part["n"].sum()
        row[f"n_{label}"] = float(total)
        row[f"median_{label}"] = quantile_from_counts(part["value"], part["n"], 0.5)
        row[f"mean_{label}"] = float((part["value"] * part["n"]).sum() / total) if total else math.nan
    row.update({"u": test["u"], "z": test["z"], "p_value": test["p_value"],
                "rank_biserial": test["rank_biserial"],
                "prob_superiority": test["prob_superiority"]})
    return row


def table_of(value: Any) -> pd.DataFrame | NotEstimable:
    """How a notebook shows one result: a frame as it is, a dict of numbers as a one-row frame,
    a :class:`~helpers.stats.NotEstimable` as its sentence."""
    if isinstance(value, (pd.DataFrame, NotEstimable)):
        return value
    return pd.DataFrame([value])
