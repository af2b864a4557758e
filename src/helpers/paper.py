"""Numbers, tables and text for the paper and the README, all generated, none typed by hand.

* **Numbers.** The figures notebook reads the results objects that notebooks 03 and 04
  saved (:class:`~helpers.analyse.ImageResults`, :class:`~helpers.analyse.ModelResults`),
  turns them into named numbers (:func:`image_numbers`, :func:`model_numbers`, merged by
  :func:`study_numbers`) and writes ``paper/numbers.json`` and ``paper/numbers.tex``
  (:func:`write_numbers`), where each number is a LaTeX macro such as
  ``\\newcommand{\\NsfwShareR}{35.2\\%}``; macro names are letters only.
* **Not estimable.** A result the snapshot cannot give (:class:`~helpers.stats.NotEstimable`)
  keeps its number: ``numbers.json`` holds ``"value": null`` with the ``reason`` beside it and
  its macro says "not estimable"; a table of such a result says so with the reason.
* **Tables.** :func:`write_table` writes a frame as CSV (raw values) and as a booktabs
  ``tabular`` (formatted values) under ``paper/tables/``, for ``\\input`` in ``main.tex``;
  :func:`image_tables` and :func:`model_tables` say which results become which table.
* **Real records.** :func:`real_records_numbers` takes the aggregates of the real 2023 API
  records from the committed validation report. The comparison with published figures is
  :mod:`helpers.comparison`; the interpretive sentences are :mod:`helpers.prose`.
* **README.** :func:`readme_findings` writes the findings paragraph from ``numbers.json`` and
  says so when the numbers come from the synthetic sample; :func:`update_readme` puts it
  between the markers of the README.

Every file is written atomically (:func:`helpers.db.write_text_atomic`).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from .analyse import MIN_USERS, ImageResults, ModelResults
from .db import write_text_atomic
from .label import load_real_records_report
from .paths import RunPaths, repo_root
from .schema import MARKERS, NSFW_DEFINITION_LABELS, NSFW_DEFINITIONS
from .stats import (CONFIDENCE, NOT_ESTIMABLE_TEXT, TREND_FIELDS, NotEstimable, stored_float,
                    wilson_bounds)

#: The manuscript (committed); it inputs the run's numbers.tex, figures/ and tables/.
MAIN_TEX = repo_root() / "paper" / "main.tex"
#: Capitalised macros of LaTeX itself: every other capitalised macro in main.tex is a number.
LATEX_CAPITALISED: frozenset[str] = frozenset({"LaTeX", "TeX", "Large", "LARGE", "Huge",
                                               "AtBeginDocument"})
NUMBERS_JSON = "numbers.json"
NUMBERS_TEX = "numbers.tex"
KINDS: tuple[str, ...] = ("count", "percent", "points", "float", "pvalue", "text")
#: Months of the Civiverse-6M card's NSFW ratios, compared month by month.
CIVIVERSE_MONTHS: tuple[str, ...] = ("2023-10", "2023-11", "2023-12", "2024-01", "2024-02",
                                     "2024-03", "2024-04")
#: The README block between these markers is generated (:func:`update_readme`).
README_START = "<!-- findings:start -->"
README_END = "<!-- findings:end -->"

#: Why the depicted-gender shares are not estimable when no real-person model's gender is known.
UNKNOWN_GENDER = "no real-person model's depicted gender could be told"

_DIGIT_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                  "≥": r"$\geq$", "≤": r"$\leq$", "τ": r"$\tau$", "−": r"$-$", "×": r"$\times$", "–": "--",
                  "∧": r"$\wedge$", "“": "``", "”": "''",
                  "\n": r"\newline{}"}


# --------------------------------------------------------------------------- formatting
def latex_escape(text: str) -> str:
    """Text with LaTeX's special characters escaped (safe inside a tabular or a macro)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def macro_name(key: str) -> str:
    """LaTeX macro name of a number key: CamelCase, digits spelled out, letters only.

    ``nsfw_share_r`` → ``NsfwShareR``; ``top1_share`` → ``TopOneShare``.
    """
    parts = re.split(r"[^A-Za-z0-9]+", key)
    out = []
    for part in parts:
        for chunk in re.findall(r"[A-Za-z]+|[0-9]", part):
            out.append(_DIGIT_WORDS[int(chunk)] if chunk.isdigit() else chunk[:1].upper() + chunk[1:])
    name = "".join(out)
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"number key {key!r} gives no valid macro name")
    return name


