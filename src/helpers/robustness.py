"""Every headline estimate under every NSFW definition, as the paper shows it: the numbers of
the sensitivity tables (``\\Sens…`` and ``\\ModelSens…`` macros), the tables themselves (estimate ×
definition, the interval on a second line so that three columns fit at the body font size), and
two generated sentences: what the adapter odds ratio adjusted for user × month shows, and which
ratio estimates keep their side of 1 under every definition.

The sentences are written from the estimates (direction, whether the interval excludes 1), never
typed: a reader of the paper sees what this snapshot shows, whatever it shows.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .analyse import ImageResults
from .analyse.sensitivity import FAMILY_SECTION
from . import prose
from .paper import _is_nan, entry, format_value
from .schema import NSFW_DEFINITION_LABELS, NSFW_DEFINITIONS
from .stats import CONFIDENCE, NOT_ESTIMABLE_TEXT, NotEstimable

#: Ratio estimates whose direction the sensitivity sentence reports, with how the text names them.
SENSITIVITY_RATIOS: dict[str, str] = {
    "trend_or": "the yearly trend of the NSFW share",
    "growth_ratio": "the growth of NSFW over SFW images",
    "adapter_or": "the pooled adapter odds ratio",
    "adapter_or_adjusted": "the adapter odds ratio within the same user and month",
    "rp_or": "the real-person adapter odds ratio",
}


def sensitivity_numbers(table: pd.DataFrame, prefix: str) -> dict[str, dict]:
    """``<prefix>_<estimate>_<definition>`` (with ``_ci_low``/``_ci_high``) for every headline
    row of a sensitivity table (the per-family rows stay in the table); a row the definition
    cannot give carries its reason."""
    out: dict[str, dict] = {}
    for row in table[table["section"] != FAMILY_SECTION].itertuples(index=False):
        key = f"{prefix}_{row.estimate}_{row.definition}"
        values = ([NotEstimable(row.reason)] * 3 if row.reason else
                  [row.value, row.ci_low, row.ci_high])
        digits = 2 if row.kind == "float" else 1
        out[key] = entry(values[0], row.kind, digits)
        if row.interval:
            out[f"{key}_ci_low"] = entry(values[1], row.kind, digits)
            out[f"{key}_ci_high"] = entry(values[2], row.kind, digits)
    return out


def direction(value: float, low: float, high: float) -> str:
    """``above`` (the interval lies above 1), ``below`` (below 1), ``unclear`` (it covers 1) or
    ``n/a`` (no estimate)."""
    if any(_is_nan(float(v)) for v in (value, low, high)):
        return "n/a"
    return prose.direction(value, low, high, null=1.0, words=("above", "below", "unclear")) or "n/a"


def sensitivity_sentence(table: pd.DataFrame) -> str:
    """Which ratio estimates of :data:`SENSITIVITY_RATIOS` lie above (or below) 1 under every
    NSFW definition and which depend on the definition, as one generated paragraph. A
    definition the snapshot cannot estimate is named, not counted as disagreeing."""
    rows = table[table["estimate"].isin(list(SENSITIVITY_RATIOS))]
    agree: dict[tuple[str, bool], list[str]] = {}
    depends, missing = [], {}
    wording = {"above": "above 1", "below": "below 1", "unclear": "an interval that covers 1"}
    for key, name in SENSITIVITY_RATIOS.items():
        found = {r.definition: direction(r.value, r.ci_low, r.ci_high)
                 for r in rows[rows["estimate"] == key].itertuples()}
        lacking = [NSFW_DEFINITION_LABELS[d] for d, v in found.items() if v == "n/a"]
        if lacking:
            missing[name] = lacking
        available = {d: v for d, v in found.items() if v != "n/a"}
        kinds = set(available.values())
        if not available:
            continue
        if len(kinds) == 1 and kinds <= {"above", "below"}:
            agree.setdefault((kinds.pop(), len(available) == len(NSFW_DEFINITIONS)), []).append(name)
        else:
            depends.append(f"{name} ({'; '.join(f'{NSFW_DEFINITION_LABELS[d]}: {wording[v]}' for d, v in available.items())})")
    parts = []
    for (side, complete), names in sorted(agree.items(), key=lambda kv: (not kv[0][1], kv[0][0])):
        where = ("Under all three NSFW definitions" if complete else
                 "Under every NSFW definition this snapshot can estimate")
        parts.append(f"{where}, {_join(names)} {'lies' if len(names) == 1 else 'lie'} {side} 1 with "
                     f"an interval that excludes it.")
    if depends:
        parts.append(f"The conclusion depends on the definition for {_join(depends)}.")
    elif parts:
        parts.append("No conclusion about these ratios depends on where the line between safe "
                     "and not safe is drawn.")
    if missing:
        parts.append("Not estimable on this snapshot: " + "; ".join(
            f"{name} under the {_join(labels)}" for name, labels in missing.items()) + ".")
    return " ".join(parts) if parts else "No ratio estimate is available under any definition."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def adjusted_adapter_sentence(results: ImageResults) -> str:
    """What the adapter odds ratio adjusted for user × month (Mantel–Haenszel) shows, in words
    generated from the estimate: its size and direction, whether its interval excludes 1, and
    how it compares with the pooled ratio and under the other definitions."""
    adjusted, label = results.adapter_adjusted, NSFW_DEFINITION_LABELS[results.definition]
    if isinstance(adjusted, NotEstimable) or any(
            isinstance(adjusted[k], NotEstimable) or not math.isfinite(float(adjusted[k]))
            for k in ("odds_ratio", "ci_low", "ci_high")):
        reason = (adjusted.reason if isinstance(adjusted, NotEstimable)
                  else "too few user-months hold images both with and without an adapter call")
        return (f"Whether the gap holds within the same user and month cannot be estimated here: "
                f"{reason}. The pooled gap may therefore reflect who uses adapters and when.")
    fmt = lambda v: format_value(v, "float", 2)[0]  # noqa: E731
    ratio, low, high = adjusted["odds_ratio"], adjusted["ci_low"], adjusted["ci_high"]
    side = direction(ratio, low, high)
    text = (f"Comparing only images of the same user in the same month (a Mantel–Haenszel odds "
            f"ratio over {format_value(adjusted['informative_strata'], 'count')[0]} user-months that "
            f"hold images both with and without an adapter call), the odds that an image is NSFW "
            f"({label}) are {fmt(ratio)} times as high when its prompt calls an adapter "
            f"({format_value(CONFIDENCE, 'percent', 0)[0]} CI {fmt(low)}–{fmt(high)}). ")
    text += {"above": "The interval excludes 1: the gap is not produced by which users post or "
                      "when they post, although within a user's month it remains an association, "
                      "not an effect of the adapter.",
             "below": "The interval lies below 1: within a user's month, images with adapter calls "
                      "are less often NSFW, so the pooled gap comes from who uses adapters and when.",
             "unclear": "The interval includes 1: once user and month are held fixed the data cannot "
                        "tell images with adapter calls from the others, so the pooled gap may "
                        "come from who uses adapters and when."}[side]
    rows = results.sensitivity[(results.sensitivity["estimate"] == "adapter_or_adjusted")
                               & (results.sensitivity["definition"] != results.definition)]
    others = [f"{fmt(r.value)} ({fmt(r.ci_low)}–{fmt(r.ci_high)}) by the {NSFW_DEFINITION_LABELS[r.definition]}"
              for r in rows.itertuples() if not r.reason]
    if others:
        text += f" Under the other definitions it is {_join(others)}."
    return text


def _bare(value: float, kind: str) -> str:
    """An interval bound as a bare number in the unit of its estimate (no % or pp)."""
    if kind == "float":
        return f"{value:.2f}"
    return f"{100 * value:+.1f}" if kind == "points" else f"{100 * value:.1f}"


def adjusted_adapter_numbers(results: ImageResults) -> dict[str, dict]:
    """The generated sentences on the adjusted adapter association and on the definitions."""
    return {"adapter_adjusted_sentence": entry(adjusted_adapter_sentence(results), "text"),
            "sensitivity_sentence": entry(sensitivity_sentence(results.sensitivity), "text")}


def sensitivity_table(table: pd.DataFrame) -> pd.DataFrame:
    """A sensitivity table for the paper: one row per headline estimate (per-family rows left
    out), one column per definition holding the formatted estimate and its interval ("not
    estimable" where the definition cannot give it), and the raw values for the CSV."""
    data = table[table["section"] != FAMILY_SECTION]
    rows = []
    for (section, label), part in data.groupby(["section", "label"], sort=False):
        interval = part["interval"].iloc[0]
        row: dict[str, Any] = {"section": section,
                               "estimate": f"{label} ({interval})" if interval else label}
        for r in part.itertuples(index=False):
            if r.reason:
                cell = NOT_ESTIMABLE_TEXT
            else:
                cell = format_value(r.value, r.kind, 2 if r.kind == "float" else 1)[0]
                if r.interval and not _is_nan(r.ci_low):
                    # The bounds without their unit, on a second line, so three columns fit.
                    cell += f"\n[{_bare(r.ci_low, r.kind)}, {_bare(r.ci_high, r.kind)}]"
            row[r.definition] = cell
            row.update({f"value_{r.definition}": r.value, f"ci_low_{r.definition}": r.ci_low,
                        f"ci_high_{r.definition}": r.ci_high})
        rows.append(row)
    out = pd.DataFrame(rows)
    for d in NSFW_DEFINITIONS:
        if d not in out:
            out[d] = NOT_ESTIMABLE_TEXT
    return out
