"""Analyses that need the image → model link: real-person adapter use, and base-model families.

Every function reads the processed images table, the link table (``data/processed/links.parquet``,
:mod:`helpers.link`) and the processed models table through DuckDB and returns a small frame of
counts with Wilson intervals. An image *uses a real-person adapter* when one of its resolved
adapter links points to a model labelled ``is_real_person``; images whose calls did not resolve
count as not using one, so these shares are lower bounds (the linkage report gives the
unresolved share).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .. import db
from ..schema import ADAPTER_CALL_NAME_PATTERN, BASE_MODEL_FAMILIES, NSFW_DEFINITIONS, base_model_family_sql
from ..stats import NotEstimable, odds_ratio, with_share
from .common import (definition_counts_sql, flag_column, month_sql, months_of, rank_sql,
                     split_definitions)


def link_counts_by_definition(images: Path, links: Path, models: Path,
                              con: duckdb.DuckDBPyConnection | None = None) -> dict[str, pd.DataFrame]:
    """:func:`link_counts` under every NSFW definition from one pass over the images and their
    links: definition → its frame."""
    con = db.connection_or_default(con)
    wide = con.execute(f"""
        SELECT {month_sql('i.created_at')} AS month, {base_model_family_sql('i.base_model')} AS family,
               coalesce(rp.uses_real_person_adapter, false) AS uses_real_person_adapter,
               count(*) AS images, {definition_counts_sql('i')}
        FROM {db.table_sql(images)} i
        LEFT JOIN (
            SELECT l.image_id, bool_or(coalesce(m.is_real_person, false)) AS uses_real_person_adapter
            FROM {db.table_sql(links)} l
            JOIN {db.table_sql(models)} m ON m.model_id = l.model_id
            WHERE l.kind = 'adapter' GROUP BY l.image_id
        ) rp ON rp.image_id = i.image_id
        GROUP BY ALL ORDER BY ALL""").df()
    out = split_definitions(wide, ["month", "family", "uses_real_person_adapter", "images"])
    for d, frame in out.items():
        frame["images"] = frame["images"].astype("int64")
        frame.attrs["definition"] = d
    return out


def link_counts(images: Path, links: Path, models: Path, definition: str = "r",
                con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """One pass over the images and their links: images (``images``), images whose NSFW label is
    known (``n``) and NSFW images (``k``) per month, base-model family and whether the image uses
    a real-person adapter (a resolved adapter link to a model labelled ``is_real_person``). The
    analyses below reduce this small frame; none reads the images again."""
    flag_column(definition)
    return link_counts_by_definition(images, links, models, con)[definition]


def real_person_adapter_use_by_month(counts: pd.DataFrame) -> pd.DataFrame:
    """Per month: images (``n``), images using at least one real-person adapter (``k``), share
    with its Wilson interval (from :func:`link_counts`)."""
    out = (counts.assign(rp=counts["images"].where(counts["uses_real_person_adapter"], 0))
           .groupby("month", sort=True).agg(n=("images", "sum"), k=("rp", "sum")).reset_index())
    return with_share(out)


def nsfw_share_by_real_person_adapter(counts: pd.DataFrame) -> pd.DataFrame:
    """NSFW share of images that use a real-person adapter vs images that do not, with Wilson
    intervals and the odds ratio (with vs without, Woolf interval) repeated on both rows (from
    :func:`link_counts`)."""
    out = (counts.groupby("uses_real_person_adapter")[["n", "k"]].sum()
           .reindex([False, True], fill_value=0).rename_axis("uses_real_person_adapter").reset_index())
    out[["n", "k"]] = out[["n", "k"]].astype("int64")
    out.insert(0, "definition", counts.attrs.get("definition", "r"))
    out = with_share(out)
    with_, without = out.iloc[1], out.iloc[0]
    ratio = odds_ratio(int(with_.k), int(with_.n), int(without.k), int(without.n))
    out["odds_ratio"], out["or_ci_low"], out["or_ci_high"] = (ratio["odds_ratio"], ratio["ci_low"],
                                                             ratio["ci_high"])
    return out


def real_person_share_of_adapter_links(links: Path, models: Path,
                                       con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Resolved adapter links (``n``) and those to real-person models (``k``), with the share."""
    con = db.connection_or_default(con)
    out = con.execute(f"""
        SELECT count(*) AS n, count(*) FILTER (WHERE coalesce(m.is_real_person, false)) AS k
        FROM {db.table_sql(links)} l JOIN {db.table_sql(models)} m
          ON m.model_id = l.model_id
        WHERE l.kind = 'adapter'""").df()
    return with_share(out)