def format_value(value: Any, kind: str, digits: int = 1) -> tuple[str, str]:
    """``(plain, latex)`` text of a number.

    Kinds: ``count`` (thousands separators), ``percent`` (a share in [0, 1] shown in %),
    ``points`` (a difference of two shares, in signed percentage points),
    ``float`` (``digits`` decimals), ``pvalue`` (3 decimals, ``<0.001`` below that), ``text``.
    Missing values (None, NaN) print as ``n/a``; a :class:`NotEstimable` as "not estimable".
    """
    if kind not in KINDS:
        raise ValueError(f"unknown number kind {kind!r}; valid: {', '.join(KINDS)}")
    if isinstance(value, NotEstimable):
        return NOT_ESTIMABLE_TEXT, NOT_ESTIMABLE_TEXT
    if kind == "text":
        return str(value), latex_escape(str(value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a", "n/a"
    v = float(value)
    if kind == "count":
        plain = f"{round(v):,}"
        return plain, plain.replace(",", "{,}")
    if kind == "percent":
        plain = f"{100 * v:.{digits}f}"
        return plain + "%", plain + r"\%"
    if kind == "points":
        plain = f"{100 * v:+.{digits}f}"
        return plain + " pp", plain + "~pp"
    if kind == "pvalue":
        if v < 0.001:
            return "<0.001", r"\textless{}0.001"
        plain = f"{v:.3f}"
        return plain, plain
    plain = f"{v:.{digits}f}"
    return plain, plain


def entry(value: Any, kind: str, digits: int = 1) -> dict[str, Any]:
    """One named number as stored in ``numbers.json``: value (floats to
    :data:`~helpers.stats.STORED_DIGITS` significant digits), kind and both renderings.

    A :class:`NotEstimable` value is stored as ``null`` with its ``reason``.
    """
    plain, latex = format_value(value, kind, digits)
    if isinstance(value, NotEstimable):
        return {"value": None, "kind": kind, "text": plain, "latex": latex, "reason": value.reason}
    raw: Any = value
    if kind != "text":
        raw = None if value is None or (isinstance(value, float) and math.isnan(value)) else (
            int(value) if kind == "count" else stored_float(value))
    return {"value": raw, "kind": kind, "text": plain, "latex": latex}


# --------------------------------------------------------------------------- number sets
def _share_entries(prefix: str, share: float, low: float, high: float, digits: int = 1) -> dict[str, dict]:
    return {prefix: entry(share, "percent", digits), f"{prefix}_ci_low": entry(low, "percent", digits),
            f"{prefix}_ci_high": entry(high, "percent", digits)}


def _field(result: Any, key: Any, column: str | None = None) -> Any:
    """``result[key]`` (or ``result.loc[key, column]``), or ``result`` itself when it is
    :class:`NotEstimable`, so every number of a not-estimable result carries its reason."""
    if isinstance(result, NotEstimable):
        return result
    return result[key] if column is None else result.loc[key, column]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _trend_entries(prefix: str, trend: Mapping[str, float] | NotEstimable) -> dict[str, dict]:
    if isinstance(trend, NotEstimable):
        trend = {k: trend for k in ("odds_ratio_per_year", "ci_low", "ci_high", "p_value", "mk_tau")}
    return {f"{prefix}_or": entry(trend["odds_ratio_per_year"], "float", 2),
            f"{prefix}_or_ci_low": entry(trend["ci_low"], "float", 2),
            f"{prefix}_or_ci_high": entry(trend["ci_high"], "float", 2),
            f"{prefix}_p": entry(trend["p_value"], "pvalue"),
            f"{prefix}_mk_tau": entry(trend["mk_tau"], "float", 2)}


def _first_last(frame: pd.DataFrame, prefix: str) -> dict[str, dict]:
    """Share in the first and last month of a monthly frame (``month``, ``share``, CI)."""
    data = frame[frame["n"] > 0].sort_values("month")
    out: dict[str, dict] = {}
    if data.empty:
        none = NotEstimable("no month has data")
        for label in ("first_month", "last_month"):
            out.update(_share_entries(f"{prefix}_{label}", none, none, none))
        return out
    for label, row in (("first_month", data.iloc[0]), ("last_month", data.iloc[-1])):
        out.update(_share_entries(f"{prefix}_{label}", row["share"], row["ci_low"], row["ci_high"]))
    return out


def month_key(month: str) -> str:
    """``2023-10`` → ``2023_10`` for number keys."""
    return month.replace("-", "_")


def _engagement_entries(engagement: pd.DataFrame | NotEstimable, metric: str, prefix: str,
                        groups: tuple[str, str]) -> dict[str, dict]:
    """Medians of ``metric`` in the two ``groups``, the rank-biserial correlation and the p-value
    of an engagement comparison (nothing when the metric was not compared)."""
    eng = engagement if isinstance(engagement, NotEstimable) else engagement.set_index("metric")
    if not isinstance(eng, NotEstimable) and metric not in eng.index:
        return {}
    row = eng if isinstance(eng, NotEstimable) else eng.loc[metric]
    return {**{f"{prefix}_median_{g}": entry(_field(row, f"median_{g}"), "count") for g in groups},
            f"{prefix}_rank_biserial": entry(_field(row, "rank_biserial"), "float", 2),
            f"{prefix}_p": entry(_field(row, "p_value"), "pvalue")}


def image_numbers(results: ImageResults) -> dict[str, dict]:
    """The image-level numbers the paper and README quote, from notebook 03's results."""
    overview, monthly, trend = results.overview, results.monthly, results.trend
    lora_monthly, lora_trend, adapter = results.lora_monthly, results.lora_trend, results.adapter
    engagement, markers, concentration = results.engagement, results.markers, results.concentration
    out: dict[str, dict] = {
        "n_images": entry(overview["n_images"], "count"),
        "n_image_users": entry(overview["n_users"], "count"),
        "n_image_months": entry(overview["n_months"], "count"),
        "image_first_month": entry(overview["first_month"], "text"),
        "image_last_month": entry(overview["last_month"], "text"),
    }
    for d in NSFW_DEFINITIONS:
        out.update(_share_entries(f"nsfw_share_{d}", overview[f"nsfw_share_{d}"],
                                  overview[f"nsfw_share_{d}_ci_low"], overview[f"nsfw_share_{d}_ci_high"]))
        out.update(_first_last(monthly[monthly["definition"] == d], f"nsfw_share_{d}"))
    for d, row in trend.items():
        out.update(_trend_entries(f"nsfw_trend_{d}", row))
    for month in CIVIVERSE_MONTHS:
        part = monthly[(monthly["definition"] == "r") & (monthly["month"] == month) & (monthly["n"] > 0)]
        if len(part):
            out.update(_share_entries(f"nsfw_share_r_{month_key(month)}", part["share"].iloc[0],
                                      part["ci_low"].iloc[0], part["ci_high"].iloc[0]))
    out.update(_share_entries("lora_share", overview["lora_share"], overview["lora_share_ci_low"],
                              overview["lora_share_ci_high"]))
    out.update(_first_last(lora_monthly, "lora_share"))
    out.update(_trend_entries("lora_trend", lora_trend))
    by_use = adapter if isinstance(adapter, NotEstimable) else adapter.set_index("uses_adapter")
    for uses, name in ((True, "nsfw_share_with_lora"), (False, "nsfw_share_without_lora")):
        out.update(_share_entries(name, *(_field(by_use, uses, c)
                                          for c in ("share", "ci_low", "ci_high"))))
    out["lora_nsfw_or"] = entry(_field(by_use, True, "odds_ratio"), "float", 2)
    out["lora_nsfw_or_ci_low"] = entry(_field(by_use, True, "or_ci_low"), "float", 2)
    out["lora_nsfw_or_ci_high"] = entry(_field(by_use, True, "or_ci_high"), "float", 2)
    out.update(_engagement_entries(engagement, "reaction_count", "reactions", ("nsfw", "sfw")))
    for marker in sorted(MARKERS):
        part = markers[markers["marker"] == marker]
        k, n = float(part["k"].sum()), float(part["n"].sum())
        out[f"marker_share_{marker}"] = entry(k / n if n else NotEstimable("no image has a prompt"),
                                              "percent")
        out.update({key: val for key, val in _first_last(part, f"marker_share_{marker}").items()
                    if not key.endswith(("_ci_low", "_ci_high"))})
    out["creator_gini"] = entry(_field(concentration, "gini"), "float", 2)
    out["creator_top_one_share"] = entry(_field(concentration, "top1_share"), "percent")
    out["creator_top_ten_share"] = entry(_field(concentration, "top10_share"), "percent")
    out["creator_median_images"] = entry(_field(concentration, "median_images_per_user"), "count")
    out.update(personalisation_numbers(results))
    from .subculture_report import subculture_numbers  # written from this module's formatting

    out.update(subculture_numbers(results))

    from . import robustness  # written from this module's formatting

    out.update(robustness.sensitivity_numbers(results.sensitivity, "sens"))
    out.update(robustness.adjusted_adapter_numbers(results))
    return out


def _nan_as(value: Any, reason: str) -> Any:
    """A NaN estimate as :class:`NotEstimable` with ``reason`` (no ``nan`` reaches the paper)."""
    return NotEstimable(reason) if _is_nan(value) else value


def personalisation_numbers(results: ImageResults) -> dict[str, dict]:
    """Numbers of notebook 03's deeper analyses: growth ratio, user-clustered intervals, the
    adjusted adapter odds ratio and real-person adapter use through the link."""
    out: dict[str, dict] = {}
    growth = results.growth
    for key, name in (("ratio", "growth_ratio"), ("ratio_low", "growth_ratio_ci_low"),
                      ("ratio_high", "growth_ratio_ci_high"), ("nsfw_growth", "nsfw_growth_per_year"),
                      ("sfw_growth", "sfw_growth_per_year"), ("ratio_boot_low", "growth_ratio_boot_low"),
                      ("ratio_boot_high", "growth_ratio_boot_high")):
        out[name] = entry(_nan_as(_field(growth, key), "too few users or months to resample"), "float", 2)
    clustered = results.clustered_share
    out["nsfw_share_boot_low"] = entry(_field(clustered, 0, "boot_low"), "percent")
    out["nsfw_share_boot_high"] = entry(_field(clustered, 0, "boot_high"), "percent")
    crude = results.adapter_clustered
    out["lora_nsfw_or_boot_low"] = entry(_field(crude, "boot_low"), "float", 2)
    out["lora_nsfw_or_boot_high"] = entry(_field(crude, "boot_high"), "float", 2)
    adjusted = results.adapter_adjusted
    for key, name in (("odds_ratio", "lora_nsfw_or_adjusted"), ("ci_low", "lora_nsfw_or_adjusted_ci_low"),
                      ("ci_high", "lora_nsfw_or_adjusted_ci_high")):
        out[name] = entry(_nan_as(_field(adjusted, key), "no informative user-month stratum"), "float", 2)
    rp = results.real_person_adapter_nsfw
    by_use = rp if isinstance(rp, NotEstimable) else rp.set_index("uses_real_person_adapter")
    for uses, name in ((True, "nsfw_share_with_rp_adapter"), (False, "nsfw_share_without_rp_adapter")):
        out.update(_share_entries(name, *(_field(by_use, uses, c) for c in ("share", "ci_low", "ci_high"))))
        out[f"n_images_{'with' if uses else 'without'}_rp_adapter"] = entry(_field(by_use, uses, "n"), "count")
    out["rp_adapter_nsfw_or"] = entry(_field(by_use, True, "odds_ratio"), "float", 2)
    rp_adjusted = results.real_person_adapter_adjusted
    for key, name in (("odds_ratio", "rp_adapter_or_adjusted"), ("ci_low", "rp_adapter_or_adjusted_ci_low"),
                      ("ci_high", "rp_adapter_or_adjusted_ci_high")):
        out[name] = entry(_nan_as(_field(rp_adjusted, key), "no informative user-month stratum"), "float", 2)
    links = results.real_person_adapter_links
    out["rp_share_of_adapter_links"] = entry(_field(links, 0, "share"), "percent")
    return out


def model_numbers(results: ModelResults) -> dict[str, dict]:
    """The model-level numbers the paper and README quote, from notebook 04's results.

    ``nsfw_share_models`` is the overall NSFW share under the definition the model comparisons
    used (``results.definition``).
    """
    overview, definition, gender = results.overview, results.definition, results.gender
    real_person_trend, real_person_monthly = results.real_person_trend, results.real_person_monthly
    nsfw_by_real_person, nsfw_by_gender = results.nsfw_by_real_person, results.nsfw_by_gender
    engagement, downloads = results.engagement, results.downloads
    adapter_monthly = results.adapter_monthly
    out: dict[str, dict] = {
        "n_models": entry(overview["n_models"], "count"),
        "n_adapters": entry(overview["n_adapters"], "count"),
        "n_real_person": entry(overview["n_real_person"], "count"),
        "model_first_month": entry(overview["first_month"], "text"),
        "model_last_month": entry(overview["last_month"], "text"),
    }
    for key in ("adapter_share", "real_person_share", *(f"nsfw_share_{d}" for d in NSFW_DEFINITIONS)):
        name = key if not key.startswith("nsfw_share_") else key.replace("nsfw_share_", "nsfw_share_models_")
        out.update(_share_entries(name, overview[key], overview[f"{key}_ci_low"],
                                  overview[f"{key}_ci_high"]))
    out.update(_share_entries("nsfw_share_models", overview[f"nsfw_share_{definition}"],
                              overview[f"nsfw_share_{definition}_ci_low"],
                              overview[f"nsfw_share_{definition}_ci_high"]))
    out["model_nsfw_definition"] = entry(NSFW_DEFINITION_LABELS[definition], "text")
    out.update(_first_last(real_person_monthly, "real_person_share"))
    out.update(_first_last(adapter_monthly, "adapter_share"))
    out.update(_trend_entries("real_person_trend", real_person_trend))
    g = gender if isinstance(gender, NotEstimable) else gender.set_index("depicted_gender")
    out["n_real_person_known_gender"] = entry(0 if isinstance(g, NotEstimable) else g["n_known"].iloc[0],
                                              "count")
    unknown_gender = NotEstimable(UNKNOWN_GENDER)
    for gname in ("female", "male"):
        values = [_field(g, gname, c) for c in ("share_of_known", "known_ci_low", "known_ci_high")]
        out.update(_share_entries(f"real_person_{gname}_share",
                                  *(unknown_gender if _is_nan(v) else v for v in values)))
    out["real_person_unknown_gender_share"] = entry(_field(g, "unknown", "share"), "percent")
    rp = nsfw_by_real_person if isinstance(nsfw_by_real_person, NotEstimable) else \
        nsfw_by_real_person.set_index("is_real_person")
    for who, name in ((True, "nsfw_share_real_person"), (False, "nsfw_share_other_models")):
        out.update(_share_entries(name, *(_field(rp, who, c) for c in ("share", "ci_low", "ci_high"))))
    out["real_person_nsfw_or"] = entry(_field(rp, True, "odds_ratio"), "float", 2)
    out["real_person_nsfw_or_ci_low"] = entry(_field(rp, True, "or_ci_low"), "float", 2)
    out["real_person_nsfw_or_ci_high"] = entry(_field(rp, True, "or_ci_high"), "float", 2)
    ng = nsfw_by_gender.set_index("group")
    for gname in ("female", "male"):
        label = f"real person: {gname}"
        if label in ng.index and ng.loc[label, "n"] > 0:
            out.update(_share_entries(f"nsfw_share_real_person_{gname}", ng.loc[label, "share"],
                                      ng.loc[label, "ci_low"], ng.loc[label, "ci_high"]))
        else:
            none = NotEstimable(f"no real-person model with a known NSFW label is labelled {gname}")
            out.update(_share_entries(f"nsfw_share_real_person_{gname}", none, none, none))
    out.update(_engagement_entries(engagement, "download_count", "downloads", ("real_person", "other")))
    out["real_person_downloads"] = entry(downloads["real_person_downloads"], "count")
    out["real_person_download_share"] = entry(downloads["real_person_download_share"], "percent")
    creators = results.real_person_creators
    out["rp_creators"] = entry(_field(creators, "creators"), "count")
    out["rp_creator_gini"] = entry(_field(creators, "gini"), "float", 2)
    out["rp_creator_top_ten_share"] = entry(_field(creators, "top10_share"), "percent")
    corrected = results.real_person_corrected
    for key, name in (("apparent", "rp_share_predicted"), ("corrected", "rp_share_corrected"),
                      ("ci_low", "rp_share_corrected_ci_low"), ("ci_high", "rp_share_corrected_ci_high")):
        out[name] = entry(_nan_as(_field(corrected, key), "the label carries no information"), "percent")
    bounds = results.female_bounds
    out["female_share_lower"] = entry(_field(bounds, "lower"), "percent")
    out["female_share_upper"] = entry(_field(bounds, "upper"), "percent")
    from . import robustness

    out.update(robustness.sensitivity_numbers(results.sensitivity, "model_sens"))
    return out


#: Tables of the committed real-data report this module reads when present: the linkage of
#: the showcase prompts' adapter calls (``linkage.calls``: found, resolved, ambiguous,
#: unresolved, as :func:`helpers.link.linkage_report` counts them) and the NSFW share of showcase
#: images by real-person adapter use (the frame of
#: :func:`helpers.analyse.links.nsfw_share_by_real_person_adapter`).
REAL_RECORDS_ENFORCEMENT = "real_person_adapter_nsfw"
NOT_IN_REPORT = "the committed validation report (docs/validation/real_records.json) does not hold it"


def _report_table(report: Mapping[str, Any], name: str) -> pd.DataFrame | None:
    table = report.get("tables", {}).get(name)
    return None if table is None else pd.DataFrame(table["rows"], columns=table["columns"])


def _wilson_entries(prefix: str, k: int, n: int) -> dict[str, dict]:
    """A share ``k / n`` with its Wilson interval (not estimable when ``n`` is 0)."""
    if n <= 0:
        none = NotEstimable("no record to count")
        return _share_entries(prefix, none, none, none)
    low, high = wilson_bounds(int(k), int(n))
    return _share_entries(prefix, k / n, low, high)


def real_records_numbers(report: Mapping[str, Any] | None) -> dict[str, dict]:
    """Aggregates of the real 2023 API records from the committed validation report
    (``docs/validation/real_records.json``): models, the platform's real-person share, the depicted
    gender of those models, the labels' validity, and, when the report holds them, the linkage of
    adapter calls and the NSFW share of showcase images by real-person adapter use. Every number
    the report lacks is not estimable, with the reason."""
    if report is None:
        report = {}
    out: dict[str, dict] = {}
    records = report.get("records", {})
    missing = NotEstimable(NOT_IN_REPORT)
    source = report.get("source", {}).get("file")
    out["real_records_source"] = entry(source.split("/")[0] if source else missing, "text")
    if records:
        out["real_records_models"] = entry(records["models"], "count")
        out["real_records_real_person"] = entry(records["poi_true"], "count")
        out.update(_wilson_entries("real_records_real_person_share", records["poi_true"], records["with_poi"]))
    else:
        out["real_records_models"] = entry(missing, "count")
        out["real_records_real_person"] = entry(missing, "count")
        out.update(_share_entries("real_records_real_person_share", missing, missing, missing))
    gender = _report_table(report, "gender_distribution")
    if gender is not None:
        counts = gender.set_index("depicted_gender")["models"]
        known = int(counts.drop("unknown", errors="ignore").sum())
        out["real_records_known_gender"] = entry(known, "count")
        out.update(_wilson_entries("real_records_female_share", int(counts.get("female", 0)), known))
    else:
        out["real_records_known_gender"] = entry(missing, "count")
        out.update(_share_entries("real_records_female_share", missing, missing, missing))
    metrics = _report_table(report, "metrics")
    row = (None if metrics is None else
           metrics[(metrics["method"] == "rules+classifier") & (metrics["metric"] == "f1")])
    values = (missing,) * 3 if row is None or row.empty else tuple(row.iloc[0][["estimate", "ci_low", "ci_high"]])
    out.update({k: entry(v, "float", 2) for k, v in zip(
        ("real_records_label_f_one", "real_records_label_f_one_ci_low", "real_records_label_f_one_ci_high"), values)})
    gold = _report_table(report, "gender_gold")
    row = None if gold is None else gold[gold["metric"] == "accuracy_where_decided"]
    values = (missing,) * 3 if row is None or row.empty else tuple(row.iloc[0][["estimate", "ci_low", "ci_high"]])
    out.update(_share_entries("real_records_gender_accuracy", *values))
    calls = report.get("linkage", {}).get("calls")
    if calls and calls.get("found"):
        out["real_records_calls_found"] = entry(calls["found"], "count")
        for status in ("resolved", "ambiguous", "unresolved"):
            out[f"real_records_calls_{status}_share"] = entry(calls.get(status, 0) / calls["found"], "percent")
    else:
        out["real_records_calls_found"] = entry(missing, "count")
        for status in ("resolved", "ambiguous", "unresolved"):
            out[f"real_records_calls_{status}_share"] = entry(missing, "percent")
    nsfw = _report_table(report, REAL_RECORDS_ENFORCEMENT)
    by_use = missing if nsfw is None else nsfw.set_index("uses_real_person_adapter")
    for uses, name in ((True, "real_records_nsfw_with_rp_adapter"), (False, "real_records_nsfw_without_rp_adapter")):
        out.update(_share_entries(name, *(_field(by_use, uses, c) for c in ("share", "ci_low", "ci_high"))))
        out[f"{name}_n"] = entry(_field(by_use, uses, "n"), "count")
    # The odds ratio (with vs without) is repeated on both rows of the table.
    for column, name in (("odds_ratio", ""), ("or_ci_low", "_ci_low"), ("or_ci_high", "_ci_high")):
        out[f"real_records_nsfw_rp_adapter_odds_ratio{name}"] = entry(_field(by_use, True, column), "float", 2)
    return out


def source_numbers(source: str, synthetic: bool) -> dict[str, dict]:
    """Where the numbers come from, as text macros (``\\DataSource``, ``\\DataSourceNote``)."""
    label = "the embedded synthetic sample" if synthetic else f"the CivitAI snapshot (source: {source})"
    note = ("All numbers below come from a synthetic sample generated to exercise the pipeline; "
            "they describe no real platform." if synthetic else
            "All numbers below are computed from the CivitAI snapshot named above.")
    return {"data_source": entry(label, "text"), "data_source_note": entry(note, "text")}


def method_numbers() -> dict[str, dict]:
    """Constants of the methods that the text quotes (confidence level, privacy floor)."""
    from .analyse.users import PER_USER_MIN_IMAGES

    return {"confidence_level": entry(CONFIDENCE, "percent", 0),
            "min_users": entry(MIN_USERS, "count"),
            "per_user_min_images": entry(PER_USER_MIN_IMAGES, "count")}


def merge_numbers(parts: Mapping[str, Mapping[str, dict]]) -> dict[str, dict]:
    """Merge named sets of numbers (sorted keys); a key defined differently twice is an error."""
    merged: dict[str, dict] = {}
    for part, numbers in parts.items():
        for key, value in numbers.items():
            if key in merged and merged[key] != value:
                raise ValueError(f"number {key!r} is defined differently in two parts ({part})")
            merged[key] = value
    return dict(sorted(merged.items()))


def study_numbers(images: ImageResults | None, models: ModelResults | None, source: str,
                  synthetic: bool, interventions: Any = None) -> dict[str, dict]:
    """Every number of the paper: from the image, model and intervention results (any may be
    missing when the snapshot lacks that table), the methods' constants, the data source, the
    real 2023 records (:func:`real_records_numbers`) and the sentences generated from them all
    (:func:`helpers.prose.prose_numbers`)."""
    if images is None and models is None:
        raise FileNotFoundError("no image or model results in data/reports: run notebooks 03 "
                                "and 04 first")
    from . import interventions_report, prose  # both written from this module's formatting

    parts = {"images": image_numbers(images) if images is not None else {},
             "models": model_numbers(models) if models is not None else {},
             "interventions": interventions_report.intervention_numbers(interventions) if interventions is not None else {},
             "methods": method_numbers(), "source": source_numbers(source, synthetic),
             "real_records": real_records_numbers(load_real_records_report())}
    numbers = merge_numbers(parts)
    return merge_numbers({"numbers": numbers, "prose": prose.prose_numbers(numbers, synthetic)})


def not_estimable_reasons(numbers: Mapping[str, dict], bounds: bool = False) -> dict[str, str]:
    """Number key → reason, for every number this run could not estimate (interval bounds,
    which share their estimate's reason, only with ``bounds``)."""
    return {k: v["reason"] for k, v in numbers.items()
            if "reason" in v and (bounds or not k.endswith(("_ci_low", "_ci_high")))}


def numbers_tex(numbers: Mapping[str, dict]) -> str:
    """``numbers.tex``: one ``\\newcommand`` per number, sorted by macro name."""
    macros: dict[str, str] = {}
    for key, value in numbers.items():
        name = macro_name(key)
        if name in macros:
            raise ValueError(f"two numbers give the macro \\{name}; rename one of them ({key!r})")
        macros[name] = value["latex"]
    lines = ["% Generated by helpers.paper.write_numbers from numbers.json. Do not edit by hand."]
    lines += [f"\\newcommand{{\\{name}}}{{{text}}}" for name, text in sorted(macros.items())]
    return "\n".join(lines) + "\n"


def write_numbers(paths: RunPaths, numbers: Mapping[str, dict], synthetic: bool,
                  source: str) -> dict[str, Path]:
    """Write ``paper/numbers.json`` and ``paper/numbers.tex``.

    ``numbers.json`` holds ``synthetic`` (whether the run is on the synthetic sample),
    ``source`` (the source adapter's name) and ``numbers`` (each with its macro name).
    """
    payload = {"synthetic": bool(synthetic), "source": str(source),
               "numbers": {k: {**v, "macro": macro_name(k)} for k, v in sorted(numbers.items())}}
    json_path = write_text_atomic(json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                                  paths.paper / NUMBERS_JSON)
    tex_path = write_text_atomic(numbers_tex(numbers), paths.paper / NUMBERS_TEX)
    return {"json": json_path, "tex": tex_path}


def read_numbers(paths: RunPaths) -> dict[str, Any]:
    """The payload of ``paper/numbers.json``: ``synthetic``, ``source`` and ``numbers``."""
    return json.loads((paths.paper / NUMBERS_JSON).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- tables
def format_frame(frame: pd.DataFrame, kinds: Mapping[str, str | tuple[str, int]]) -> pd.DataFrame:
    """A copy of ``frame`` with the columns in ``kinds`` rendered as plain text.

    ``kinds`` maps a column to a kind of :func:`format_value` or ``(kind, digits)``.
    """
    out = frame.copy()
    for col, spec in kinds.items():
        kind, digits = (spec, 1) if isinstance(spec, str) else spec
        out[col] = [format_value(v, kind, digits)[0] for v in out[col]]
    return out


def column_alignment(frame: pd.DataFrame) -> str:
    """``r`` for numeric columns, ``l`` for the others (decided before values become text)."""
    return "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
                   else "l" for c in frame.columns)


def latex_tabular(frame: pd.DataFrame, align: str | None = None) -> str:
    """A booktabs ``tabular`` of a frame of already formatted values (text escaped here)."""
    cols = [str(c) for c in frame.columns]
    align = align or column_alignment(frame)
    lines = [f"\\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_cell(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def write_table(frame: pd.DataFrame, paths: RunPaths, name: str,
                kinds: Mapping[str, str | tuple[str, int]] | None = None,
                headers: Mapping[str, str] | None = None, align: str | None = None) -> dict[str, Path]:
    """Write ``paper/tables/<name>.csv`` (raw values) and ``<name>.tex`` (formatted tabular).

    ``kinds`` formats columns for the LaTeX version (see :func:`format_frame`); ``headers``
    renames columns in both files.
    """
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"table name {name!r} must be lower-case letters, digits and underscores")
    raw = frame.rename(columns=dict(headers or {}))
    shown = format_frame(frame, kinds or {}).rename(columns=dict(headers or {}))
    csv = raw.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    csv_path = write_text_atomic(csv, paths.tables / f"{name}.csv")
    tex_path = write_text_atomic(latex_tabular(shown, align or column_alignment(frame)),
                                 paths.tables / f"{name}.tex")
    return {"csv": csv_path, "tex": tex_path}


@dataclass(frozen=True)
class TableSpec:
    """How a results frame appears in the paper: columns shown, their headers and formats.

    ``combine`` makes a shown column of several formatted ones (``name → (columns, separator)``),
    e.g. an interval ``low–high`` or a pair ``NSFW / SFW``, so that a table fits a column at the
    body font size instead of being shrunk.
    """

    columns: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str | tuple[str, int]] = field(default_factory=dict)
    align: str | None = None
    combine: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)

    def sources(self) -> list[str]:
        """The frame's columns this table needs."""
        out = [c for c in self.columns if c not in self.combine]
        return out + [c for name in self.columns if name in self.combine for c in self.combine[name][0]]


