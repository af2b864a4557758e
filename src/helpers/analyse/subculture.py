"""Subculture: tools and practices measured apart, and the minor-coded ∧ NSFW co-occurrence.

* **Tools.** Base-model families of anime/booru lineage (:data:`helpers.schema.BOORU_LINEAGE`,
  documented there with why): their share of the images and of the new models of each month.
* **Practices.** The share of prompts written in booru tag syntax (and with Pony tokens) by
  base-model family, with user-bootstrap intervals; whether prompts made with booru-lineage
  models use booru syntax more than prompts made with other families, pooled and within the same
  user and month (Mantel–Haenszel), so neither who posts nor when can produce it. Tools that
  carry a practice show up as a higher syntax share in their lineage.
* **Minor-coded ∧ NSFW.** Prompts with minor-coded terms that are NSFW, per month, as counts
  and shares only.

The syntax markers of lexicon v2 hold no content term, so their association with NSFW (in
:func:`helpers.analyse.nsfw_share_by_marker`) is not true by construction; the sexual-terms
marker's is, and is labelled "definitional", never reported as a finding.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .. import db
from ..schema import (BASE_MODEL_FAMILIES, MARKER_KINDS, MARKER_LABELS, MARKERS_DROPPED_ON_PROMPTS,
                      OTHER_FAMILY, base_model_family_sql, is_booru_lineage, marker_column)
from ..stats import NotEstimable, with_share
from .common import flag_column, month_sql, shared_text
from .users import (N_BOOT, cluster_bootstrap_odds_ratio, cluster_bootstrap_shares,
                    mantel_haenszel_odds_ratio)

#: Syntax markers analysed by family (the syntax markers valid on prompts, in reporting order).
SYNTAX_MARKERS: tuple[str, ...] = tuple(m for m, kind in MARKER_KINDS.items()
                                        if kind == "syntax" and m not in MARKERS_DROPPED_ON_PROMPTS)
#: How the two shares of :func:`minor_nsfw_by_month` are named.
MINOR_NSFW_MEASURES: dict[str, str] = {
    "of_prompts": "minor-coded and NSFW, share of prompts",
    "of_minor": "NSFW, share of minor-coded prompts",
}


def _family_order(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    order = {f: i for i, f in enumerate(BASE_MODEL_FAMILIES)}
    return frame.sort_values(by, key=lambda s: s.map(order) if s.name == "family" else s,
                             kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- tools
def lineage_share_by_month(family_monthly: pd.DataFrame) -> pd.DataFrame:
    """Share of the month's images (or new models) from anime/booru-lineage families.

    ``family_monthly`` is a per (month, family) frame with ``k`` (items of the family) and ``n``
    (items of the month), as :func:`helpers.analyse.links.images_by_family_by_month` and
    :func:`~helpers.analyse.links.new_models_by_family_by_month` give. Two denominators, one row
    each per month: ``all`` items of the month and items whose family is ``known`` (not
    ``other/unknown``), since a source that often lacks the base model would dilute the first.
    Columns: month, denominator, k, n, share, ci_low, ci_high (Wilson 95%).
    """
    columns = ["month", "denominator", "k", "n", "share", "ci_low", "ci_high"]
    if family_monthly.empty:
        return pd.DataFrame(columns=columns)
    data = family_monthly.assign(lineage=family_monthly["family"].map(is_booru_lineage),
                                 known=family_monthly["family"] != OTHER_FAMILY)
    data = data.assign(k_lineage=data["k"].where(data["lineage"], 0),
                       k_known=data["k"].where(data["known"], 0))
    per_month = data.groupby("month").agg(k=("k_lineage", "sum"), n_all=("n", "first"),
                                          n_known=("k_known", "sum")).reset_index()
    parts = [per_month[["month", "k"]].assign(denominator=name, n=per_month[col])
             for name, col in (("all", "n_all"), ("known", "n_known"))]
    out = pd.concat(parts, ignore_index=True)
    out[["k", "n"]] = out[["k", "n"]].astype("int64")
    return with_share(out).sort_values(["denominator", "month"], ignore_index=True)[columns]


def syntax_counts(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Per user, month and base-model family: prompts (``n``) and prompts with each syntax marker
    (``k_<marker>``), from one grouped pass. Images without a user hash are one cluster each."""
    con = db.connection_or_default(con)
    parts = ", ".join(f"count_if({marker_column(m)}) AS k_{m}" for m in SYNTAX_MARKERS)
    # The family patterns run once per distinct base model, not once per image.
    return shared_text(con.execute(f"""
        WITH families AS (
            SELECT base_model, {base_model_family_sql('base_model')} AS family
            FROM (SELECT DISTINCT base_model FROM {db.table_sql(images)}))
        SELECT coalesce(i.user_hash, 'image:' || CAST(i.image_id AS VARCHAR)) AS user,
               {month_sql('i.created_at')} AS month, f.family, count(*) AS n, {parts}
        FROM {db.table_sql(images)} i JOIN families f ON f.base_model IS NOT DISTINCT FROM i.base_model
        WHERE i.prompt IS NOT NULL
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""").df(), ["user", "month", "family"])


