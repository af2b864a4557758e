"""The interventions in the paper: notebook 05's rule and policy tables, its numbers and the
sentences generated from them, written with :mod:`helpers.paper`'s formatting."""
from __future__ import annotations

from typing import Any

import pandas as pd

from .analyse.policy import MIN_MONTHS_EACH_SIDE
from .paper import _field, _is_nan, _nan_as, _share_entries, entry, format_value, month_key
from .prose import direction
from .stats import NOT_ESTIMABLE_TEXT, NotEstimable


def share_with_interval(value: float, low: float, high: float, digits: int = 1) -> str:
    """``"82.5% [81.0, 84.1]"``: a share with its interval in percent; "n/a" when missing."""
    if value is None or _is_nan(float(value)):
        return "n/a"
    return (f"{format_value(value, 'percent', digits)[0]} "
            f"[{100 * low:.{digits}f}, {100 * high:.{digits}f}]")


def _points_with_interval(value: float, low: float, high: float) -> str:
    """A change in a share as percentage points with its interval, e.g. ``"+4.1 [1.2, 7.0]"``."""
    return f"{100 * value:+.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def intervention_rule_table(rules: pd.DataFrame | NotEstimable) -> pd.DataFrame | NotEstimable:
    """The rule table with each removed share written with its interval, for the paper."""
    if isinstance(rules, NotEstimable):
        return rules
    out = rules.copy()
    for name in ("real_person_nsfw", "minor_nsfw"):
        out[f"{name}_text"] = [share_with_interval(v, lo, hi) for v, lo, hi in zip(
            out[f"{name}_removed"], out[f"{name}_removed_low"], out[f"{name}_removed_high"])]
    out["collateral_text"] = [share_with_interval(v, lo, hi) for v, lo, hi in zip(
        out["collateral"], out["collateral_low"], out["collateral_high"])]
    return out


def policy_table(its: pd.DataFrame) -> pd.DataFrame:
    """The interrupted-time-series table for the paper: each event and series with its level
    and slope change (percentage points, HAC interval) or why it is not estimable; an event that
    no series can estimate, for one reason, is one row."""
    rows = []
    for (date, event), part in its.groupby(["date", "event"], sort=True):
        reasons = part["not_estimable"]
        if reasons.notna().all() and reasons.nunique() == 1:
            part = part.iloc[:1].assign(series_label="every series")
        for row in part.itertuples(index=False):
            ok = row.not_estimable is None or (isinstance(row.not_estimable, float) and _is_nan(row.not_estimable))
            rows.append({**row._asdict(), "event_text": f"{date}: {event}",
                         "level_text": (_points_with_interval(row.level_change, row.level_ci_low, row.level_ci_high)
                                        if ok else f"{NOT_ESTIMABLE_TEXT}: {row.not_estimable}"),
                         "slope_text": (_points_with_interval(row.slope_change_per_year, row.slope_ci_low,
                                                              row.slope_ci_high) if ok else ""),
                         "months_text": f"{row.months_before} / {row.months_after}"})
    return pd.DataFrame(rows, columns=[*its.columns, "event_text", "level_text", "slope_text", "months_text"])


def intervention_tables(results: Any) -> dict[str, pd.DataFrame | NotEstimable]:
    """The paper tables of notebook 05, by :data:`PAPER_TABLES` name."""
    return {"interventions": intervention_rule_table(results.rules),
            "policy_its": policy_table(results.its)}


def change_word(low: float, high: float, rose: str = "rose", fell: str = "fell",
                none: str = "showed no detectable change") -> str:
    """The direction of an estimated change from its interval (the one rule of
    :func:`helpers.prose.direction`): up or down only when the interval excludes zero."""
    return direction(low, low, high, null=0.0, words=(rose, fell, none)) or none