_CI_HEADER = f"{CONFIDENCE:.0%} CI"
_SHARE_CI = {"share": "percent", "ci_low": "percent", "ci_high": "percent"}
#: A sensitivity table (:func:`sensitivity_table`): estimate, interval kind, one column per definition.
_SENSITIVITY_SPEC = TableSpec(
    ("estimate", *NSFW_DEFINITIONS), {"estimate": "estimate (interval)", **NSFW_DEFINITION_LABELS},
    {}, ">{\\raggedright\\arraybackslash}p{6.4cm}" + ">{\\raggedleft\\arraybackslash}p{2.6cm}" * 3)
_INTERVAL = {"ci": (("ci_low", "ci_high"), "–")}
_RAGGED = ">{\\raggedright\\arraybackslash}p"
#: Human labels of the engagement metrics (platform column names in the CSV files).
ENGAGEMENT_LABELS: dict[str, str] = {
    "reaction_count": "reactions", "like_count": "likes", "heart_count": "hearts",
    "laugh_count": "laughs", "cry_count": "cries", "comment_count": "comments",
    "download_count": "downloads", "favorite_count": "favourites", "rating_count": "ratings",
    "thumbs_up_count": "thumbs up",
}
#: Every table ``main.tex`` inputs, by file name (``tables/<name>.tex``).
PAPER_TABLES: dict[str, TableSpec] = {
    "image_trends": TableSpec(
        ("series", "odds_ratio_per_year", "ci", "p_value", "mk_tau"),
        {"series": "series", "odds_ratio_per_year": "OR/year", "ci": _CI_HEADER, "p_value": "p",
         "mk_tau": "τ"},
        {"odds_ratio_per_year": ("float", 2), "ci_low": ("float", 2), "ci_high": ("float", 2),
         "p_value": "pvalue", "mk_tau": ("float", 2)}, "lrrrr", _INTERVAL),
    "adapter_nsfw": TableSpec(
        ("prompt_calls_lora", "n", "k", "share", "ci"),
        {"prompt_calls_lora": "LoRA in prompt", "n": "images", "k": "NSFW", "share": "share",
         "ci": _CI_HEADER},
        {"n": "count", "k": "count", **_SHARE_CI}, "lrrrr", _INTERVAL),
    "engagement_images": TableSpec(
        ("metric", "medians", "means", "rank_biserial", "p_value"),
        {"metric": "metric", "medians": "median NSFW / SFW", "means": "mean NSFW / SFW",
         "rank_biserial": "rank-biserial", "p_value": "p"},
        {"median_nsfw": "count", "median_sfw": "count", "mean_nsfw": ("float", 1),
         "mean_sfw": ("float", 1), "rank_biserial": ("float", 2), "p_value": "pvalue"}, "lrrrr",
        {"medians": (("median_nsfw", "median_sfw"), " / "), "means": (("mean_nsfw", "mean_sfw"), " / ")}),
    "engagement_models": TableSpec(
        ("metric", "medians", "means", "rank_biserial", "p_value"),
        {"metric": "metric", "medians": "median real / other", "means": "mean real / other",
         "rank_biserial": "rank-biserial", "p_value": "p"},
        {"median_real_person": "count", "median_other": "count", "mean_real_person": ("float", 1),
         "mean_other": ("float", 1), "rank_biserial": ("float", 2), "p_value": "pvalue"}, "lrrrr",
        {"medians": (("median_real_person", "median_other"), " / "),
         "means": (("mean_real_person", "mean_other"), " / ")}),
    "real_person_by_type": TableSpec(
        ("type", "n", "k", "share", "ci"),
        {"type": "type", "n": "models", "k": "real person", "share": "share", "ci": _CI_HEADER},
        {"n": "count", "k": "count", **_SHARE_CI}, "lrrrr", _INTERVAL),
    "depicted_gender": TableSpec(
        ("depicted_gender", "k", "share", "share_of_known", "ci"),
        {"depicted_gender": "depicted gender", "k": "models", "share": "of all",
         "share_of_known": "of known", "ci": _CI_HEADER},
        {"k": "count", "share": "percent", "share_of_known": "percent", "known_ci_low": "percent",
         "known_ci_high": "percent"}, "lrrrr", {"ci": (("known_ci_low", "known_ci_high"), "–")}),
    "sensitivity_images": _SENSITIVITY_SPEC,
    "sensitivity_models": _SENSITIVITY_SPEC,
    "interventions": TableSpec(
        ("label", "unit", "real_person_nsfw_text", "minor_nsfw_text", "collateral_text",
         "users_touched", "models_touched"),
        {"label": "rule", "unit": "acts on", "real_person_nsfw_text": "real-person ∧ NSFW removed",
         "minor_nsfw_text": "minor-coded ∧ NSFW removed", "collateral_text": "other images removed",
         "users_touched": "users touched", "models_touched": "models touched"},
        {"users_touched": "count", "models_touched": "count"},
        ">{\\raggedright\\arraybackslash}p{3.6cm}l>{\\raggedright\\arraybackslash}p{2.2cm}"
        ">{\\raggedright\\arraybackslash}p{2.2cm}>{\\raggedright\\arraybackslash}p{2.2cm}"
        ">{\\raggedleft\\arraybackslash}p{1.2cm}>{\\raggedleft\\arraybackslash}p{1.3cm}"),
    "policy_its": TableSpec(
        ("event_text", "series_label", "level_text", "slope_text", "months_text"),
        {"event_text": "policy event", "series_label": "monthly series",
         "level_text": "level change (pp)", "slope_text": "slope change (pp/year)",
         "months_text": "months before / after"},
        {}, ">{\\raggedright\\arraybackslash}p{3.6cm}>{\\raggedright\\arraybackslash}p{2.6cm}"
        ">{\\raggedright\\arraybackslash}p{4.6cm}>{\\raggedright\\arraybackslash}p{2.2cm}"
        ">{\\raggedright\\arraybackslash}p{1.4cm}"),
    "comparison": TableSpec(
        ("published_measure", "published", "our_measure", "ours", "difference_pp", "agreement", "source"),
        {"published_measure": "published measure (definition; scope)", "published": "published",
         "our_measure": "our measure", "ours": f"ours, % [{_CI_HEADER}]",
         "difference_pp": "difference, pp [CI]", "agreement": "agreement", "source": "source"},
        {}, f"{_RAGGED}{{3.2cm}}r{_RAGGED}{{2.7cm}}{_RAGGED}{{2.4cm}}{_RAGGED}{{2.4cm}}"
            f"{_RAGGED}{{1.6cm}}{_RAGGED}{{2.2cm}}"),
    "not_comparable": TableSpec(
        ("published_measure", "published", "why_not_compared", "source"),
        {"published_measure": "published measure (definition; scope)", "published": "published",
         "why_not_compared": "why no number of ours is comparable", "source": "source"},
        {}, f"{_RAGGED}{{5.0cm}}r{_RAGGED}{{6.6cm}}{_RAGGED}{{3.0cm}}"),
}


