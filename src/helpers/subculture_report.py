"""The subculture section in the paper: notebook 03's booru-lineage, syntax-marker and
minor-coded ∧ NSFW numbers and the sentences generated from them, written with
:mod:`helpers.paper`'s formatting."""
from __future__ import annotations

from typing import Any, Mapping

from .analyse import ImageResults
from .paper import _field, _first_last, _share_entries, entry, format_value
from .prose import direction
from .schema import NSFW_DEFINITION_LABELS
from .stats import CONFIDENCE, NotEstimable


def _direction(low: Any, high: Any, more: str, less: str, same: str) -> str:
    """Which way an odds ratio's interval points (the one rule of :func:`helpers.prose.direction`):
    above 1, below 1, or covering 1."""
    if isinstance(low, NotEstimable) or isinstance(high, NotEstimable):
        return same
    return direction(low, low, high, null=1.0, words=(more, less, same)) or same


def subculture_sentence(by_lineage: Mapping[str, Any] | NotEstimable) -> str:
    """One generated sentence on tools carrying practices: is booru tag syntax more common in
    prompts made with booru-lineage base models (the within-user-and-month odds ratio when there
    is one, else the pooled one with its user-bootstrap interval)?"""
    if isinstance(by_lineage, NotEstimable):
        return f"Booru syntax by base-model lineage is not estimable ({by_lineage.reason})."
    adjusted = not isinstance(by_lineage["mh_odds_ratio"], NotEstimable)
    ratio, low, high = ((by_lineage["mh_odds_ratio"], by_lineage["mh_ci_low"], by_lineage["mh_ci_high"])
                        if adjusted else (by_lineage["odds_ratio"], by_lineage["boot_low"], by_lineage["boot_high"]))
    share_in = format_value(by_lineage["share_lineage"], "percent")[0]
    share_out = format_value(by_lineage["share_other"], "percent")[0]
    if isinstance(ratio, NotEstimable):
        return (f"Prompts made with booru-lineage base models are written in booru tag syntax in "
                f"{share_in} of cases, prompts made with other families in {share_out}; the odds "
                f"ratio is not estimable ({ratio.reason}).")
    how = _direction(low, high, "more often than", "less often than", "about as often as")
    scope = "within the same user and month" if adjusted else "pooled, users resampled"
    level = format_value(CONFIDENCE, "percent", 0)[0]
    return (f"Prompts made with booru-lineage base models are written in booru tag syntax {how} "
            f"prompts made with other families ({share_in} vs {share_out}; odds ratio {scope} "
            f"{ratio:.2f}, {level} CI {low:.2f} to {high:.2f}).")


def minor_nsfw_sentence(totals: Mapping[str, Any] | NotEstimable, definition: str) -> str:
    """One generated sentence on the minor-coded ∧ NSFW co-occurrence (counts and shares only)."""
    if isinstance(totals, NotEstimable):
        return f"The co-occurrence of minor-coded terms and NSFW labels is not estimable ({totals.reason})."
    if not totals["minor"]:
        return "No prompt in this snapshot carries a minor-coded term."
    both = format_value(totals["minor_nsfw"], "count")[0]
    minor = format_value(totals["minor"], "count")[0]
    of_minor = format_value(totals["share_of_minor"], "percent")[0]
    of_all = format_value(totals["share_of_prompts"], "percent", 2)[0]
    return (f"{both} of the {minor} prompts with minor-coded terms are NSFW "
            f"({NSFW_DEFINITION_LABELS[definition]}; {of_minor}), {of_all} of all prompts.")


def subculture_numbers(results: ImageResults) -> dict[str, dict]:
    """Numbers of notebook 03's subculture section: booru-lineage shares of images and new models
    (first and last month), booru syntax in vs outside the lineage, the NSFW odds ratio of every
    marker that does not define NSFW content (never of the sexual terms), the minor-coded ∧ NSFW
    co-occurrence (counts and shares), and two generated sentences."""
    from .analyse import marker_findings

    out: dict[str, dict] = {}
    for name, frame in (("lineage_images_share", results.lineage_monthly),
                        ("lineage_models_share", results.lineage_models_monthly)):
        if isinstance(frame, NotEstimable):
            out.update(_share_entries(f"{name}_first_month", frame, frame, frame))
            out.update(_share_entries(f"{name}_last_month", frame, frame, frame))
        else:
            out.update(_first_last(frame[frame["denominator"] == "all"], name))
    by_lineage = results.syntax_by_lineage
    for key, name, kind in (("share_lineage", "booru_syntax_share_lineage", "percent"),
                            ("share_other", "booru_syntax_share_other", "percent"),
                            ("odds_ratio", "booru_lineage_or", "float"),
                            ("boot_low", "booru_lineage_or_boot_low", "float"),
                            ("boot_high", "booru_lineage_or_boot_high", "float"),
                            ("mh_odds_ratio", "booru_lineage_mh_or", "float"),
                            ("mh_ci_low", "booru_lineage_mh_or_ci_low", "float"),
                            ("mh_ci_high", "booru_lineage_mh_or_ci_high", "float")):
        out[name] = entry(_field(by_lineage, key), kind, 2 if kind == "float" else 1)
    findings = marker_findings(results.markers_nsfw)
    if not isinstance(findings, NotEstimable):
        for row in findings.itertuples():
            for column, suffix in (("odds_ratio", ""), ("or_ci_low", "_ci_low"), ("or_ci_high", "_ci_high")):
                out[f"marker_nsfw_or_{row.marker}{suffix}"] = entry(getattr(row, column), "float", 2)
    totals = results.minor_nsfw
    out["minor_prompts"] = entry(_field(totals, "minor"), "count")
    out["minor_nsfw_prompts"] = entry(_field(totals, "minor_nsfw"), "count")
    out["minor_nsfw_share_of_prompts"] = entry(_field(totals, "share_of_prompts"), "percent", 2)
    out["minor_nsfw_share_of_minor"] = entry(_field(totals, "share_of_minor"), "percent")
    monthly = results.minor_nsfw_monthly
    if not isinstance(monthly, NotEstimable):
        out.update({k: v for k, v in _first_last(monthly[monthly["measure"] == "of_prompts"],
                                                 "minor_nsfw_share").items()
                    if not k.endswith(("_ci_low", "_ci_high"))})
    out["subculture_sentence"] = entry(subculture_sentence(by_lineage), "text")
    out["minor_nsfw_sentence"] = entry(minor_nsfw_sentence(totals, results.definition), "text")
    return out