def syntax_share_by_family(counts: pd.DataFrame, n_boot: int = N_BOOT,
                           seed: int = 0) -> pd.DataFrame | NotEstimable:
    """Share of prompts with each syntax marker by base-model family (from :func:`syntax_counts`),
    with the Wilson interval and the user-bootstrap interval side by side.

    One row per (marker, family): marker, family, booru_lineage, n, k, share, ci_low, ci_high,
    boot_low, boot_high, users. :class:`NotEstimable` when no image has a prompt.
    """
    if counts.empty or counts["n"].sum() == 0:
        return NotEstimable("no image has a prompt")
    per_user = counts.groupby(["user", "family"], as_index=False).sum(numeric_only=True)
    # Every (marker, family) cell in one bootstrap: the markers share their users and weights.
    family_code, families = pd.factorize(per_user["family"], sort=True)
    stacked = pd.concat([pd.DataFrame({"user": per_user["user"], "n": per_user["n"],
                                       "k": per_user[f"k_{m}"],
                                       "cell": i * len(families) + family_code})
                         for i, m in enumerate(SYNTAX_MARKERS)], ignore_index=True)
    out = cluster_bootstrap_shares(stacked, group="cell", n_boot=n_boot, seed=seed)
    marker, family = np.divmod(out.pop("cell").to_numpy(), len(families))
    out.insert(0, "marker", np.asarray(SYNTAX_MARKERS, dtype=object)[marker])
    out.insert(1, "family", np.asarray(families, dtype=object)[family])
    out.insert(2, "booru_lineage", out["family"].map(is_booru_lineage).astype(bool))
    return _family_order(out, ["marker", "family"])