def combine_columns(shown: pd.DataFrame, combine: Mapping[str, tuple[tuple[str, ...], str]]) -> pd.DataFrame:
    """Formatted columns joined into one (``combine``: name → (columns, separator)); a cell with
    any part missing ("n/a") reads "n/a"."""
    out = shown.copy()
    for name, (columns, sep) in combine.items():
        out[name] = ["n/a" if "n/a" in parts else sep.join(parts)
                     for parts in zip(*(out[c].astype(str) for c in columns))]
    return out


def not_estimable_table(result: NotEstimable) -> pd.DataFrame:
    """The one-cell table of a result the snapshot cannot give: "not estimable" and why."""
    return pd.DataFrame({NOT_ESTIMABLE_TEXT: [result.reason]})


def write_paper_table(paths: RunPaths, name: str, frame: pd.DataFrame | NotEstimable) -> dict[str, Path]:
    """Write a table of :data:`PAPER_TABLES`: CSV with every column, LaTeX with the spec's columns;
    a :class:`NotEstimable` result becomes a one-cell table with the reason."""
    try:
        spec = PAPER_TABLES[name]
    except KeyError:
        raise ValueError(f"unknown paper table {name!r}; valid: {', '.join(PAPER_TABLES)}") from None
    if isinstance(frame, NotEstimable):
        return write_table(not_estimable_table(frame), paths, name, align="l")
    missing = [c for c in spec.sources() if c not in frame.columns]
    if missing:
        raise ValueError(f"table {name!r} needs columns {missing}")
    shown = combine_columns(format_frame(frame[spec.sources()], spec.kinds), spec.combine)
    shown = shown[list(spec.columns)].rename(columns=spec.headers)
    csv_path = write_text_atomic(frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
                                 paths.tables / f"{name}.csv")
    tex_path = write_text_atomic(latex_tabular(shown, spec.align or column_alignment(shown)),
                                 paths.tables / f"{name}.tex")
    return {"csv": csv_path, "tex": tex_path}


