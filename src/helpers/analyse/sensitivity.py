"""Every headline estimate under every NSFW definition: the sensitivity tables of notebooks 03
and 04.

Where the line between safe and not safe is drawn (the platform's flag, level ≥ R, level ≥ X)
changes every share; a conclusion that holds under all three does not depend on it. The tables
here are long: one row per (estimate, definition) with its value, interval, what kind of interval
it is, and, where the definition cannot give it, the reason. They are assembled from results
already computed for every definition (one aggregate pass per analysis, reduced per definition),
so nothing is estimated twice.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from ..schema import NSFW_DEFINITIONS
from ..stats import NotEstimable, estimable, wilson_interval

#: Columns of a sensitivity table.
SENSITIVITY_COLUMNS: tuple[str, ...] = ("section", "estimate", "label", "definition", "value",
                                        "ci_low", "ci_high", "interval", "kind", "reason")

#: Image-level headline estimates: key → (section, human label, kind of number, interval).
#: Kinds are those of :func:`helpers.paper.format_value` ("points": a difference of shares).
IMAGE_ESTIMATES: dict[str, tuple[str, str, str, str]] = {
    "share": ("NSFW share", "NSFW share of images", "percent", "Wilson"),
    "share_boot": ("NSFW share", "NSFW share of images, users resampled", "percent", "user bootstrap"),
    "first_month": ("NSFW share", "NSFW share in the first month", "percent", "Wilson"),
    "last_month": ("NSFW share", "NSFW share in the last month", "percent", "Wilson"),
    "trend_or": ("Trend", "Odds ratio per year of the NSFW share", "float", "quasi-binomial"),
    "growth_ratio": ("Trend", "NSFW vs SFW growth ratio per year", "float", "HAC"),
    "growth_ratio_boot": ("Trend", "NSFW vs SFW growth ratio per year, users resampled", "float",
                          "user bootstrap"),
    "shift_change": ("Who posts", "Change of the NSFW share, first to second half", "points",
                     "user bootstrap"),
    "shift_within": ("Who posts", "of which within users active in both halves", "points",
                     "user bootstrap"),
    "shift_who": ("Who posts", "of which from who posts", "points", "user bootstrap"),
    "adapter_or": ("Adapters", "Adapter call vs none: odds ratio", "float", "Woolf"),
    "adapter_or_boot": ("Adapters", "Adapter call vs none: odds ratio, users resampled", "float",
                        "user bootstrap"),
    "adapter_or_adjusted": ("Adapters", "Adapter call vs none: odds ratio, same user and month",
                            "float", "Mantel–Haenszel"),
    "rp_with": ("Real-person adapters", "NSFW share of images with a real-person adapter",
                "percent", "Wilson"),
    "rp_without": ("Real-person adapters", "NSFW share of other images", "percent", "Wilson"),
    "rp_or": ("Real-person adapters", "Real-person adapter vs none: odds ratio", "float", "Woolf"),
    "rp_or_adjusted": ("Real-person adapters", "Real-person vs other adapters: odds ratio, same user "
                       "and month", "float", "Mantel–Haenszel"),
    "reactions_r": ("Engagement", "Reactions, NSFW vs SFW: rank-biserial r", "float", ""),
}
#: Model-level headline estimates, as :data:`IMAGE_ESTIMATES`.
MODEL_ESTIMATES: dict[str, tuple[str, str, str, str]] = {
    "share": ("Models", "NSFW share of models", "percent", "Wilson"),
    "trend_or": ("Models", "Odds ratio per year of the NSFW share of new models", "float",
                 "quasi-binomial"),
    "real_person": ("Real-person models", "NSFW share of real-person models", "percent", "Wilson"),
    "other": ("Real-person models", "NSFW share of other models", "percent", "Wilson"),
    "real_person_or": ("Real-person models", "Real-person vs other models: odds ratio", "float",
                       "Woolf"),
    "female": ("Real-person models", "NSFW share of real-person models depicting women", "percent",
               "Wilson"),
    "male": ("Real-person models", "NSFW share of real-person models depicting men", "percent",
             "Wilson"),
    "downloads_r": ("Engagement", "Downloads, NSFW vs SFW models: rank-biserial r", "float", ""),
}
#: Section of the per-family rows of the image table (kept out of the paper's table).
FAMILY_SECTION = "Base-model family"


def _number(value: Any) -> float:
    return math.nan if value is None or isinstance(value, NotEstimable) else float(value)


def estimate_row(key: str, definition: str, value: Any, low: Any = math.nan, high: Any = math.nan,
                 spec: tuple[str, str, str, str] | None = None) -> dict[str, Any]:
    """One row of a sensitivity table. A :class:`NotEstimable` ``value`` (or a NaN one) leaves
    the numbers empty and gives the reason."""
    section, label, kind, interval = spec if spec is not None else IMAGE_ESTIMATES[key]
    reason = value.reason if isinstance(value, NotEstimable) else ""
    number = _number(value)
    if not reason and not math.isfinite(number):
        reason = "the data do not allow this estimate under this definition"
    if not reason and interval and not all(math.isfinite(_number(v)) for v in (low, high)):
        # an estimate whose interval cannot be computed is not reported without one
        reason = "too few informative groups for an interval under this definition"
    return {"section": section, "estimate": key, "label": label, "definition": definition,
            "value": number, "ci_low": math.nan if reason else _number(low),
            "ci_high": math.nan if reason else _number(high), "interval": interval, "kind": kind,
            "reason": reason}


def _get(result: Any, key: str) -> Any:
    """``result[key]``, or the result itself when it is :class:`NotEstimable`."""
    return result if isinstance(result, NotEstimable) else result[key]


def _row_of(frame: pd.DataFrame | NotEstimable, column: str, value: Any) -> Any:
    """The row of ``frame`` whose ``column`` is ``value`` (a Series), or the reason."""
    if isinstance(frame, NotEstimable):
        return frame
    rows = frame[frame[column] == value]
    return rows.iloc[0] if len(rows) else NotEstimable(f"no {column} = {value} in the data")


def _share_rows(key: str, definition: str, row: Any, spec=None) -> dict[str, Any]:
    if not isinstance(row, NotEstimable) and not row["n"] > 0:
        row = NotEstimable("no item in this group has a known NSFW label under this definition")
    return estimate_row(key, definition, _get(row, "share"), _get(row, "ci_low"), _get(row, "ci_high"),
                        spec)


def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A sensitivity table from its rows, in the columns of :data:`SENSITIVITY_COLUMNS`."""
    return pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))


