"""Statistics shared by the labelling and analysis stages (one implementation of each).

Shares carry Wilson intervals; trends are tested with a quasi-binomial logistic regression of
monthly counts on time (odds ratio per year) and a Mann-Kendall test; distributions are
compared with a Mann-Whitney U test computed from value counts and its rank-biserial effect
size; concentration is a Gini coefficient, Lorenz curve and top shares of a frequency table;
vocabularies are compared with weighted log-odds under an informative Dirichlet prior
(Monroe et al. 2008). Every function works on small aggregates, never on row-level data.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm
from statsmodels.stats.contingency_tables import Table2x2
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

#: Confidence level of every interval.
CONFIDENCE = 0.95
#: What a not-estimable result is called wherever the reader sees it (notebooks, macros, tables).
NOT_ESTIMABLE_TEXT = "not estimable"
#: The key under which a stored result (JSON) holds the reason it is not estimable.
NOT_ESTIMABLE_KEY = "not_estimable"
#: The fields of :func:`share_trend`, in order (the columns of a trend table).
TREND_FIELDS: tuple[str, ...] = ("odds_ratio_per_year", "ci_low", "ci_high", "p_value",
                                 "dispersion", "n_months", "mk_tau", "mk_z", "mk_p_value",
                                 "sen_slope_per_year")


@dataclass(frozen=True, repr=False)
class NotEstimable:
    """A result this snapshot cannot give (an empty or single-valued group), with the reason.

    Analyses return it instead of a frame, a dict or a number when there is nothing to estimate
    from, so the reader sees one sentence ("not estimable: one month only: no trend") instead of
    an error, an empty table or ``nan``.
    """

    reason: str

    def __str__(self) -> str:
        return f"{NOT_ESTIMABLE_TEXT}: {self.reason}"

    __repr__ = __str__  # inside a displayed table too, the reader sees the sentence

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how a notebook shows it
        printer.text(str(self))

    def as_json(self) -> dict[str, str]:
        """The stored form (:data:`NOT_ESTIMABLE_KEY` → reason)."""
        return {NOT_ESTIMABLE_KEY: self.reason}

    @staticmethod
    def from_json(value: Any) -> Any:
        """``value`` with every stored not-estimable result (:meth:`as_json`) restored, walking
        dicts and lists."""
        if isinstance(value, dict):
            if set(value) == {NOT_ESTIMABLE_KEY}:
                return NotEstimable(str(value[NOT_ESTIMABLE_KEY]))
            return {k: NotEstimable.from_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [NotEstimable.from_json(v) for v in value]
        return value


#: Significant digits kept in stored results: linear algebra libraries pick CPU-specific kernels
#: whose sums differ in the last bits, and committed outputs must not depend on the CPU.
STORED_DIGITS = 10


def stored_float(value: float, digits: int = STORED_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits for storage (NaN and infinities
    unchanged), so outputs computed on different CPUs are identical files; far below any
    reported precision."""
    v = float(value)
    if not math.isfinite(v):
        return v
    kept = float(f"{v:.{digits - 1}e}")
    return kept if math.isfinite(kept) else v  # rounding up the largest floats overflows


def stored_floats(values: pd.Series) -> pd.Series:
    """:func:`stored_float` of every value of a float column."""
    return pd.Series([stored_float(v) for v in values.to_numpy(float)], index=values.index,
                     name=values.name, dtype=float)


def estimable(value: Any) -> bool:
    """False for a :class:`NotEstimable` result, True for anything else."""
    return not isinstance(value, NotEstimable)