def image_tables(results: ImageResults) -> dict[str, pd.DataFrame]:
    """The paper tables of notebook 03, by :data:`PAPER_TABLES` name."""
    return {"image_trends": image_trend_table(results.trend, results.lora_trend),
            "adapter_nsfw": adapter_table(results.adapter),
            "engagement_images": engagement_table(results.engagement),
            "sensitivity_images": _sensitivity_table(results)}


def model_tables(results: ModelResults) -> dict[str, pd.DataFrame]:
    """The paper tables of notebook 04, by :data:`PAPER_TABLES` name."""
    return {"real_person_by_type": results.by_type, "depicted_gender": results.gender,
            "engagement_models": engagement_table(results.engagement),
            "sensitivity_models": _sensitivity_table(results)}


def _sensitivity_table(results: ImageResults | ModelResults) -> pd.DataFrame:
    """The paper's sensitivity table of a results object (:func:`helpers.robustness.sensitivity_table`)."""
    from . import robustness

    return robustness.sensitivity_table(results.sensitivity)


def write_paper_tables(paths: RunPaths, tables: Mapping[str, pd.DataFrame]) -> list[Path]:
    """Write several :data:`PAPER_TABLES` (:func:`write_paper_table`); return every file written."""
    return [p for name, frame in tables.items() for p in write_paper_table(paths, name, frame).values()]