def _family_frame(frame: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Families in reporting order (families absent from the data left out)."""
    order = {f: i for i, f in enumerate(BASE_MODEL_FAMILIES)}
    return frame.sort_values(index, key=lambda s: s.map(order) if s.name == "family" else s,
                             kind="stable").reset_index(drop=True)


def images_by_family_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Per month and base-model family: images (``k``) out of the month's images (``n``)."""
    con = db.connection_or_default(con)
    out = con.execute(f"""
        WITH f AS (SELECT {month_sql()} AS month, {base_model_family_sql('base_model')} AS family
                   FROM {db.table_sql(images)})
        SELECT month, family, count(*) AS k, sum(count(*)) OVER (PARTITION BY month) AS n
        FROM f GROUP BY month, family""").df()
    out["n"] = out["n"].astype("int64")
    return _family_frame(with_share(out), ["month", "family"])


def nsfw_share_by_family(counts: pd.DataFrame) -> pd.DataFrame:
    """Per base-model family: images, NSFW share (Wilson interval), and the share of images that
    use a real-person adapter (from :func:`link_counts`)."""
    out = (counts.assign(rp=counts["images"].where(counts["uses_real_person_adapter"], 0))
           .groupby("family").agg(n=("n", "sum"), k=("k", "sum"), images=("images", "sum"),
                                  real_person_adapter_images=("rp", "sum")).reset_index())
    out.insert(0, "definition", counts.attrs.get("definition", "r"))
    out = with_share(out)
    out["real_person_adapter_share"] = (out["real_person_adapter_images"] / out["images"]).where(
        out["images"] > 0)
    return _family_frame(out, ["family"])


def nsfw_share_by_family_by_month(counts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per month, base-model family and NSFW definition: images whose label is known (``n``),
    NSFW images (``k``), the share with its Wilson interval (from :func:`link_counts_by_definition`).
    Families in reporting order, definitions in :data:`~helpers.schema.NSFW_DEFINITIONS` order."""
    parts = []
    for d, frame in counts.items():
        part = frame.groupby(["month", "family"], sort=True)[["n", "k"]].sum().reset_index()
        part.insert(2, "definition", d)
        parts.append(part)
    out = with_share(pd.concat(parts, ignore_index=True))
    order = {d: i for i, d in enumerate(NSFW_DEFINITIONS)}
    out = out.sort_values("definition", key=lambda s: s.map(order), kind="stable")
    return _family_frame(out, ["definition", "family", "month"])


#: ``month`` of the rows of :func:`family_clustered` pooled over every month.
ALL_MONTHS = "all"


@dataclass(frozen=True)
class FamilyCells:
    """Per user and cell (NSFW definition × base-model family × month, and × every month pooled):
    images with a known NSFW label and NSFW images, with every label as a number.

    ``counts`` has columns ``user`` (the user's rank among the sorted user keys), ``cell``,
    ``n``, ``k``; cell ``c`` is definition ``definitions[c // (F·M)]``, family
    ``families[c // M % F]`` and month ``months[c % M]`` (F families, M months, each list
    sorted; ``months`` holds :data:`ALL_MONTHS`)."""

    counts: pd.DataFrame
    definitions: list[str]
    families: list[str]
    months: list[str]


def family_user_cells(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> FamilyCells:
    """:class:`FamilyCells` from one pass over the images: users, families and months leave
    DuckDB as their ranks in sorted order (the order the user bootstrap gives users and cells),
    so no text is held per row, and the cells pooled over months are summed from the numbers.
    Images without a user hash are a cluster each."""
    con = db.connection_or_default(con)
    counts = [f"{c}_{d}" for d in NSFW_DEFINITIONS for c in ("n", "k")]
    wide = con.execute(f"""
        WITH grouped AS (
            SELECT coalesce(user_hash, 'image:' || CAST(image_id AS VARCHAR)) AS user,
                   {month_sql()} AS month, {base_model_family_sql('base_model')} AS family,
                   {definition_counts_sql()}
            FROM {db.table_sql(images)} GROUP BY ALL),
        {rank_sql("user", "grouped")}, {rank_sql("family", "grouped")}, {rank_sql("month", "grouped")}
        SELECT user_rank.rank AS user, family_rank.rank AS family, month_rank.rank AS month,
               -- the labels once, on the first user's rows, so no text is held per row
               CASE WHEN user_rank.rank = 0 THEN (SELECT list(family ORDER BY rank) FROM family_rank)
                    END AS families,
               CASE WHEN user_rank.rank = 0 THEN (SELECT list(month ORDER BY rank) FROM month_rank)
                    END AS months,
               {", ".join(counts)}
        FROM grouped JOIN user_rank USING (user) JOIN family_rank USING (family)
             JOIN month_rank USING (month)""").df()
    first = wide.index[wide["user"] == 0]
    families = list(wide.at[first[0], "families"]) if len(first) else []
    observed = list(wide.at[first[0], "months"]) if len(first) else []
    months = sorted({*observed, ALL_MONTHS})
    month_code = np.asarray([months.index(m) for m in observed], dtype=np.int64)
    pooled = wide.groupby(["user", "family"], sort=False)[counts].sum().reset_index()
    pooled["month"] = months.index(ALL_MONTHS)
    parts = []
    for i, d in enumerate(sorted(NSFW_DEFINITIONS)):
        for frame, month in ((wide, month_code[wide["month"].to_numpy()] if len(wide) else 0),
                             (pooled, pooled["month"].to_numpy())):
            parts.append(pd.DataFrame({
                "user": frame["user"].to_numpy(), "n": frame[f"n_{d}"].to_numpy(np.int64),
                "k": frame[f"k_{d}"].to_numpy(np.int64),
                "cell": (i * len(families) + frame["family"].to_numpy(np.int64)) * len(months) + month}))
    return FamilyCells(pd.concat(parts, ignore_index=True), sorted(NSFW_DEFINITIONS), families, months)


def family_clustered(cells: FamilyCells, n_boot: int, seed: int) -> pd.DataFrame:
    """NSFW share by definition, base-model family and month (and over all months, ``month`` =
    :data:`ALL_MONTHS`) with the naive Wilson interval and the user-bootstrap one, side by side
    (:func:`~helpers.analyse.users.cluster_bootstrap_shares`; every cell resampled with the
    same user weights in one pass). ``cells`` is :func:`family_user_cells`."""
    from .users import cluster_bootstrap_shares

    columns = ["definition", "family", "month", "n", "k", "share", "ci_low", "ci_high", "boot_low",
               "boot_high", "users"]
    if not (cells.counts["n"] > 0).any():
        return pd.DataFrame(columns=columns)
    out = cluster_bootstrap_shares(cells.counts, group="cell", n_boot=n_boot, seed=seed)
    definition, rest = np.divmod(out["cell"].to_numpy(), len(cells.families) * len(cells.months))
    family, month = np.divmod(rest, len(cells.months))
    out["definition"] = np.asarray(cells.definitions, dtype=object)[definition]
    out["family"] = np.asarray(cells.families, dtype=object)[family]
    out["month"] = np.asarray(cells.months, dtype=object)[month]
    out = out.drop(columns="cell")[columns]
    order = {d: i for i, d in enumerate(NSFW_DEFINITIONS)}
    out = out.sort_values("definition", key=lambda s: s.map(order), kind="stable")
    return _family_frame(out, ["definition", "family", "month"])


def with_boot(frame: pd.DataFrame, clustered: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame`` with the user-bootstrap interval (``boot_low``, ``boot_high``) of the matching
    rows of :func:`family_clustered` beside its Wilson one."""
    return frame.merge(clustered[[*keys, "boot_low", "boot_high"]], on=keys, how="left")


def new_models_by_family_by_month(models: pd.DataFrame) -> pd.DataFrame:
    """Per month of creation and base-model family: new models (``k``) out of the month's (``n``)."""
    from ..schema import base_model_family

    data = pd.DataFrame({"month": months_of(models["created_at"]),
                         "family": [base_model_family(b if isinstance(b, str) else None)
                                    for b in models["base_model"]]})
    out = data.groupby(["month", "family"]).size().rename("k").reset_index()
    out["n"] = out.groupby("month")["k"].transform("sum")
    return _family_frame(with_share(out), ["month", "family"])


def link_fields(images: Path, links: Path | None, models: Path | None, definition: str,
                n_boot: int, seed: int, con: duckdb.DuckDBPyConnection | None = None,
                counts: dict[str, pd.DataFrame] | None = None,
                strata: dict[str, pd.DataFrame] | None = None) -> dict:
    """Notebook 03's results that need the image → model link: real-person adapter use by month,
    NSFW with vs without a real-person adapter (raw, and adjusted for user × month among
    adapter-calling images, :func:`real_person_adapter_adjusted` of ``strata``), the real-person share of adapter links, and
    base-model families (images by month, NSFW by family, and NSFW by family and month under
    every definition, each with its Wilson and user-bootstrap intervals; ``n_boot`` replicates
    seeded by ``seed``, the per-family pooled cells of every definition in
    ``family_nsfw_clustered``). ``counts`` (:func:`link_counts_by_definition`) is read when not given.
    Without a link table or a models table the link results are
    :class:`~helpers.stats.NotEstimable`."""
    out: dict = {"family_monthly": images_by_family_by_month(images, con)}
    if not link_inputs(links, models):
        reason = NotEstimable("no models table: no image can be linked to a model")
        return {**out, "real_person_adapter_monthly": reason, "real_person_adapter_nsfw": reason,
                "real_person_adapter_links": reason, "real_person_adapter_adjusted": reason,
                "family_nsfw": reason, "family_nsfw_monthly": reason,
                "family_nsfw_clustered": reason}
    counts = counts if counts is not None else link_counts_by_definition(images, links, models, con)
    strata = strata if strata is not None else real_person_adapter_strata_by_definition(
        images, links, models, con)
    headline = counts[definition]
    shares = real_person_share_of_adapter_links(links, models, con)
    clustered = family_clustered(family_user_cells(images, con), n_boot, seed)
    pooled = clustered[clustered["month"] == ALL_MONTHS].drop(columns="month").reset_index(drop=True)
    return {**out, "real_person_adapter_monthly": real_person_adapter_use_by_month(headline),
            "real_person_adapter_nsfw": real_person_adapter_comparison(headline),
            "real_person_adapter_adjusted": real_person_adapter_adjusted(strata[definition]),
            "real_person_adapter_links": (NotEstimable("no adapter call resolved to a model")
                                          if shares["n"].iloc[0] == 0 else shares),
            "family_nsfw": with_boot(nsfw_share_by_family(headline),
                                     pooled[pooled["definition"] == definition], ["family"]),
            "family_nsfw_monthly": with_boot(nsfw_share_by_family_by_month(counts), clustered,
                                             ["definition", "family", "month"]),
            "family_nsfw_clustered": pooled}


def link_inputs(links: Path | None, models: Path | None) -> bool:
    """Whether a run has both a link table and a models table to analyse through."""
    return links is not None and models is not None and Path(links).exists() and Path(models).exists()


def real_person_adapter_comparison(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`nsfw_share_by_real_person_adapter`, or :class:`~helpers.stats.NotEstimable` when
    no image, or every image, uses a resolved real-person adapter."""
    from ..stats import NotEstimable

    nsfw = nsfw_share_by_real_person_adapter(counts)
    groups = nsfw.set_index("uses_real_person_adapter")["n"]
    if groups.sum() == 0:
        return NotEstimable("no image has a known NSFW label under this definition")
    if groups.get(True, 0) == 0:
        return NotEstimable("no image uses a resolved real-person adapter")
    if groups.get(False, 0) == 0:
        return NotEstimable("every image uses a real-person adapter")
    return nsfw


# --------------------------------------------------------------------------- adjusted for user and month
#: How a link was made from a prompt's adapter call (the name-matching sources of :mod:`helpers.link`).
CALL_LINK_SOURCES: tuple[str, ...] = ("file_name", "version_name", "model_name")


def real_person_adapter_strata_by_definition(images: Path, links: Path, models: Path,
                                             con: duckdb.DuckDBPyConnection | None = None
                                             ) -> dict[str, pd.DataFrame]:
    """Per user × month, among images that call an adapter and whose calls all resolved: images
    with a known NSFW label (``n``), NSFW (``k``), and the same for those calling a real-person
    adapter (``n_adapter``, ``k_adapter``), under every NSFW definition (definition → frame, the
    strata of :func:`~helpers.analyse.users.mantel_haenszel_odds_ratio`).

    Restricted to adapter-calling images so the comparison is real-person vs other adapters,
    and to images whose calls all resolved so the exposure is known: an image counts when its
    distinct call names gave as many distinct name-matched adapter links (two names resolving
    to one model leave an image out, which only makes the restriction stricter). Images
    without a user hash are a cluster each. The prompt scan touches adapter-calling images only.
    """
    con = db.connection_or_default(con)
    pattern = db.sql_literal(ADAPTER_CALL_NAME_PATTERN)
    sources = ", ".join(db.sql_literal(h) for h in CALL_LINK_SOURCES)
    flags = ", ".join(f"{c}" for c in dict.fromkeys(NSFW_DEFINITIONS.values()))
    person = ", ".join(f"count(c.{c}) FILTER (WHERE c.person) AS n_adapter_{d}, "
                       f"count(*) FILTER (WHERE c.{c} AND c.person) AS k_adapter_{d}"
                       for d, c in NSFW_DEFINITIONS.items())
    # The image scan keeps each prompt from its first "<" (every call starts there, so the calls
    # found are the same); the name pattern runs once per image after the join, on the images
    # with a resolved name-matched link only (``r`` keeps no image without one, so the names
    # need no filter of their own: one would be pushed into the scan and run the pattern twice).
    wide = con.execute(f"""
        WITH r AS (
            SELECT l.image_id, count(DISTINCT l.model_id) AS resolved,
                   bool_or(coalesce(m.is_real_person, false)) AS person
            FROM {db.table_sql(links)} l
            LEFT JOIN {db.table_sql(models)} m ON m.model_id = l.model_id
            WHERE l.kind = 'adapter' AND l.how IN ({sources}) GROUP BY l.image_id
            HAVING count(DISTINCT l.model_id) > 0),
        i AS (
            SELECT image_id, user_hash, created_at, {flags}, substr(prompt, strpos(prompt, '<')) AS calls
            FROM {db.table_sql(images)}
            WHERE coalesce(n_lora, 0) > 0 AND prompt IS NOT NULL),
        c AS (SELECT i.*, r.resolved, r.person FROM i JOIN r ON r.image_id = i.image_id)
        SELECT coalesce(c.user_hash, 'image:' || CAST(c.image_id AS VARCHAR)) AS user,
               {month_sql('c.created_at')} AS month, {definition_counts_sql('c')}, {person}
        FROM c
        WHERE c.resolved = len(list_distinct(list_filter(
                  list_transform(regexp_extract_all(c.calls, {pattern}, 1), lambda x: trim(x)),
                  lambda x: x <> '')))
        GROUP BY 1, 2 ORDER BY 1, 2""").df()
    return split_definitions(wide, ["user", "month"], extra=("n_adapter", "k_adapter"))


def real_person_adapter_adjusted(strata: pd.DataFrame) -> dict[str, float] | NotEstimable:
    """NSFW odds ratio of images calling a real-person adapter vs images calling other adapters,
    within user × month strata (Mantel–Haenszel, Robins–Breslow–Greenland interval), from
    :func:`real_person_adapter_strata_by_definition`; :class:`~helpers.stats.NotEstimable` when
    no stratum holds both kinds of image."""
    from .users import mantel_haenszel_odds_ratio

    if strata.empty or strata["n"].sum() == 0:
        return NotEstimable("no adapter-calling image whose calls all resolved has a known NSFW label")
    if strata["n_adapter"].sum() == 0:
        return NotEstimable("no adapter-calling image whose calls all resolved uses a real-person adapter")
    out = mantel_haenszel_odds_ratio(strata)
    if out["informative_strata"] == 0:
        return NotEstimable("no user called both a real-person and another adapter in the same month "
                            "(with every call resolved)")
    return out