def _lineage_split(counts: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per ``by`` group, prompts of known family: all (``n``), with booru syntax (``k``), and the
    same in booru-lineage families (``n_adapter``, ``k_adapter``: the column names the shared
    user-bootstrap and Mantel–Haenszel estimators of :mod:`.users` read for "the group")."""
    known = counts[counts["family"] != OTHER_FAMILY]
    lineage = known["family"].map(is_booru_lineage).astype(bool)
    data = pd.DataFrame({**{c: known[c] for c in by}, "n": known["n"], "k": known["k_booru"],
                         "n_adapter": known["n"].where(lineage, 0),
                         "k_adapter": known["k_booru"].where(lineage, 0)})
    return data.groupby(by, as_index=False).sum()


def booru_syntax_by_lineage(counts: pd.DataFrame, n_boot: int = N_BOOT,
                            seed: int = 0) -> dict[str, float] | NotEstimable:
    """Do prompts made with booru-lineage models use booru syntax more than prompts made with
    other (known) families?

    Shares of booru-syntax prompts in and outside the lineage, the pooled odds ratio (lineage vs
    other) with its Woolf and user-bootstrap intervals, and the Mantel–Haenszel odds ratio within
    user × month strata: the same person in the same month, with a booru-lineage model vs with
    another. :class:`NotEstimable` when one side has no prompt or no stratum has both.
    """
    per_user = _lineage_split(counts, ["user"])
    n_in = float(per_user["n_adapter"].sum())
    n_out = float((per_user["n"] - per_user["n_adapter"]).sum())
    if n_in == 0:
        return NotEstimable("no prompt was made with a booru-lineage model")
    if n_out == 0:
        return NotEstimable("every prompt of known family was made with a booru-lineage model")
    k_in = float(per_user["k_adapter"].sum())
    k_out = float((per_user["k"] - per_user["k_adapter"]).sum())
    pooled = cluster_bootstrap_odds_ratio(per_user, n_boot=n_boot, seed=seed)
    out: dict[str, float | NotEstimable] = {
        "n_lineage": n_in, "k_lineage": k_in, "share_lineage": k_in / n_in,
        "n_other": n_out, "k_other": k_out, "share_other": k_out / n_out,
        **_finite({key: pooled[key] for key in ("odds_ratio", "ci_low", "ci_high", "boot_low", "boot_high")},
                  "the pooled odds ratio or its interval is not finite")}
    adjusted = mantel_haenszel_odds_ratio(_lineage_split(counts, ["user", "month"]))
    out["informative_strata"] = float(adjusted.get("informative_strata", 0))
    mh = {"mh_odds_ratio": adjusted["odds_ratio"], "mh_ci_low": adjusted["ci_low"],
          "mh_ci_high": adjusted["ci_high"]}
    if out["informative_strata"] == 0:
        reason = NotEstimable("no user posted prompts with a booru-lineage model and with another "
                              "family in the same month")
        mh = {key: reason for key in mh}
    out.update(_finite(mh, "the within-user-and-month odds ratio or its interval is not finite "
                           "(every informative stratum points one way)"))
    return out


def _finite(values: dict[str, float | NotEstimable], reason: str) -> dict[str, float | NotEstimable]:
    """``values`` unchanged when every one is a finite number, else all :class:`NotEstimable`
    (an estimate without its interval, or an interval without its estimate, is not reported)."""
    if all(isinstance(v, (int, float)) and np.isfinite(v) for v in values.values()):
        return values
    first = next((v for v in values.values() if isinstance(v, NotEstimable)), NotEstimable(reason))
    return {key: first for key in values}


# --------------------------------------------------------------------------- harm co-occurrence
def minor_nsfw_by_month(images: Path, definition: str = "r",
                        con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame | NotEstimable:
    """Prompts with minor-coded terms that are NSFW, per month: counts and shares only.

    Among prompts whose NSFW label is known under ``definition``: ``prompts``, ``minor`` (with a
    minor-coded term), ``minor_nsfw`` (minor-coded and NSFW). Long format, one row per (month,
    measure) with ``k``, ``n``, Wilson ``share`` interval: ``of_prompts`` (minor_nsfw / prompts)
    and ``of_minor`` (minor_nsfw / minor; no share when a month has no minor-coded prompt).
    :class:`NotEstimable` when no prompt has a known label.
    """
    con = db.connection_or_default(con)
    flag, minor = flag_column(definition), marker_column("minor")
    wide = con.execute(f"""
        SELECT {month_sql()} AS month, count(*) AS prompts, count_if({minor}) AS minor,
               count_if({minor} AND {flag}) AS minor_nsfw
        FROM {db.table_sql(images)} WHERE prompt IS NOT NULL AND {flag} IS NOT NULL
        GROUP BY 1 ORDER BY 1""").df()
    if wide.empty:
        return NotEstimable("no prompt has a known NSFW label under this definition")
    parts = [wide.assign(measure=measure, k=wide["minor_nsfw"], n=wide[denominator])
             for measure, denominator in (("of_prompts", "prompts"), ("of_minor", "minor"))]
    out = pd.concat(parts, ignore_index=True)
    out[["prompts", "minor", "minor_nsfw", "k", "n"]] = \
        out[["prompts", "minor", "minor_nsfw", "k", "n"]].astype("int64")
    out.insert(1, "definition", definition)
    out = with_share(out)
    return out[["month", "definition", "measure", "prompts", "minor", "minor_nsfw", "k", "n",
                "share", "ci_low", "ci_high"]].sort_values(["measure", "month"], ignore_index=True)


def minor_nsfw_totals(monthly: pd.DataFrame | NotEstimable) -> dict[str, float] | NotEstimable:
    """Totals over the window of :func:`minor_nsfw_by_month`: prompts, minor-coded prompts, those
    that are NSFW, and the two shares (counts and shares only)."""
    if isinstance(monthly, NotEstimable):
        return monthly
    part = monthly[monthly["measure"] == "of_prompts"]
    prompts, minor, both = (float(part[c].sum()) for c in ("prompts", "minor", "minor_nsfw"))
    return {"prompts": prompts, "minor": minor, "minor_nsfw": both,
            "share_of_prompts": both / prompts if prompts else NotEstimable("no prompt"),
            "share_of_minor": both / minor if minor else NotEstimable("no prompt carries a minor-coded term")}


# --------------------------------------------------------------------------- results
def subculture_image_fields(images: Path, family_monthly: pd.DataFrame,
                            models: pd.DataFrame | None, definition: str, n_boot: int, seed: int,
                            con: duckdb.DuckDBPyConnection | None = None) -> dict:
    """Notebook 03's subculture results: booru-lineage share of images and of new models by
    month, syntax shares by family, booru syntax in vs outside the lineage, and the minor-coded ∧
    NSFW co-occurrence by month with its totals. ``family_monthly`` is the images-by-family frame
    the link results already hold (not recomputed); ``models`` is the processed models frame,
    when there is one."""
    from .links import new_models_by_family_by_month

    counts = syntax_counts(images, con)
    minor = minor_nsfw_by_month(images, definition, con)
    no_models = NotEstimable("no models table: no model's base model is known")
    return {
        "lineage_monthly": lineage_share_by_month(family_monthly),
        "lineage_models_monthly": (lineage_share_by_month(new_models_by_family_by_month(models))
                                   if models is not None and len(models) else no_models),
        "syntax_by_family": syntax_share_by_family(counts, n_boot, seed),
        "syntax_by_lineage": (NotEstimable("no image has a prompt") if counts.empty
                              else booru_syntax_by_lineage(counts, n_boot, seed)),
        "minor_nsfw_monthly": minor,
        "minor_nsfw": minor_nsfw_totals(minor),
    }


def syntax_family_table(syntax: pd.DataFrame | NotEstimable) -> pd.DataFrame | NotEstimable:
    """:func:`syntax_share_by_family` with human labels, for the notebook and the paper."""
    if isinstance(syntax, NotEstimable):
        return syntax
    out = syntax.assign(marker=syntax["marker"].map(MARKER_LABELS),
                        booru_lineage=np.where(syntax["booru_lineage"], "yes", "no"))
    return out[["marker", "family", "booru_lineage", "n", "share", "boot_low", "boot_high"]]