def image_trend_table(nsfw_trend: Mapping[str, Mapping[str, float] | NotEstimable],
                      lora_trend: Mapping[str, float] | NotEstimable) -> pd.DataFrame:
    """One row per monthly series (NSFW under each definition, LoRA use) with its trend tests;
    a series without a trend says "not estimable" and why in its name, its values empty."""
    series = {f"NSFW ({NSFW_DEFINITION_LABELS[d]})": t for d, t in nsfw_trend.items()}
    series["LoRA in prompt"] = lora_trend
    rows = [{"series": f"{name}: {trend}"} if isinstance(trend, NotEstimable)
            else {"series": name, **dict(trend)} for name, trend in series.items()]
    return pd.DataFrame(rows, columns=["series", *TREND_FIELDS])


def engagement_table(engagement: pd.DataFrame | NotEstimable) -> pd.DataFrame | NotEstimable:
    """An engagement comparison with human metric names (``reaction_count`` → reactions)."""
    if isinstance(engagement, NotEstimable):
        return engagement
    return engagement.assign(metric=engagement["metric"].map(lambda m: ENGAGEMENT_LABELS.get(m, m)))


def adapter_table(adapter: pd.DataFrame | NotEstimable) -> pd.DataFrame | NotEstimable:
    """The adapter comparison frame with a readable yes/no column for the paper."""
    if isinstance(adapter, NotEstimable):
        return adapter
    return adapter.assign(prompt_calls_lora=adapter["uses_adapter"].map({True: "yes", False: "no"}))


