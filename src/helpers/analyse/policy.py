"""Platform policy events measured as interrupted time series (notebook 05).

A *policy event* is a run parameter (``policy_events``): a date, a label, its public source and
optionally ``synthetic: true`` (a break planted in the synthetic sample, used on that sample
only). For each event and each monthly series (the NSFW share of images; the share of images
that use a real-person adapter) a segmented regression estimates the change in *level* at the
event and the change in *slope* after it:

    share_t = b0 + b1 t + b2 after_t + b3 (t - t0) after_t + e_t

by weighted least squares (weights: the month's images, so a month of ten images weighs less
than one of ten thousand). The month holding the event date is a transition month and is left
out unless the event falls on its first day. Two intervals: heteroscedasticity- and
autocorrelation-consistent (Newey–West) standard errors, and a cluster bootstrap over users
(each replicate reweights users and refits), since a few users post most images. An event is
used only where the snapshot covers at least :data:`MIN_MONTHS_EACH_SIDE` months on each side;
otherwise its row says why it is not estimable.

The committed validation report of the real 2023 records can also show enforcement: where the
report carries the NSFW share of showcase images with vs without a real-person adapter,
:func:`enforcement_from_report` returns it as it is (nothing is recomputed here).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Mapping, Sequence

import duckdb
import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import sparse

from .. import db
from ..stats import CONFIDENCE, NotEstimable, with_share
from .common import flag_column, month_sql
from .users import count_matrix, poisson_weights

#: Months of data the snapshot must hold on each side of an event to estimate it.
MIN_MONTHS_EACH_SIDE = 6
#: The monthly series tested at every event: name → (label, numerator column, denominator column).
SERIES: dict[str, tuple[str, str, str]] = {
    "nsfw": ("NSFW share of images", "k", "n"),
    "real_person": ("share of images using a real-person adapter", "rp", "images"),
}
#: Keys of a policy event (``synthetic`` optional).
EVENT_KEYS: tuple[str, ...] = ("date", "label", "source")
#: Columns of the interrupted-time-series table, estimable or not.
ITS_COLUMNS: tuple[str, ...] = (
    "date", "event", "synthetic", "series", "series_label", "break_month", "transition_month",
    "months_before", "months_after", "level_change", "level_ci_low", "level_ci_high",
    "level_boot_low", "level_boot_high", "level_p_value", "slope_change_per_year", "slope_ci_low",
    "slope_ci_high", "slope_boot_low", "slope_boot_high", "slope_p_value", "slope_before_per_year",
    "hac_lags", "not_estimable")
#: Name of the validation report's table of NSFW shares by real-person adapter use.
ENFORCEMENT_TABLE = "real_person_adapter_nsfw"


class EventError(ValueError):
    """A policy event is malformed."""


def validate_events(events: Any) -> list[dict[str, Any]]:
    """Checked policy events from the ``policy_events`` parameter (a list of mappings with
    date, label, source and optionally synthetic), in date order."""
    if not isinstance(events, (list, tuple)):
        raise EventError("policy_events must be a list of {date, label, source[, synthetic]}")
    out = []
    for i, raw in enumerate(events):
        if not isinstance(raw, Mapping):
            raise EventError(f"event {i + 1} is not a mapping with keys {', '.join(EVENT_KEYS)}")
        missing = [k for k in EVENT_KEYS if k not in raw]
        extra = sorted(set(raw) - {*EVENT_KEYS, "synthetic"})
        if missing or extra:
            raise EventError(f"event {i + 1}: " + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown key(s) {', '.join(extra)}"] if extra else [])))
        try:
            date = dt.date.fromisoformat(str(raw["date"]))
        except ValueError:
            raise EventError(f"event {i + 1}: {raw['date']!r} is not a date in YYYY-MM-DD form") from None
        synthetic = raw.get("synthetic", False)
        if not isinstance(synthetic, bool):
            raise EventError(f"event {i + 1}: synthetic must be true or false")
        out.append({"date": date.isoformat(), "label": str(raw["label"]), "source": str(raw["source"]),
                    "synthetic": synthetic})
    return sorted(out, key=lambda e: e["date"])


# --------------------------------------------------------------------------- data
def user_month_counts(images: Path, links: Path | None, models: Path | None, definition: str = "r",
                      con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Per user and month: images, images with a known NSFW label (``n``), NSFW images
    (``k``) and images using a resolved real-person adapter (``rp``; 0 without a link)."""
    con = db.connection_or_default(con)
    flag = flag_column(definition)
    have_links = links is not None and models is not None and Path(links).exists() and Path(models).exists()
    rp = ("LEFT JOIN (SELECT DISTINCT l.image_id FROM " + db.table_sql(links) + " l JOIN "
          + db.table_sql(models) + " m ON m.model_id = l.model_id WHERE l.kind = 'adapter' "
          "AND coalesce(m.is_real_person, false)) r ON r.image_id = i.image_id") if have_links else ""
    used = "r.image_id IS NOT NULL" if have_links else "false"
    out = con.execute(f"""
        SELECT coalesce(i.user_hash, 'image:' || CAST(i.image_id AS VARCHAR)) AS user,
               {month_sql('i.created_at')} AS month, count(*) AS images, count(i.{flag}) AS n,
               count(*) FILTER (WHERE i.{flag}) AS k, count(*) FILTER (WHERE {used}) AS rp
        FROM {db.table_sql(images)} i {rp} GROUP BY ALL ORDER BY ALL""").df()
    out[["images", "n", "k", "rp"]] = out[["images", "n", "k", "rp"]].astype("int64")
    out.attrs["linked"] = have_links
    return out