def intervention_sentences(results: Any) -> list[str]:
    """What the rule simulation and the policy events found, as sentences generated from the
    results (so they stay true on any snapshot): the rule that removes most real-person ∧ NSFW
    content at the least collateral, the costliest rule, and each estimable policy break."""
    out: list[str] = []
    rules, harm = results.rules, results.harm
    if isinstance(rules, NotEstimable):
        out.append(f"The moderation rules are {rules}.")
    else:
        sizes = harm.set_index("category")
        rp = sizes.loc["real_person_nsfw"] if "real_person_nsfw" in sizes.index else None
        if rp is None or rp["images"] == 0:
            out.append("No image of this snapshot is real-person ∧ NSFW, so no rule can be judged on it.")
        else:
            ranked = rules.sort_values(["real_person_nsfw_removed", "collateral"],
                                       ascending=[False, True], kind="stable")
            best = ranked.iloc[0]
            out.append(
                f"Real-person ∧ NSFW images are {format_value(rp['share'], 'percent')[0]} of all images. "
                f"Of the {len(rules)} rules, “{best['label']}” removes the largest share of them, "
                f"{share_with_interval(best['real_person_nsfw_removed'], best['real_person_nsfw_removed_low'], best['real_person_nsfw_removed_high'])}, "
                f"and {share_with_interval(best['collateral'], best['collateral_low'], best['collateral_high'])} "
                f"of other images.")
            costly = rules.sort_values("collateral", ascending=False, kind="stable").iloc[0]
            if len(rules) > 1 and costly["name"] != best["name"]:
                out.append(
                    f"The bluntest, “{costly['label']}”, removes "
                    f"{format_value(costly['real_person_nsfw_removed'], 'percent')[0]} of them but "
                    f"{format_value(costly['collateral'], 'percent')[0]} of other images, touching "
                    f"{format_value(costly['users_touched_share'], 'percent')[0]} of users.")
        minor = sizes.loc["minor_nsfw"] if "minor_nsfw" in sizes.index else None
        if minor is not None and minor["images"] == 0:
            out.append("No image carries a minor-coded marker and is NSFW, so the minor-coded harm "
                       "category is not estimable here.")
    its = results.its
    done = its[its["not_estimable"].isna()]
    for row in done.itertuples(index=False):
        word = change_word(row.level_ci_low, row.level_ci_high)
        out.append(f"At the event “{row.event}” ({row.date}), the {row.series_label} {word} in level "
                   f"({_points_with_interval(row.level_change, row.level_ci_low, row.level_ci_high)} "
                   f"percentage points) and its slope "
                   f"{change_word(row.slope_ci_low, row.slope_ci_high, 'steepened', 'flattened', 'showed no detectable change')} "
                   f"({_points_with_interval(row.slope_change_per_year, row.slope_ci_low, row.slope_ci_high)} points a year).")
    skipped = its[its["not_estimable"].notna()].drop_duplicates("date")
    if len(skipped):
        out.append(f"{len(skipped)} of {its['date'].nunique()} declared policy events could not be "
                   f"estimated on this snapshot (the reasons are in the table).")
    return out


def intervention_numbers(results: Any) -> dict[str, dict]:
    """The intervention numbers the paper quotes, from notebook 05's results: the size of each
    harm category, each rule's harm removed and collateral with intervals and the users it
    touches, each estimable policy break, and the generated finding sentences."""
    out: dict[str, dict] = {"interventions_rules": entry(len(results.declared_rules), "count"),
                            "interventions_events": entry(int(results.events.shape[0]), "count"),
                            "its_min_months_each_side": entry(MIN_MONTHS_EACH_SIDE, "count")}
    harm, rules = results.harm, results.rules
    for category in ("real_person_nsfw", "minor_nsfw"):
        row = harm if isinstance(harm, NotEstimable) else harm.set_index("category").loc[category]
        out.update(_share_entries(f"harm_{category}_share", _field(row, "share"),
                                  _field(row, "ci_low"), _field(row, "ci_high")))
    if not isinstance(rules, NotEstimable):
        for row in rules.itertuples(index=False):
            key = f"rule_{row.name}"
            for name in ("any_harm", "real_person_nsfw", "minor_nsfw"):
                value = getattr(row, f"{name}_removed")
                reason = "no image of this snapshot is in this harm category"
                out.update(_share_entries(f"{key}_{name}_removed", _nan_as(value, reason),
                                          _nan_as(getattr(row, f"{name}_removed_low"), reason),
                                          _nan_as(getattr(row, f"{name}_removed_high"), reason)))
            out.update(_share_entries(f"{key}_collateral", row.collateral, row.collateral_low,
                                      row.collateral_high))
            out[f"{key}_users_touched"] = entry(row.users_touched, "count")
    its = results.its
    for row in its[its["not_estimable"].isna()].itertuples(index=False):
        key = f"its_{month_key(row.date)}_{row.series}"
        out[f"{key}_level_change"] = entry(100 * row.level_change, "float", 1)
        out[f"{key}_level_ci_low"] = entry(100 * row.level_ci_low, "float", 1)
        out[f"{key}_level_ci_high"] = entry(100 * row.level_ci_high, "float", 1)
    out["interventions_finding"] = entry(" ".join(intervention_sentences(results)), "text")
    return out