# --------------------------------------------------------------------------- README
def readme_findings(numbers: Mapping[str, Any]) -> str:
    """The README's findings section (Markdown), every number taken from ``numbers.json``.

    ``numbers`` is the payload of ``numbers.json`` (:func:`read_numbers`). When it comes from
    the synthetic sample, the section opens by saying so; bullets whose analyses the run could
    not do (e.g. a snapshot without images) are left out, and a result that is not estimable is
    said to be, with its reason.
    """
    synthetic = bool(numbers.get("synthetic", True))
    source = str(numbers.get("source", ""))
    values: Mapping[str, dict] = numbers.get("numbers", {})

    def n(key: str) -> str:
        return values[key]["text"] if key in values else "n/a"

    def why(key: str) -> str | None:
        """The reason a number is not estimable (None when it is, or is not in the run)."""
        return values.get(key, {}).get("reason")

    lines = ["## Findings", ""]
    if synthetic:
        lines += ["> **These numbers come from the embedded synthetic sample**, generated to exercise "
                  "the pipeline. They describe no real platform. Run the study on the full snapshot "
                  "(see below) for its findings.", ""]
    else:
        lines += [f"Computed from the snapshot read with the `{source}` source adapter.", ""]
    if "n_images" in values:
        trend = (f"(odds ratio per year {n('nsfw_trend_r_or')}, {n('confidence_level')} CI "
                 f"{n('nsfw_trend_r_or_ci_low')}–{n('nsfw_trend_r_or_ci_high')})"
                 if not why("nsfw_trend_r_or") else f"(trend not estimable: {why('nsfw_trend_r_or')})")
        growth = (f" NSFW images grew {n('nsfw_growth_per_year')}-fold a year, SFW images "
                  f"{n('sfw_growth_per_year')}-fold (ratio {n('growth_ratio')}, "
                  f"{n('confidence_level')} CI {n('growth_ratio_ci_low')}–{n('growth_ratio_ci_high')})."
                  if "growth_ratio" in values and not why("growth_ratio") else "")
        adjusted = (f"; within the same user and month it is {n('lora_nsfw_or_adjusted')} "
                    f"({n('confidence_level')} CI {n('lora_nsfw_or_adjusted_ci_low')}–"
                    f"{n('lora_nsfw_or_adjusted_ci_high')})"
                    if "lora_nsfw_or_adjusted" in values and not why("lora_nsfw_or_adjusted") else "")
        adapters = (f"Images that call one are NSFW in {n('nsfw_share_with_lora')} of cases, those that "
                    f"do not in {n('nsfw_share_without_lora')} (odds ratio {n('lora_nsfw_or')}{adjusted})."
                    if not why("lora_nsfw_or") else
                    f"Whether images that call one are more often NSFW is not estimable: "
                    f"{why('lora_nsfw_or')}.")
        creators = (f"- **Creators.** The Gini coefficient of images per hashed user is "
                    f"{n('creator_gini')}; the most active 10% of users post {n('creator_top_ten_share')} of images"
                    + (f", the most active 1% {n('creator_top_one_share')}."
                       if n("creator_top_one_share") != "n/a" and not why("creator_top_one_share")
                       else ".")
                    if not why("creator_gini") else
                    f"- **Creators.** Concentration of posting is not estimable: {why('creator_gini')}.")
        lines += [
            f"- **Volume and NSFW share.** {n('n_images')} images from {n('image_first_month')} to "
            f"{n('image_last_month')}; {n('nsfw_share_r')} are rated R or harsher "
            f"({n('confidence_level')} CI {n('nsfw_share_r_ci_low')}–{n('nsfw_share_r_ci_high')}), from "
            f"{n('nsfw_share_r_first_month')} in the first month to {n('nsfw_share_r_last_month')} in "
            f"the last {trend}.{growth}",
            f"- **Adapters.** {n('lora_share')} of images with a prompt call a LoRA in it "
            f"({n('lora_share_first_month')} in the first month, {n('lora_share_last_month')} in the "
            f"last). {adapters}",
            creators,
        ]
        if "nsfw_share_with_rp_adapter" in values:
            lines.append(
                f"- **Real-person adapters.** Images whose prompt calls (or whose record names) an "
                f"adapter of a real person are NSFW in {n('nsfw_share_with_rp_adapter')} of cases, "
                f"other images in {n('nsfw_share_without_rp_adapter')}; real-person adapters are "
                f"{n('rp_share_of_adapter_links')} of resolved adapter links."
                if not why("nsfw_share_with_rp_adapter") else
                f"- **Real-person adapters.** Not estimable: {why('nsfw_share_with_rp_adapter')}.")
    if "n_models" in values:
        gender = (f"where their gender can be told, {n('real_person_female_share')} depict women"
                  if not why("real_person_female_share") else
                  f"their depicted gender is not estimable ({why('real_person_female_share')})")
        nsfw = (f"They are NSFW in {n('nsfw_share_real_person')} of cases, other models in "
                f"{n('nsfw_share_other_models')}." if not why("nsfw_share_real_person") else
                f"Their NSFW share cannot be compared with other models': "
                f"{why('nsfw_share_real_person')}.")
        lines += [
            f"- **Real people.** {n('real_person_share')} of {n('n_models')} models depict a real "
            f"person ({n('n_real_person')} models); {gender}. {nsfw}",
        ]
    return "\n".join(lines) + "\n"