def monthly_series(counts: pd.DataFrame) -> pd.DataFrame:
    """Per series and month: ``n``, ``k`` and the share with its Wilson interval."""
    parts = []
    monthly = counts.groupby("month", sort=True)[["images", "n", "k", "rp"]].sum()
    for name, (label, k, n) in SERIES.items():
        part = pd.DataFrame({"series": name, "label": label, "month": monthly.index,
                             "n": monthly[n].to_numpy(), "k": monthly[k].to_numpy()})
        parts.append(with_share(part))
    return pd.concat(parts, ignore_index=True)


def month_index(months: Sequence[str]) -> np.ndarray:
    """Calendar months as consecutive integers (gaps in the data stay gaps in time)."""
    return np.array(months, dtype="datetime64[M]").astype(np.int64)


def break_month(date: str) -> tuple[str, str | None]:
    """First month wholly after the event (the break), and the transition month holding the
    event date when the event does not fall on a month's first day (else None)."""
    day = dt.date.fromisoformat(date)
    month = np.datetime64(day.strftime("%Y-%m"), "M")
    if day.day == 1:
        return str(month), None
    return str(month + 1), str(month)


# --------------------------------------------------------------------------- estimation
def design(months: Sequence[str], start: str) -> np.ndarray:
    """Design matrix of the segmented regression: constant, time (years), after, years after."""
    t = month_index(months).astype(float)
    t0 = float(month_index([start])[0])
    after = (t >= t0).astype(float)
    years = (t - t.min()) / 12.0
    return np.column_stack([np.ones_like(t), years, after, after * (t - t0) / 12.0])


def newey_west_lags(n_months: int) -> int:
    """The usual Newey–West lag length, floor(4 (T/100)^(2/9))."""
    return int(np.floor(4 * (n_months / 100.0) ** (2.0 / 9.0)))


def segmented_regression(months: Sequence[str], k: np.ndarray, n: np.ndarray, start: str,
                         confidence: float = CONFIDENCE) -> dict[str, float]:
    """Level and slope change (per year) of the share ``k / n`` at month ``start``, by weighted
    least squares with Newey–West (HAC) standard errors, small-sample corrected, and t quantiles."""
    x = design(months, start)
    y = np.asarray(k, float) / np.asarray(n, float)
    lags = newey_west_lags(len(months))
    # Few months: small-sample corrected HAC covariance and t quantiles, not normal ones.
    fit = sm.WLS(y, x, weights=np.asarray(n, float)).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True)
    ci = np.asarray(fit.conf_int(alpha=1 - confidence))
    return {"level_change": float(fit.params[2]), "level_ci_low": float(ci[2, 0]),
            "level_ci_high": float(ci[2, 1]), "level_p_value": float(fit.pvalues[2]),
            "slope_change_per_year": float(fit.params[3]), "slope_ci_low": float(ci[3, 0]),
            "slope_ci_high": float(ci[3, 1]), "slope_p_value": float(fit.pvalues[3]),
            "slope_before_per_year": float(fit.params[1]), "hac_lags": lags}


def bootstrap_segmented(counts: pd.DataFrame, months: Sequence[str], k: str, n: str, start: str,
                        n_boot: int, seed: int, confidence: float = CONFIDENCE) -> dict[str, float]:
    """Percentile intervals of the level and slope change from a cluster bootstrap over users:
    each replicate reweights users (Poisson), rebuilds the monthly shares and refits."""
    data = counts[counts["month"].isin(months)]
    users, user_index = np.unique(data["user"].to_numpy(), return_inverse=True)
    month_pos = pd.Index(months).get_indexer(data["month"])
    shape = (len(months), len(users))
    mat_k = count_matrix(data[k], month_pos, user_index, shape)
    mat_n = count_matrix(data[n], month_pos, user_index, shape)
    x = design(months, start)
    estimates = []
    for weights in poisson_weights(len(users), n_boot, seed):
        kb, nb = np.asarray(mat_k @ weights), np.asarray(mat_n @ weights)
        for j in range(weights.shape[1]):
            ok = nb[:, j] > 0
            if ok.sum() < x.shape[1] + 1:
                continue
            root = np.sqrt(nb[ok, j])
            coef, *_ = np.linalg.lstsq(x[ok] * root[:, None], kb[ok, j] / nb[ok, j] * root, rcond=None)
            estimates.append(coef[2:4])
    tail = (1 - confidence) / 2
    if not estimates:
        return {"level_boot_low": np.nan, "level_boot_high": np.nan,
                "slope_boot_low": np.nan, "slope_boot_high": np.nan}
    boot = np.array(estimates)
    low, high = np.quantile(boot, tail, axis=0), np.quantile(boot, 1 - tail, axis=0)
    return {"level_boot_low": float(low[0]), "level_boot_high": float(high[0]),
            "slope_boot_low": float(low[1]), "slope_boot_high": float(high[1])}