def image_sensitivity(monthly: pd.DataFrame, trends: Mapping[str, Any], ratios: Mapping[str, Any],
                      adapter: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]],
                      engagement: Mapping[str, Any], links: Mapping[str, Any] | NotEstimable,
                      family: pd.DataFrame | NotEstimable) -> pd.DataFrame:
    """Notebook 03's headline estimates under every definition (rows of :data:`IMAGE_ESTIMATES`,
    then the NSFW share of each base-model family).

    Inputs, each definition → result: ``trends`` (:func:`~helpers.stats.share_trend`),
    ``ratios`` (:func:`~helpers.analyse.growth.growth_ratio`), ``adapter``
    (:func:`~helpers.analyse.images.adapter_comparison`), ``users``
    (:func:`~helpers.analyse.users.user_estimates`), ``engagement``
    (:func:`~helpers.analyse.images.engagement_comparison`), ``links`` ({``raw``:
    :func:`~helpers.analyse.links.real_person_adapter_comparison`, ``adjusted``:
    :func:`~helpers.analyse.links.real_person_adapter_adjusted`}, or one reason for all);
    ``monthly`` is :func:`~helpers.analyse.images.nsfw_share_by_month` and ``family`` the
    ``family_nsfw_clustered`` frame of :func:`~helpers.analyse.links.link_fields`.
    """
    rows: list[dict[str, Any]] = []
    for d in NSFW_DEFINITIONS:
        part = monthly[(monthly["definition"] == d) & (monthly["n"] > 0)].sort_values("month")
        n, k = int(part["n"].sum()), int(part["k"].sum())
        none = NotEstimable("no image has a known NSFW label under this definition")
        overall = none if not n else pd.Series({"n": n, "share": k / n})
        low, high = wilson_interval([k], [n])
        rows.append(estimate_row("share", d, _get(overall, "share"), low[0], high[0]))
        clustered = users[d]["clustered_share"]
        boot = clustered if isinstance(clustered, NotEstimable) else clustered.iloc[0]
        rows.append(estimate_row("share_boot", d, _get(boot, "share"), _get(boot, "boot_low"),
                                 _get(boot, "boot_high")))
        for key, i in (("first_month", 0), ("last_month", -1)):
            rows.append(_share_rows(key, d, part.iloc[i] if len(part) else none))
        trend = trends.get(d, none)
        rows.append(estimate_row("trend_or", d, _get(trend, "odds_ratio_per_year"),
                                 _get(trend, "ci_low"), _get(trend, "ci_high")))
        ratio = ratios.get(d, none)
        rows.append(estimate_row("growth_ratio", d, _get(ratio, "ratio"), _get(ratio, "ratio_low"),
                                 _get(ratio, "ratio_high")))
        boot = ratio if isinstance(ratio, NotEstimable) else {"low": ratio.get("ratio_boot_low", math.nan),
                                                              "high": ratio.get("ratio_boot_high", math.nan)}
        rows.append(estimate_row("growth_ratio_boot", d, _get(ratio, "ratio"), _get(boot, "low"),
                                 _get(boot, "high")))
        decomposition = users[d]["decomposition"]
        for key, part_name in (("shift_change", "change"), ("shift_within", "within users"),
                               ("shift_who", "who posts")):
            row = _row_of(decomposition, "part", part_name)
            if key != "shift_change" and not isinstance(row, NotEstimable) and not row["users_in_both"]:
                row = NotEstimable("no user posted in both halves (images without a user are their "
                                   "own cluster), so nothing changed within users")
            rows.append(estimate_row(key, d, _get(row, "estimate"), _get(row, "boot_low"),
                                     _get(row, "boot_high")))
        by_use = _row_of(adapter[d], "uses_adapter", True)
        rows.append(estimate_row("adapter_or", d, _get(by_use, "odds_ratio"), _get(by_use, "or_ci_low"),
                                 _get(by_use, "or_ci_high")))
        crude = users[d]["adapter_clustered"]
        rows.append(estimate_row("adapter_or_boot", d, _get(crude, "odds_ratio"), _get(crude, "boot_low"),
                                 _get(crude, "boot_high")))
        adjusted = users[d]["adapter_adjusted"]
        rows.append(estimate_row("adapter_or_adjusted", d, _get(adjusted, "odds_ratio"),
                                 _get(adjusted, "ci_low"), _get(adjusted, "ci_high")))
        rp = links if isinstance(links, NotEstimable) else links[d]["raw"]
        rp_adjusted = links if isinstance(links, NotEstimable) else links[d]["adjusted"]
        rows.append(_share_rows("rp_with", d, _row_of(rp, "uses_real_person_adapter", True)))
        rows.append(_share_rows("rp_without", d, _row_of(rp, "uses_real_person_adapter", False)))
        rp_row = _row_of(rp, "uses_real_person_adapter", True)
        rows.append(estimate_row("rp_or", d, _get(rp_row, "odds_ratio"), _get(rp_row, "or_ci_low"),
                                 _get(rp_row, "or_ci_high")))
        rows.append(estimate_row("rp_or_adjusted", d, _get(rp_adjusted, "odds_ratio"),
                                 _get(rp_adjusted, "ci_low"), _get(rp_adjusted, "ci_high")))
        reactions = _row_of(engagement[d], "metric", "reaction_count")
        rows.append(estimate_row("reactions_r", d, _get(reactions, "rank_biserial")))
    rows += family_rows(family)
    return frame_of(rows)