def update_readme(readme_path: Path, text: str) -> None:
    """Replace the block between the findings markers of the README with ``text`` (atomic).

    Raises ``ValueError`` when the markers are missing, rather than appending somewhere.
    """
    readme = Path(readme_path)
    current = readme.read_text(encoding="utf-8")
    if current.count(README_START) != 1 or current.count(README_END) != 1:
        raise ValueError(f"{readme.name} must contain the markers {README_START} and {README_END} "
                         "exactly once")
    head, rest = current.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = text if text.endswith("\n") else text + "\n"
    write_text_atomic(f"{head}{README_START}\n{body}{README_END}{tail}", readme)


def figure_files(paths: RunPaths, names: Iterable[str]) -> pd.DataFrame:
    """Which of the named figures exist as PDF and PNG (relative paths, for a notebook table)."""
    rows = []
    for name in names:
        pdf, png = paths.figures / f"{name}.pdf", paths.figures / f"{name}.png"
        rows.append({"figure": name, "pdf": paths.relative(pdf) if pdf.exists() else "missing",
                     "png": paths.relative(png) if png.exists() else "missing"})
    return pd.DataFrame(rows)


def tex_references(tex: str) -> dict[str, set[str]]:
    """Figures, inputs and macros a LaTeX source uses (for checking the pipeline provides them)."""
    body = re.sub(r"(?<!\\)%.*", "", tex)  # drop comments
    graphics = set(re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]+)\}", body))
    inputs = set(re.findall(r"\\input\{([^}]+)\}", body))
    defined = set(re.findall(r"\\(?:newcommand|renewcommand|providecommand)\{?\\([A-Za-z]+)", body))
    used = set(re.findall(r"\\([A-Za-z]+)", body))
    return {"graphics": graphics, "inputs": inputs, "macros_used": used, "macros_defined": defined}


def manuscript_needs(tex: str) -> dict[str, set[str]]:
    """What a manuscript takes from a run: figure files, input files and number macros.

    Number macros are the capitalised macros it uses but does not define itself (LaTeX's own
    capitalised macros excepted), since every number macro is CamelCase (:func:`macro_name`).
    """
    refs = tex_references(tex)
    macros = {m for m in refs["macros_used"] if m[:1].isupper()} - LATEX_CAPITALISED \
        - refs["macros_defined"]
    return {"graphics": refs["graphics"], "inputs": refs["inputs"], "macros": macros}


def manuscript_check(paths: RunPaths, main_tex: Path = MAIN_TEX) -> pd.DataFrame:
    """Status of every figure, input and number macro ``main.tex`` uses, for this run.

    One row per item: ``kind`` (figure, input, macro), ``name`` and ``status`` ('ok',
    'missing'). Macros are looked up in the run's ``numbers.tex``.
    """
    needs = manuscript_needs(Path(main_tex).read_text(encoding="utf-8"))
    tex_path = paths.paper / NUMBERS_TEX
    defined = set(re.findall(r"\\newcommand\{\\([A-Za-z]+)\}", tex_path.read_text(encoding="utf-8"))) \
        if tex_path.exists() else set()
    rows = [{"kind": "figure", "name": g, "status": "ok" if (paths.paper / g).exists() else "missing"}
            for g in sorted(needs["graphics"])]
    rows += [{"kind": "input", "name": i, "status": "ok" if (paths.paper / i).exists() else "missing"}
             for i in sorted(needs["inputs"])]
    rows += [{"kind": "macro", "name": "\\" + m, "status": "ok" if m in defined else "missing"}
             for m in sorted(needs["macros"])]
    return pd.DataFrame(rows, columns=["kind", "name", "status"])