def event_status(event: Mapping[str, Any], months: Sequence[str], synthetic_run: bool,
                 min_months: int = MIN_MONTHS_EACH_SIDE) -> tuple[str, str | None, NotEstimable | None]:
    """The event's break month, its transition month, and why it cannot be estimated on these
    months (None when it can)."""
    start, transition = break_month(event["date"])
    if event.get("synthetic") and not synthetic_run:
        return start, transition, NotEstimable("a break planted in the synthetic sample: used on "
                                               "that sample only")
    before = sum(1 for m in months if m < (transition or start))
    after = sum(1 for m in months if m >= start)
    if before < min_months or after < min_months:
        covered = f"{months[0]}..{months[-1]}" if len(months) else "no months"
        return start, transition, NotEstimable(
            f"the snapshot ({covered}) has {before} month(s) before {start} and {after} from it "
            f"on; {min_months} are needed on each side")
    return start, transition, None


def interrupted_time_series(counts: pd.DataFrame, events: Sequence[Mapping[str, Any]],
                            synthetic_run: bool, n_boot: int = 1000, seed: int = 0,
                            min_months: int = MIN_MONTHS_EACH_SIDE) -> pd.DataFrame:
    """One row per event and series: break and transition month, months on each side, and
    either the level and slope change with both intervals or the reason it is not estimable.
    A series with no linked images (no link table) is not estimable either."""
    rows = []
    for event in events:
        for name, (label, k, n) in SERIES.items():
            monthly = counts.groupby("month", sort=True)[[k, n]].sum()
            monthly = monthly[monthly[n] > 0]
            months = list(monthly.index)
            start, transition, reason = event_status(event, months, synthetic_run, min_months)
            used = [m for m in months if m != transition]
            row: dict[str, Any] = {"date": event["date"], "event": event["label"],
                                   "synthetic": bool(event.get("synthetic", False)), "series": name,
                                   "series_label": label, "break_month": start,
                                   "transition_month": transition,
                                   "months_before": sum(1 for m in used if m < start),
                                   "months_after": sum(1 for m in used if m >= start)}
            if reason is None and name == "real_person" and not counts.attrs.get("linked", True):
                reason = NotEstimable("no link table: no image can be tied to a real-person adapter")
            if reason is None and monthly[k].sum() == 0:
                reason = NotEstimable(f"no month has any image counted in the {label}")
            if reason is None:
                sub = monthly.loc[used]
                row.update(segmented_regression(used, sub[k].to_numpy(), sub[n].to_numpy(), start))
                row.update(bootstrap_segmented(counts, used, k, n, start, n_boot, seed))
            row["not_estimable"] = reason.reason if reason is not None else None
            rows.append(row)
    return pd.DataFrame(rows, columns=list(ITS_COLUMNS))


def events_table(events: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The declared events as a table (date, label, source, synthetic, break month)."""
    return pd.DataFrame([{**e, "break_month": break_month(e["date"])[0]} for e in events],
                        columns=["date", "label", "source", "synthetic", "break_month"])


# --------------------------------------------------------------------------- real records
def enforcement_from_report(report: Mapping[str, Any] | None) -> pd.DataFrame | NotEstimable:
    """The NSFW share of the real 2023 showcase images with vs without a real-person adapter,
    as the committed validation report gives it (table :data:`ENFORCEMENT_TABLE`), or the
    reason it cannot be shown."""
    if report is None:
        return NotEstimable("no committed validation report (docs/validation/real_records.json)")
    table = report.get("tables", {}).get(ENFORCEMENT_TABLE)
    if not table:
        return NotEstimable(f"the committed validation report carries no {ENFORCEMENT_TABLE!r} "
                            "table (the NSFW share of the real showcase images with vs without a "
                            "real-person adapter); its generator, helpers.label.validation, would "
                            "have to add it")
    return pd.DataFrame(table["rows"], columns=table["columns"])


def policy_fields(images: Path, links: Path | None, models: Path | None,
                  events: Sequence[Mapping[str, Any]], definition: str, synthetic_run: bool,
                  n_boot: int, seed: int, report: Mapping[str, Any] | None,
                  con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
    """Notebook 05's policy results: the declared events, the monthly series, the interrupted
    time series at each event, and enforcement on the real records from the report."""
    counts = user_month_counts(images, links, models, definition, con)
    return {"events": events_table(events), "its_monthly": monthly_series(counts),
            "its": interrupted_time_series(counts, events, synthetic_run, n_boot, seed),
            "enforcement": enforcement_from_report(report)}