def family_rows(family: pd.DataFrame | NotEstimable) -> list[dict[str, Any]]:
    """The NSFW share of each base-model family's images (all months) under every definition
    with its user-bootstrap interval (a few users can make a family), from the
    ``family_nsfw_clustered`` frame of :func:`~helpers.analyse.links.link_fields`."""
    if isinstance(family, NotEstimable):
        return []
    rows = []
    for fam, part in family.groupby("family", sort=False):
        if part["n"].sum() == 0:
            continue
        spec = (FAMILY_SECTION, f"NSFW share of {fam} images", "percent", "user bootstrap")
        for d in NSFW_DEFINITIONS:
            row = _row_of(part, "definition", d)
            if not isinstance(row, NotEstimable) and row["n"] > 0:
                row = row.rename({"ci_low": "wilson_low", "ci_high": "wilson_high",
                                  "boot_low": "ci_low", "boot_high": "ci_high"})
            rows.append(_share_rows(f"family_{fam}", d, row, spec))
    return rows


def model_sensitivity(per_definition: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Notebook 04's headline estimates under every definition (rows of :data:`MODEL_ESTIMATES`).

    ``per_definition``: definition → {``overall`` (a row with ``share``, CI), ``trend``
    (:func:`~helpers.stats.share_trend`), ``by_real_person``
    (:func:`~helpers.analyse.models.nsfw_share_by_real_person`), ``by_gender``
    (:func:`~helpers.analyse.models.nsfw_share_by_depicted_gender`), ``engagement``
    (:func:`~helpers.analyse.models.engagement_nsfw_vs_sfw_models`)}.
    """
    rows: list[dict[str, Any]] = []
    spec = MODEL_ESTIMATES.__getitem__
    for d, parts in per_definition.items():
        rows.append(_share_rows("share", d, parts["overall"], spec("share")))
        trend = parts["trend"]
        rows.append(estimate_row("trend_or", d, _get(trend, "odds_ratio_per_year"), _get(trend, "ci_low"),
                                 _get(trend, "ci_high"), spec("trend_or")))
        by_rp = parts["by_real_person"]
        for key, value in (("real_person", True), ("other", False)):
            rows.append(_share_rows(key, d, _row_of(by_rp, "is_real_person", value), spec(key)))
        rp = _row_of(by_rp, "is_real_person", True)
        rows.append(estimate_row("real_person_or", d, _get(rp, "odds_ratio"), _get(rp, "or_ci_low"),
                                 _get(rp, "or_ci_high"), spec("real_person_or")))
        for key in ("female", "male"):
            rows.append(_share_rows(key, d, _row_of(parts["by_gender"], "group", f"real person: {key}"),
                                    spec(key)))
        downloads = _row_of(parts["engagement"], "metric", "download_count")
        rows.append(estimate_row("downloads_r", d, _get(downloads, "rank_biserial"),
                                 spec=spec("downloads_r")))
    return frame_of(rows)


def sensitivity_wide(table: pd.DataFrame) -> pd.DataFrame:
    """A sensitivity table with one row per estimate and the value of each definition side by
    side (for reading in a notebook; the paper formats its own)."""
    if not estimable(table) or table.empty:
        return table
    wide = table.set_index(["section", "label", "definition"])["value"].unstack("definition")
    order = pd.MultiIndex.from_frame(table[["section", "label"]].drop_duplicates())
    return wide.reindex(index=order, columns=[d for d in NSFW_DEFINITIONS if d in wide.columns])
