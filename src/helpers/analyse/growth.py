""""Disproportionate" defined: NSFW growth compared with SFW growth, and trends that may break.

The paper's claim is a *disproportionate* rise of NSFW content. Two measurements make it precise:

* :func:`growth_ratio` compares the yearly growth of NSFW and of SFW image counts: their ratio
  above 1 means NSFW grows faster. Standard errors are HAC (Newey–West), since neighbouring
  months are not independent and vary beyond binomial or Poisson noise. Those intervals
  describe the users who happened to post; :func:`growth_ratio_bootstrap` resamples the users
  themselves (their per-month counts), so it also covers the ratio a different draw of users
  would give.
* :func:`segmented_trend` fits the NSFW share with a logistic line that may change slope once,
  at the month that fits best (a grid over interior months), where one straight line does not
  fit (its dispersion is reported).
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping

import numpy as np
import pandas as pd
import statsmodels.api as sm

from ..stats import CONFIDENCE

#: Months of lag in the Newey–West (HAC) standard errors.
HAC_LAGS = 3
#: Fewest months either side of a break.
MIN_SEGMENT = 4


def _years(months: pd.Series) -> np.ndarray:
    index = pd.PeriodIndex(months, freq="M")
    ordinal = index.year.to_numpy() * 12 + index.month.to_numpy()
    return (ordinal - ordinal.min()) / 12.0


def _coefficients(endog: np.ndarray, exog: np.ndarray, family,
                  confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Coefficients of a GLM with intervals and p-values (t with n − p degrees of freedom), and
    its deviance.

    Each standard error is the larger of the HAC (Newey–West, small-sample corrected) one and the
    quasi-likelihood one (scale from Pearson's χ², floored at 1): HAC alone is known to be too
    narrow over a few dozen months, the quasi one ignores that neighbouring months move together.
    """
    from scipy import stats as st

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sm.GLM(endog, exog, family=family)
        hac = model.fit(cov_type="HAC", cov_kwds={"maxlags": HAC_LAGS, "use_correction": True})
        quasi = model.fit(scale="X2")
    floor = np.asarray(quasi.bse) * math.sqrt(max(1.0, float(quasi.scale)) / float(quasi.scale))
    se = np.maximum(np.asarray(hac.bse), floor)
    df = max(1, exog.shape[0] - exog.shape[1])
    z = float(st.t.ppf(1 - (1 - confidence) / 2, df))
    params = np.asarray(hac.params)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * st.t.sf(np.abs(params / se), df)
    return params, params - z * se, params + z * se, p, float(hac.deviance)


def _slope(endog: np.ndarray, t: np.ndarray, family, confidence: float) -> tuple[float, float, float, float]:
    """exp(slope) per year of a GLM on time: estimate, low, high, p-value."""
    params, low, high, p, _ = _coefficients(endog, sm.add_constant(t), family, confidence)
    return float(np.exp(params[1])), float(np.exp(low[1])), float(np.exp(high[1])), float(p[1])


def growth_ratio(monthly: pd.DataFrame, month: str = "month", k: str = "k", n: str = "n",
                 confidence: float = CONFIDENCE) -> dict[str, float]:
    """Yearly growth of NSFW and of SFW image counts and their ratio (NSFW over SFW), with HAC
    intervals; NaN when fewer than four months or one group is empty.

    With ``log count = a + b·t + c·nsfw + d·t·nsfw`` the ratio ``exp(d)`` is the yearly change
    of the monthly odds NSFW : SFW, so it is estimated as the slope of a logistic model of the
    share, which keeps the two counts of a month together (they share the month's total).
    """
    data = monthly[monthly[n] > 0].sort_values(month)
    nan = {key: math.nan for key in ("nsfw_growth", "sfw_growth", "ratio", "ratio_low",
                                     "ratio_high", "p_value")}
    if len(data) < 4 or data[k].sum() == 0 or (data[n] - data[k]).sum() == 0:
        return {**nan, "n_months": float(len(data))}
    t = _years(data[month])
    kk, nn = data[k].to_numpy(float), data[n].to_numpy(float)
    ratio, low, high, p = _slope(np.column_stack([kk, nn - kk]), t, sm.families.Binomial(), confidence)
    nsfw = _slope(kk, t, sm.families.Poisson(), confidence)[0]
    sfw = _slope(nn - kk, t, sm.families.Poisson(), confidence)[0]
    return {"nsfw_growth": nsfw, "sfw_growth": sfw, "ratio": ratio, "ratio_low": low,
            "ratio_high": high, "p_value": p, "n_months": float(len(data))}