def wilson_interval(successes: Sequence[float] | np.ndarray | pd.Series,
                    totals: Sequence[float] | np.ndarray | pd.Series,
                    confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for proportions ``successes / totals``; NaN where total is 0.

    Wilson rather than the normal approximation because it stays inside [0, 1] and keeps its
    coverage for small groups and shares near 0 or 1.
    """
    k = np.atleast_1d(np.asarray(successes, dtype=float))
    n = np.atleast_1d(np.asarray(totals, dtype=float))
    low = np.full(k.shape, np.nan)
    high = np.full(k.shape, np.nan)
    ok = n > 0
    if ok.any():
        lo, hi = proportion_confint(k[ok], n[ok], alpha=1 - confidence, method="wilson")
        low[ok], high[ok] = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    return low, high


def wilson_bounds(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson interval of one proportion as two floats (NaN, NaN when ``n`` is 0)."""
    low, high = wilson_interval([successes], [n], confidence)
    return float(low[0]), float(high[0])


def with_share(frame: pd.DataFrame, k: str = "k", n: str = "n") -> pd.DataFrame:
    """Add ``share``, ``ci_low`` and ``ci_high`` (Wilson 95%) for counts ``k`` out of ``n``."""
    out = frame.copy()
    n_arr = out[n].to_numpy(dtype=float)
    out["share"] = np.where(n_arr > 0, out[k].to_numpy(dtype=float) / np.where(n_arr > 0, n_arr, 1),
                            np.nan)
    out["ci_low"], out["ci_high"] = wilson_interval(out[k], out[n])
    return out


def odds_ratio(k1: int, n1: int, k0: int, n0: int, confidence: float = CONFIDENCE) -> dict[str, float]:
    """Odds ratio of group 1 vs group 0 (``k`` events out of ``n``), Woolf CI, chi-square p.

    Zero cells get the usual 0.5 correction so the ratio stays finite; when a group is empty
    there is nothing to compare and every value is NaN.
    """
    if n1 <= 0 or n0 <= 0:
        return {"odds_ratio": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    table = Table2x2(np.array([[k1, n1 - k1], [k0, n0 - k0]], dtype=float), shift_zeros=True)
    low, high = table.oddsratio_confint(alpha=1 - confidence)
    return {"odds_ratio": float(table.oddsratio), "ci_low": float(low), "ci_high": float(high),
            "p_value": float(table.oddsratio_pvalue())}


def _years_since_start(months: pd.Series) -> np.ndarray:
    """Time of each ``YYYY-MM`` month in years since the first month of the series."""
    period = pd.PeriodIndex(months.astype(str), freq="M")
    ordinal = period.year * 12 + period.month
    return (np.asarray(ordinal, dtype=float) - float(np.min(ordinal))) / 12.0


def logistic_trend(frame: pd.DataFrame, k: str = "k", n: str = "n", month: str = "month",
                   confidence: float = CONFIDENCE) -> dict[str, float]:
    """Binomial GLM (logit link) of monthly counts ``k`` of ``n`` on time in years.

    Returns the odds ratio per year with its confidence interval and p-value. The scale is
    estimated from the Pearson chi-square (quasi-binomial, floored at 1) because months differ
    by more than binomial noise on real data; ``dispersion`` reports that factor (1 = pure
    binomial), which also says how far the monthly shares stray from a straight logit line.
    """
    import statsmodels.api as sm

    data = frame[frame[n] > 0]
    never_or_always = (data[k] == 0).all() or (data[k] == data[n]).all()
    if len(data) < 3 or never_or_always:  # no trend can be estimated from a constant 0% or 100%
        return {"odds_ratio_per_year": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "p_value": math.nan, "dispersion": math.nan, "n_months": float(len(data))}
    years = _years_since_start(data[month])
    endog = np.column_stack([data[k].to_numpy(float), (data[n] - data[k]).to_numpy(float)])
    exog = sm.add_constant(years)
    model = sm.GLM(endog, exog, family=sm.families.Binomial())
    with warnings.catch_warnings():
        # A perfectly flat share fits exactly, which statsmodels reports as "perfect
        # prediction"; the estimate (odds ratio 1) is still right. Separation is excluded above.
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        fitted = model.fit().predict(exog)
    # Pearson dispersion computed from counts (statsmodels' "X2" works on proportions when
    # endog is (successes, failures)); floored at 1 so CIs are never narrower than binomial.
    n_arr = data[n].to_numpy(float)
    pearson = np.sum((data[k].to_numpy(float) - n_arr * fitted) ** 2
                     / np.maximum(n_arr * fitted * (1 - fitted), 1e-300))
    dispersion = max(1.0, float(pearson / (len(data) - 2))) if len(data) > 2 else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        fit = model.fit(scale=dispersion)
    low, high = fit.conf_int(alpha=1 - confidence)[1]
    return {"odds_ratio_per_year": float(np.exp(fit.params[1])), "ci_low": float(np.exp(low)),
            "ci_high": float(np.exp(high)), "p_value": float(fit.pvalues[1]),
            "dispersion": float(fit.scale), "n_months": float(len(data))}


def mann_kendall(values: Sequence[float] | np.ndarray, per_step: float = 1.0) -> dict[str, float]:
    """Mann-Kendall monotonic trend test with tie correction, Kendall's tau and Sen's slope.

    Non-parametric: it asks only whether later values tend to be larger, so it does not depend
    on the logistic model being right. ``per_step`` converts Sen's slope (per observation)
    to another unit, e.g. ``12`` for per year on monthly data.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 3:
        return {"s": math.nan, "tau": math.nan, "z": math.nan, "p_value": math.nan,
                "sen_slope": math.nan, "n": float(n)}
    i, j = np.triu_indices(n, k=1)
    diffs = x[j] - x[i]
    s = float(np.sign(diffs).sum())
    _, tie_sizes = np.unique(x, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - np.sum(tie_sizes * (tie_sizes - 1) * (2 * tie_sizes + 5))) / 18.0
    z = 0.0 if s == 0 or var <= 0 else (s - np.sign(s)) / math.sqrt(var)  # continuity correction
    p = float(2 * norm.sf(abs(z)))
    sen = float(np.median(diffs / (j - i))) * per_step
    return {"s": s, "tau": s / (n * (n - 1) / 2), "z": float(z), "p_value": p, "sen_slope": sen,
            "n": float(n)}


def _count_words(n: int) -> str:
    return ("no", "one", "two")[n] if n < 3 else str(n)


def share_trend(frame: pd.DataFrame, k: str = "k", n: str = "n", month: str = "month",
                never: str = "the share is 0% in every month",
                always: str = "the share is 100% in every month") -> dict[str, float] | NotEstimable:
    """Trend of a monthly share: logistic odds ratio per year plus Mann-Kendall on the shares.

    The two tests answer the same question under different assumptions; reporting both shows
    whether the conclusion depends on the model. Both need at least three months with data and
    a share that is not 0% (``never``) or 100% (``always``) in every month; otherwise the trend
    is :class:`NotEstimable` with the reason.
    """
    data = frame.sort_values(month)
    data = data[data[n] > 0]
    if len(data) == 0:
        return NotEstimable("no month has data: no trend")
    if len(data) == 1:
        return NotEstimable("one month only: no trend")
    if len(data) < 3:
        return NotEstimable(f"{_count_words(len(data))} months with data: a trend needs at least three")
    if (data[k] == 0).all():
        return NotEstimable(f"{never}: no trend")
    if (data[k] == data[n]).all():
        return NotEstimable(f"{always}: no trend")
    logit = logistic_trend(data, k=k, n=n, month=month)
    mk = mann_kendall((data[k] / data[n]).to_numpy(float), per_step=12.0)
    return {**logit, "mk_tau": mk["tau"], "mk_z": mk["z"], "mk_p_value": mk["p_value"],
            "sen_slope_per_year": mk["sen_slope"]}


def mann_whitney_from_counts(counts: pd.DataFrame, value: str = "value", group: str = "group",
                             n: str = "n", a: object = True, b: object = False) -> dict[str, float]:
    """Mann-Whitney U test of group ``a`` vs ``b`` from a frequency table of values.

    ``counts`` has one row per (value, group) with the number of observations ``n``. U is
    computed exactly from the counts (mid-ranks for ties), so a 40-million-row comparison needs
    only its distinct values. Normal approximation with tie correction, no continuity
    correction (identical to ``scipy.stats.mannwhitneyu(method='asymptotic',
    use_continuity=False)``). Effect size: rank-biserial correlation ``2U/(n_a n_b) - 1``,
    positive when ``a`` tends to be larger; ``prob_superiority`` is ``U/(n_a n_b)``.
    """
    table = counts.pivot_table(index=value, columns=group, values=n, aggfunc="sum", fill_value=0)
    table = table.sort_index()
    na_v = table[a].to_numpy(float) if a in table.columns else np.zeros(len(table))
    nb_v = table[b].to_numpy(float) if b in table.columns else np.zeros(len(table))
    n_a, n_b = na_v.sum(), nb_v.sum()
    if n_a == 0 or n_b == 0:
        return {"n_a": n_a, "n_b": n_b, "u": math.nan, "z": math.nan, "p_value": math.nan,
                "rank_biserial": math.nan, "prob_superiority": math.nan}
    b_below = np.concatenate([[0.0], np.cumsum(nb_v)[:-1]])
    u = float(np.sum(na_v * (b_below + 0.5 * nb_v)))
    total = n_a + n_b
    ties = na_v + nb_v
    tie_term = float(np.sum(ties ** 3 - ties))
    var = n_a * n_b / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    mean = n_a * n_b / 2.0
    z = (u - mean) / math.sqrt(var) if var > 0 else 0.0
    return {"n_a": n_a, "n_b": n_b, "u": u, "z": float(z),
            "p_value": float(2 * norm.sf(abs(z))),
            "rank_biserial": 2 * u / (n_a * n_b) - 1, "prob_superiority": u / (n_a * n_b)}


def quantile_from_counts(values: Sequence[float] | np.ndarray, counts: Sequence[float] | np.ndarray,
                         q: float) -> float:
    """The ``q`` quantile of data given as distinct values and their counts.

    Inverted-CDF definition (the smallest value whose cumulative share reaches ``q``), as
    ``numpy.quantile(..., method='inverted_cdf')`` on the expanded data.
    """
    v = np.asarray(values, dtype=float)
    c = np.asarray(counts, dtype=float)
    order = np.argsort(v, kind="stable")
    v, c = v[order], c[order]
    total = c.sum()
    if total <= 0:
        return math.nan
    cum = np.cumsum(c)
    idx = int(np.searchsorted(cum, q * total, side="left"))
    return float(v[min(idx, len(v) - 1)])


def lorenz_curve(values: Sequence[float] | np.ndarray,
                 weights: Sequence[float] | np.ndarray | None = None) -> pd.DataFrame:
    """Lorenz curve of non-negative ``values`` (each with a frequency ``weights``).

    Returns ``population_share`` and ``value_share``, starting at (0, 0), one point per
    distinct value, poorest first.
    """
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    pop = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
    val = np.concatenate([[0.0], np.cumsum(v * w)]) / np.sum(v * w)
    return pd.DataFrame({"population_share": pop, "value_share": val})


def gini(values: Sequence[float] | np.ndarray,
         weights: Sequence[float] | np.ndarray | None = None) -> float:
    """Gini coefficient of non-negative ``values`` with frequencies ``weights``.

    Computed as one minus twice the area under the Lorenz curve (trapezoids), which is exact
    for individual data and for frequency tables alike: 0 when all are equal, ``(n-1)/n``
    when one of ``n`` holds everything.
    """
    curve = lorenz_curve(values, weights)
    p = curve["population_share"].to_numpy()
    s = curve["value_share"].to_numpy()
    return float(1.0 - np.sum(np.diff(p) * (s[1:] + s[:-1])))


def top_share(values: Sequence[float] | np.ndarray, weights: Sequence[float] | np.ndarray | None,
              fraction: float) -> float:
    """Share of the total held by the top ``fraction`` of units (e.g. 0.01 = top 1%).

    The top group is ``ceil(fraction * N)`` units; a tie group at the boundary contributes
    proportionally, so the result does not depend on how ties are ordered.
    """
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(-v, kind="stable")
    v, w = v[order], w[order]
    k = math.ceil(fraction * w.sum())
    before = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    taken = np.clip(k - before, 0, w)
    return float(np.sum(taken * v) / np.sum(v * w))


def weighted_log_odds(counts: pd.DataFrame, a: str = "n_a", b: str = "n_b",
                      prior_scale: float = 1.0) -> pd.DataFrame:
    """Weighted log-odds ratio of each term in corpus ``a`` vs ``b`` (Monroe et al. 2008).

    Informative Dirichlet prior: the prior count of a term is ``prior_scale`` times its count
    in the pooled corpus, so frequent terms need more evidence to stand out and rare terms are
    shrunk toward zero. Adds ``log_odds`` (a minus b) and ``z`` (log-odds over its approximate
    standard error); positive means typical of ``a``.
    """
    out = counts.copy()
    y_a = out[a].to_numpy(float)
    y_b = out[b].to_numpy(float)
    alpha = prior_scale * (y_a + y_b)
    alpha0 = alpha.sum()
    n_a, n_b = y_a.sum(), y_b.sum()
    delta = (np.log((y_a + alpha) / (n_a + alpha0 - y_a - alpha))
             - np.log((y_b + alpha) / (n_b + alpha0 - y_b - alpha)))
    var = 1.0 / (y_a + alpha) + 1.0 / (y_b + alpha)
    out["log_odds"] = delta
    out["z"] = delta / np.sqrt(var)
    return out