def logistic_slopes(k: np.ndarray, n: np.ndarray, t: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Slope of the logistic line ``logit(k/n) = a + b·t`` fitted by maximum likelihood to every
    column of ``k`` and ``n`` (months × replicates) at once (Newton–Raphson on the 2 × 2
    information matrix): the bootstrap refits in one vectorised pass. NaN where a column has
    no image, or every or no image NSFW."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = k.sum(axis=0) / n.sum(axis=0)
        a = np.log(pooled / (1 - pooled))
    b = np.zeros_like(a)
    tt = t[:, None]
    for _ in range(iterations):
        with np.errstate(invalid="ignore", over="ignore"):
            p = 1 / (1 + np.exp(-(a + b * tt)))
            w = n * p * (1 - p)
            r = k - n * p
            g0, g1 = r.sum(axis=0), (r * tt).sum(axis=0)
            h00, h01, h11 = w.sum(axis=0), (w * tt).sum(axis=0), (w * tt ** 2).sum(axis=0)
            det = h00 * h11 - h01 ** 2
            a = a + (h11 * g0 - h01 * g1) / det
            b = b + (h00 * g1 - h01 * g0) / det
    degenerate = ~np.isfinite(a) | (pooled <= 0) | (pooled >= 1)
    return np.where(degenerate, np.nan, b)


def growth_ratio_bootstrap(counts: pd.DataFrame, n_boot: int, seed: int,
                           confidence: float = CONFIDENCE) -> dict[str, float]:
    """The NSFW vs SFW growth ratio of :func:`growth_ratio` with the percentile interval of a
    user-cluster bootstrap: each replicate weights every user's per-month counts
    (:func:`~helpers.analyse.users.user_counts` by month) with a Poisson(1) weight, sums them
    to monthly counts and refits the logistic slope. Keys ``ratio``, ``boot_low``,
    ``boot_high``; NaN when fewer than four months hold images or one side is empty."""
    from .users import _codes, count_matrix, poisson_weights

    nan = {"ratio": math.nan, "boot_low": math.nan, "boot_high": math.nan}
    data = counts[counts["n"] > 0]
    if data["month"].nunique() < 4 or data["k"].sum() == 0 or data["k"].sum() == data["n"].sum():
        return nan
    users, n_users = _codes(data["user"])
    months, n_months = _codes(data["month"])
    t = _years(pd.Series(np.sort(data["month"].unique())))
    mat_k = count_matrix(data["k"], months, users, (n_months, n_users))
    mat_n = count_matrix(data["n"], months, users, (n_months, n_users))
    point = logistic_slopes(np.asarray(mat_k.sum(axis=1)), np.asarray(mat_n.sum(axis=1)), t)[0]
    slopes = [logistic_slopes(np.asarray(mat_k @ w), np.asarray(mat_n @ w), t)
              for w in poisson_weights(n_users, n_boot, seed)]
    if not slopes:
        return {**nan, "ratio": float(np.exp(point))}
    boot = np.exp(np.concatenate(slopes))
    tail = (1 - confidence) / 2
    return {"ratio": float(np.exp(point)), "boot_low": float(np.nanquantile(boot, tail)),
            "boot_high": float(np.nanquantile(boot, 1 - tail))}


def _logit_fit(k: np.ndarray, n: np.ndarray, exog: np.ndarray):
    endog = np.column_stack([k, n - k])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.GLM(endog, exog, family=sm.families.Binomial()).fit()


def segmented_trend(monthly: pd.DataFrame, month: str = "month", k: str = "k", n: str = "n",
                    confidence: float = CONFIDENCE) -> dict[str, float | str]:
    """A logistic trend of the share ``k/n`` with one change of slope at the best-fitting month.

    Returns the break month, the odds ratio per year before and after it (HAC intervals), the
    deviance of the straight line and of the broken one, and the straight line's dispersion
    (Pearson χ² per degree of freedom: far above 1 says a straight line does not fit). NaN and
    no break when there are too few months or the share never varies.
    """
    data = monthly[monthly[n] > 0].sort_values(month).reset_index(drop=True)
    out: dict[str, float | str] = {"break_month": "", "before": math.nan, "before_low": math.nan,
                                   "before_high": math.nan, "after": math.nan, "after_low": math.nan,
                                   "after_high": math.nan, "straight_deviance": math.nan,
                                   "broken_deviance": math.nan, "straight_dispersion": math.nan,
                                   "n_months": float(len(data))}
    kk, nn = data[k].to_numpy(float), data[n].to_numpy(float)
    if len(data) < 2 * MIN_SEGMENT or kk.sum() == 0 or kk.sum() == nn.sum():
        return out
    t = _years(data[month])
    straight = _logit_fit(kk, nn, sm.add_constant(t))
    out["straight_deviance"] = float(straight.deviance)
    out["straight_dispersion"] = float(straight.pearson_chi2 / (len(data) - 2))
    best = None
    for b in range(MIN_SEGMENT, len(data) - MIN_SEGMENT + 1):
        hinge = np.maximum(t - t[b], 0.0)
        fit = _logit_fit(kk, nn, np.column_stack([np.ones_like(t), t, hinge]))
        if best is None or fit.deviance < best[1].deviance:
            best = (b, fit)
    b, _ = best
    # Refit with the slopes before and after the break as the two coefficients.
    before_t, after_t = np.minimum(t - t[b], 0.0), np.maximum(t - t[b], 0.0)
    exog = np.column_stack([np.ones_like(t), before_t, after_t])
    params, low, high, _, deviance = _coefficients(np.column_stack([kk, nn - kk]), exog,
                                                   sm.families.Binomial(), confidence)
    out.update({"break_month": str(data[month].iloc[b]), "broken_deviance": deviance,
                "before": float(np.exp(params[1])), "before_low": float(np.exp(low[1])),
                "before_high": float(np.exp(high[1])), "after": float(np.exp(params[2])),
                "after_low": float(np.exp(low[2])), "after_high": float(np.exp(high[2]))})
    return out


def growth_ratios(monthly: pd.DataFrame, user_counts: Mapping[str, pd.DataFrame] | None = None,
                  n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """:func:`growth_ratio` of every definition of the long monthly frame of
    :func:`~helpers.analyse.images.nsfw_share_by_month`: definition → ratio. With
    ``user_counts`` (definition → :func:`~helpers.analyse.users.user_counts` by month) each
    ratio gains the user-bootstrap interval of :func:`growth_ratio_bootstrap` as
    ``ratio_boot_low`` / ``ratio_boot_high`` beside the HAC one (every definition's rows list
    the same users, so the same seed gives every definition the same user weights)."""
    out = {}
    for d, part in monthly.groupby("definition", sort=False):
        ratio = growth_ratio(part[part["n"] > 0])
        if user_counts is not None and d in user_counts:
            boot = growth_ratio_bootstrap(user_counts[d], n_boot, seed)
            ratio.update(ratio_boot_low=boot["boot_low"], ratio_boot_high=boot["boot_high"])
        out[d] = ratio
    return out


def growth_fields(monthly: pd.DataFrame, definition: str,
                  ratios: dict[str, dict[str, float]] | None = None) -> dict:
    """The "disproportionate" results of notebook 03 under the headline definition: the growth
    ratio and the segmented trend (each :class:`~helpers.stats.NotEstimable` with its reason
    where the months do not allow it). ``ratios`` (:func:`growth_ratios`) is reused when given."""
    from ..stats import NotEstimable

    ratios = ratios if ratios is not None else growth_ratios(monthly)
    part = monthly[(monthly["definition"] == definition) & (monthly["n"] > 0)]
    ratio = growth_or_reason(ratios[definition], len(part))
    segmented = segmented_trend(part)
    if not segmented["break_month"]:
        segmented = NotEstimable(f"{len(part)} month(s) with data, or a share that never varies: a "
                                 f"break needs at least {2 * MIN_SEGMENT} months")
    return {"growth": ratio, "segmented": segmented}


def growth_or_reason(ratio: dict[str, float], n_months: int):
    """A :func:`growth_ratio`, or :class:`~helpers.stats.NotEstimable` with the reason when it is
    NaN (fewer than four months, or every image on one side)."""
    from ..stats import NotEstimable

    if n_months < 4:
        return NotEstimable(f"{n_months} month(s) with data: growth rates need at least four")
    if math.isnan(ratio["ratio"]):
        return NotEstimable("every image is NSFW, or every image is SFW, under this definition")
    return ratio
