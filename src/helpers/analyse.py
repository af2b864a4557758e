"""The study's analyses: one function per question, each returning a small tidy frame or dict.

Two kinds of input:

* **Images** (tens of millions of rows with prompt text) are never loaded into pandas. Every
  image-level function takes the processed images Parquet path and an optional DuckDB
  connection, aggregates in SQL, and returns only the aggregate (one row per month, level,
  term, ...). Statistics are then computed on those aggregates, exactly: the rank test works on
  value counts, the Gini coefficient on the frequency table of images per user.
* **Models** (hundreds of thousands of rows at most) arrive as a pandas frame of the processed
  models table.

Uncertainty: shares carry Wilson 95% intervals; trends are tested with a quasi-binomial
logistic regression of monthly counts on time (odds ratio per year) and a Mann-Kendall test;
distributions are compared with a Mann-Whitney U test and its rank-biserial effect size; prompt
vocabularies with weighted log-odds under an informative Dirichlet prior (Monroe et al. 2008).

Ethics: lists of tags or prompt terms pass through :class:`PersonalNameFilter`, so no published
list names a real person; per-user statistics are only reported over at least
:data:`MIN_USERS` users.
"""
from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Sequence

import duckdb
import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import Table2x2
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning
from statsmodels.stats.proportion import proportion_confint

from . import db, schema
from .db import sql_literal
from .paths import RunPaths
from .schema import (ADAPTER_CALL_PATTERN, GENDERS, MARKERS, NSFW_DEFINITION_LABELS,
                     NSFW_DEFINITIONS)
from .stats import CONFIDENCE, wilson_interval

# --------------------------------------------------------------------------- constants
#: Engagement columns of the images table compared between groups.
IMAGE_ENGAGEMENT: tuple[str, ...] = ("reaction_count", "like_count", "heart_count", "comment_count")
#: Engagement columns of the models table compared between groups.
MODEL_ENGAGEMENT: tuple[str, ...] = ("download_count", "favorite_count", "comment_count",
                                     "rating_count")
#: Smallest number of users a per-user statistic may aggregate over (privacy floor).
MIN_USERS = 10

#: Frequent English function words, excluded from prompt vocabularies because they carry no
#: content and would otherwise fill the top of both lists.
STOPWORDS: frozenset[str] = frozenset("""
a an and are as at be but by for from has have he her his in is it its of on or she that the
their them they this to was were with without very into over under up down out off you your
""".split())

#: Words that look like first names to ``gender_guesser`` or recur in real-person model names
#: but are common vocabulary on CivitAI (tags, styles, gender words, model boilerplate). They
#: are never treated as personal names. Curated by hand: a word is added only when it is a
#: common English word or platform term, never because a real person carries it.
COMMON_WORDS: frozenset[str] = frozenset("""
woman women man men girl girls boy boys female male lady ladies guy guys person people
human character characters celebrity celebrities real realistic photorealistic photo
photography portrait face body model models lora locon lycoris loha lokr dora lyco
hypernetwork embedding textual inversion checkpoint merge style styles concept concepts
clothing outfit pose poses anime cartoon art artist artwork illustration painting drawing
sd sdxl xl pony flux base version v beta alpha final trained training dataset
angel rose ruby jade amber summer may april june august autumn winter spring grace hope
faith joy dawn daisy poppy lily ivy iris violet holly pearl crystal candy cherry honey sky
star stars sunny storm rain snow river forest ocean sea sun moon light dark shadow night day
red blue green black white pink purple yellow orange brown grey gray gold silver
cute sexy beautiful pretty hot young old adult teen mature milf asian european american
african latina japanese korean chinese indian russian french german british
queen king princess prince goddess witch elf demon fairy nurse maid teacher doctor police
actress actor singer idol influencer streamer youtuber cosplay cosplayer instagram tiktok
onlyfans pornstar porn nsfw sfw nude naked sex sexual hentai explicit
""".split())



# --------------------------------------------------------------------------- plumbing
def connect(paths: RunPaths | None = None, memory_limit: str = "3GB",
            threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A bounded DuckDB connection for the analyses (UTC, spill space under the run)."""
    return db.connect(paths.tmp if paths is not None else None, memory_limit=memory_limit,
                      threads=threads)


_con = db.connection_or_default
_parquet = db.read_parquet_sql


def _flag(definition: str) -> str:
    """Label column of an NSFW definition; refuses unknown definitions with the valid ones."""
    try:
        return NSFW_DEFINITIONS[definition]
    except KeyError:
        raise ValueError(f"unknown NSFW definition {definition!r}; valid: "
                         f"{', '.join(NSFW_DEFINITIONS)}") from None


#: SQL for the UTC calendar month ``YYYY-MM`` of a timestamp with time zone.
def _month_sql(column: str = "created_at") -> str:
    return f"strftime(timezone('UTC', {column}), '%Y-%m')"


def _months(series: pd.Series) -> pd.Series:
    """UTC calendar month ``YYYY-MM`` of a pandas timestamp column."""
    ts = pd.to_datetime(series, utc=True)
    return ts.dt.strftime("%Y-%m")


def _bool(series: pd.Series) -> pd.Series:
    """A nullable boolean column as plain bool (null → False) for counting."""
    return series.fillna(False).astype(bool)


# --------------------------------------------------------------------------- statistics
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
    p = float(2 * stats.norm.sf(abs(z)))
    sen = float(np.median(diffs / (j - i))) * per_step
    return {"s": s, "tau": s / (n * (n - 1) / 2), "z": float(z), "p_value": p, "sen_slope": sen,
            "n": float(n)}


def share_trend(frame: pd.DataFrame, k: str = "k", n: str = "n", month: str = "month") -> dict[str, float]:
    """Trend of a monthly share: logistic odds ratio per year plus Mann-Kendall on the shares.

    The two tests answer the same question under different assumptions; reporting both shows
    whether the conclusion depends on the model.
    """
    data = frame.sort_values(month)
    data = data[data[n] > 0]
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
            "p_value": float(2 * stats.norm.sf(abs(z))),
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


# --------------------------------------------------------------------------- personal names
def _lexicon_terms() -> frozenset[str]:
    """Every word of the marker lexicon (these are vocabulary, never personal names)."""
    text = resources.files("helpers").joinpath("resources/lexicon_v1.json").read_text("utf-8")
    words: set[str] = set()
    for terms in json.loads(text)["categories"].values():
        for term in terms:
            words.update(_word_tokens(term))
    return frozenset(words)


#: Two or three capitalised words in a row: the shape of "Firstname Lastname" in a model name.
_CAPITALISED_NAME = re.compile(r"\b[A-Z][^\W\d_]+(?:[ ]+[A-Z][^\W\d_]+){1,2}\b")


def _as_list(value: object) -> list[str]:
    """A list cell (list, numpy array, None or NaN) as a Python list of strings."""
    if value is None or isinstance(value, float):
        return []
    return [str(v) for v in value if v is not None]


def _word_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters in a text (digits, underscores and punctuation separate)."""
    return re.findall(r"[^\W\d_]+", str(text).lower())


@lru_cache(maxsize=1)
def _gender_detector():
    import gender_guesser.detector as gg

    return gg.Detector(case_sensitive=False)


def is_first_name(token: str) -> bool:
    """Whether ``gender_guesser``'s offline dictionary knows ``token`` as a first name."""
    return _gender_detector().get_gender(token) != "unknown"


@dataclass(frozen=True)
class PersonalNameFilter:
    """Decides whether a tag or prompt term is (part of) a personal name.

    Built from the models table (:func:`personal_name_filter`). The name sets are kept out of
    ``repr`` so that showing the filter in a notebook never prints a name.
    """

    name_tokens: frozenset[str] = field(repr=False)
    name_phrases: frozenset[str] = field(repr=False)
    common_words: frozenset[str] = field(repr=False)

    def __call__(self, term: str) -> bool:
        return self.is_personal_name(term)

    def is_personal_name(self, term: str) -> bool:
        """True when ``term`` is a real-person model's name, contains one of its name tokens,
        or contains a first name that is not common vocabulary. Errs toward excluding."""
        text = " ".join(_word_tokens(term))
        if not text or text in self.common_words:
            return False
        if text in self.name_phrases:
            return True
        for token in text.split():
            if token in self.common_words:
                continue
            if token in self.name_tokens or is_first_name(token):
                return True
        return False

    def summary(self) -> dict[str, int]:
        """Sizes of the sets (safe to show)."""
        return {"name_tokens": len(self.name_tokens), "name_phrases": len(self.name_phrases),
                "common_words": len(self.common_words)}


def personal_name_filter(models: pd.DataFrame, min_models: int = 5,
                         max_real_person_share: float = 0.3) -> PersonalNameFilter:
    """A :class:`PersonalNameFilter` from the processed models table.

    * common vocabulary: :data:`COMMON_WORDS`, the marker lexicon, and words that occur in the
      tags or names of at least ``min_models`` models of which at most
      ``max_real_person_share`` depict a real person (so "fantasy" or "realistic" stays
      usable even when ``gender_guesser`` or a model name says otherwise);
    * name phrases: the full names and trigger words of real-person models, lower-cased,
      unless made of common words only;
    * name tokens: the words (3+ letters) of those names and trigger words that are not common
      vocabulary, and the words used mostly by real-person models (in tags or names); plus,
      in the names of *all* models, capitalised two/three-word sequences
      that start with a first name ("Firstname Lastname"), for people the labels missed.

    A first name known to ``gender_guesser`` that is not common vocabulary is always treated
    as a name, so the filter errs toward removing a harmless word rather than keeping a name.
    """
    curated = COMMON_WORDS | _lexicon_terms()
    is_rp = _bool(models["is_real_person"]).to_numpy()

    # Per word: in how many models (tags or name) it occurs, and how many of them depict people.
    word_models: dict[str, list[int]] = {}
    for rp, name, tags in zip(is_rp, models["name"], models["tags"]):
        words = set(_word_tokens(name or ""))
        for tag in _as_list(tags):
            words.update(_word_tokens(tag))
        for w in words:
            counts = word_models.setdefault(w, [0, 0])
            counts[0] += 1
            counts[1] += int(rp)
    data_common = {w for w, (n, n_rp) in word_models.items()
                   if n >= min_models and n_rp / n <= max_real_person_share}
    common = curated | data_common

    phrases: set[str] = set()
    tokens: set[str] = set()
    rp_models = models[is_rp]
    trigger = (rp_models["trigger_words"] if "trigger_words" in rp_models
               else pd.Series([None] * len(rp_models), index=rp_models.index, dtype=object))
    for name, words in zip(rp_models["name"], trigger):
        for text in [name or "", *_as_list(words)]:
            toks = _word_tokens(text)
            if toks and not set(toks) <= common:
                phrases.add(" ".join(toks))
            tokens.update(t for t in toks if len(t) >= 3 and t not in common)
    # Words mostly used by real-person models (in their tags, too) and not common vocabulary:
    # the names a model's title may not repeat (e.g. a checkpoint tagged with its subject).
    tokens.update(w for w, (n, n_rp) in word_models.items()
                  if n_rp / n >= 0.5 and len(w) >= 3 and w not in common)
    for name in models["name"].dropna():
        for match in _CAPITALISED_NAME.findall(str(name)):
            toks = _word_tokens(match)
            if toks and toks[0] not in common and is_first_name(toks[0]):
                phrases.add(" ".join(toks))
                tokens.update(t for t in toks if len(t) >= 3 and t not in common)
    return PersonalNameFilter(frozenset(tokens), frozenset(phrases), frozenset(common))


# --------------------------------------------------------------------------- images: overview
def image_overview(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, float | str]:
    """Headline counts of the images table: rows, users, months covered, NSFW and LoRA shares."""
    con = _con(con)
    flags = ", ".join(f"count({c}) AS n_{d}, sum(CAST({c} AS INTEGER)) AS k_{d}"
                      for d, c in NSFW_DEFINITIONS.items())
    row = con.execute(f"""
        SELECT count(*) AS n_images, count(DISTINCT user_hash) AS n_users,
               min({_month_sql()}) AS first_month, max({_month_sql()}) AS last_month,
               count(DISTINCT {_month_sql()}) AS n_months,
               sum(CAST(n_lora > 0 AS INTEGER)) AS k_lora, count(n_lora) AS n_lora, {flags}
        FROM {_parquet(images)}""").df().iloc[0]
    out: dict[str, float | str] = {
        "n_images": int(row["n_images"]), "n_users": int(row["n_users"]),
        "first_month": row["first_month"], "last_month": row["last_month"],
        "n_months": int(row["n_months"]),
    }
    for d in [*NSFW_DEFINITIONS, "lora"]:
        k, n = float(row[f"k_{d}"] or 0), float(row[f"n_{d}"] or 0)
        low, high = wilson_interval([k], [n])
        key = "lora_share" if d == "lora" else f"nsfw_share_{d}"
        out[key] = k / n if n else math.nan
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(low[0]), float(high[0])
    return out


def nsfw_share_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Monthly image volume and NSFW share under each definition, with Wilson 95% intervals.

    Long format: one row per (month, definition) with ``n_images`` (all images of the month),
    ``n`` (images where the definition is known), ``k`` (NSFW), ``share``, ``ci_low``,
    ``ci_high``. The platform flag is unknown (null) for sources without it.
    """
    con = _con(con)
    parts = ", ".join(f"count({c}) AS n_{d}, sum(CAST({c} AS INTEGER)) AS k_{d}"
                      for d, c in NSFW_DEFINITIONS.items())
    wide = con.execute(f"""
        SELECT {_month_sql()} AS month, count(*) AS n_images, {parts}
        FROM {_parquet(images)} GROUP BY 1 ORDER BY 1""").df()
    rows = []
    for d in NSFW_DEFINITIONS:
        part = wide[["month", "n_images", f"n_{d}", f"k_{d}"]].rename(
            columns={f"n_{d}": "n", f"k_{d}": "k"})
        part.insert(1, "definition", d)
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out[["n_images", "n", "k"]] = out[["n_images", "n", "k"]].fillna(0).astype("int64")
    out = with_share(out)
    return out.sort_values(["definition", "month"], ignore_index=True)


def nsfw_share_trend(monthly: pd.DataFrame) -> pd.DataFrame:
    """Trend test of the monthly NSFW share, one row per definition (from :func:`nsfw_share_by_month`)."""
    rows = []
    for d, part in monthly.groupby("definition", sort=True):
        if part["n"].sum() == 0:
            continue
        rows.append({"definition": d, **share_trend(part)})
    return pd.DataFrame(rows)


def level_composition_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Share of each browsing level (PG … Blocked) among the images of each month.

    One row per (month, level) for every level in :data:`schema.LEVEL_NAMES`, zero-filled, with
    ``n``, ``n_month`` and ``share``; levels in schema order (mildest first).
    """
    con = _con(con)
    counts = con.execute(f"""
        SELECT {_month_sql()} AS month, nsfw_level AS level, count(*) AS n
        FROM {_parquet(images)} GROUP BY 1, 2""").df()
    months = sorted(counts["month"].unique())
    grid = pd.MultiIndex.from_product([months, list(schema.LEVEL_NAMES)], names=["month", "level"])
    out = counts.set_index(["month", "level"])["n"].reindex(grid, fill_value=0).reset_index()
    out["n"] = out["n"].astype("int64")
    out["n_month"] = out.groupby("month")["n"].transform("sum")
    out["share"] = out["n"] / out["n_month"].where(out["n_month"] > 0)
    out["level"] = pd.Categorical(out["level"], categories=list(schema.LEVEL_NAMES), ordered=True)
    return out.sort_values(["month", "level"], ignore_index=True)


# --------------------------------------------------------------------------- images: adapters
def lora_use_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Share of images whose prompt calls at least one LoRA/LyCORIS (``n_lora > 0``), by month."""
    con = _con(con)
    out = con.execute(f"""
        SELECT {_month_sql()} AS month, count(n_lora) AS n,
               sum(CAST(n_lora > 0 AS INTEGER)) AS k, avg(n_lora) AS mean_lora_calls
        FROM {_parquet(images)} GROUP BY 1 ORDER BY 1""").df()
    out[["n", "k"]] = out[["n", "k"]].fillna(0).astype("int64")
    return with_share(out)


def nsfw_share_by_adapter_use(images: Path, definition: str = "r",
                              con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """NSFW share of images with and without adapter calls, with Wilson intervals.

    Two rows (``uses_adapter`` False, True); the odds ratio (with vs without) and its Woolf
    95% interval are repeated on both rows so the frame is self-contained.
    """
    con = _con(con)
    flag = _flag(definition)
    out = con.execute(f"""
        SELECT n_lora > 0 AS uses_adapter, count({flag}) AS n, sum(CAST({flag} AS INTEGER)) AS k
        FROM {_parquet(images)} WHERE n_lora IS NOT NULL GROUP BY 1 ORDER BY 1""").df()
    out = (out.set_index("uses_adapter").reindex([False, True], fill_value=0)
           .rename_axis("uses_adapter").reset_index())
    out[["n", "k"]] = out[["n", "k"]].fillna(0).astype("int64")
    out.insert(0, "definition", definition)
    out = with_share(out)
    with_, without = out.iloc[1], out.iloc[0]
    ratio = odds_ratio(int(with_.k), int(with_.n), int(without.k), int(without.n))
    out["odds_ratio"] = ratio["odds_ratio"]
    out["or_ci_low"] = ratio["ci_low"]
    out["or_ci_high"] = ratio["ci_high"]
    return out


def nsfw_share_by_adapter_use_by_month(images: Path, definition: str = "r",
                                       con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Monthly NSFW share of images with and without adapter calls (Wilson intervals)."""
    con = _con(con)
    flag = _flag(definition)
    out = con.execute(f"""
        SELECT {_month_sql()} AS month, n_lora > 0 AS uses_adapter,
               count({flag}) AS n, sum(CAST({flag} AS INTEGER)) AS k
        FROM {_parquet(images)} WHERE n_lora IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2""").df()
    out[["n", "k"]] = out[["n", "k"]].fillna(0).astype("int64")
    out.insert(1, "definition", definition)
    return with_share(out)


# --------------------------------------------------------------------------- images: engagement
def engagement_counts(images: Path, metric: str = "reaction_count", definition: str = "r",
                      con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Frequency table of an engagement metric for NSFW and SFW images: (value, nsfw, n)."""
    if metric not in {c.name for c in schema.IMAGES} or not metric.endswith("_count"):
        raise ValueError(f"unknown engagement metric {metric!r}; valid: {', '.join(IMAGE_ENGAGEMENT)}")
    con = _con(con)
    flag = _flag(definition)
    return con.execute(f"""
        SELECT {metric} AS value, {flag} AS nsfw, count(*) AS n
        FROM {_parquet(images)} WHERE {flag} IS NOT NULL AND {metric} IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2""").df()


def _compare_groups(counts: pd.DataFrame, metric: str, a: object, b: object,
                    a_name: str, b_name: str) -> dict[str, float | str]:
    """Medians, means and the Mann-Whitney test of one metric between two groups."""
    test = mann_whitney_from_counts(counts, value="value", group="group", n="n", a=a, b=b)
    row: dict[str, float | str] = {"metric": metric}
    for label, g in ((a_name, a), (b_name, b)):
        part = counts[counts["group"] == g]
        total = part["n"].sum()
        row[f"n_{label}"] = float(total)
        row[f"median_{label}"] = quantile_from_counts(part["value"], part["n"], 0.5)
        row[f"mean_{label}"] = float((part["value"] * part["n"]).sum() / total) if total else math.nan
    row.update({"u": test["u"], "z": test["z"], "p_value": test["p_value"],
                "rank_biserial": test["rank_biserial"],
                "prob_superiority": test["prob_superiority"]})
    return row


def engagement_nsfw_vs_sfw(images: Path, metrics: Iterable[str] = IMAGE_ENGAGEMENT,
                           definition: str = "r",
                           con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Engagement of NSFW vs SFW images: medians, means, Mann-Whitney U, rank-biserial r.

    A rank test because engagement is heavy-tailed (a few images collect most reactions), so
    means would be driven by outliers; the rank-biserial correlation says how much more likely
    an NSFW image is to out-score an SFW one (positive = NSFW higher).
    """
    con = _con(con)
    rows = []
    for metric in metrics:
        counts = engagement_counts(images, metric, definition, con).rename(columns={"nsfw": "group"})
        rows.append(_compare_groups(counts, metric, True, False, "nsfw", "sfw"))
    out = pd.DataFrame(rows)
    out.insert(1, "definition", definition)
    return out


# --------------------------------------------------------------------------- images: vocabulary
def _sample_sql(sample_percent: float | None) -> str:
    """``AND`` clause of a deterministic hash sample of images (empty for all images)."""
    if sample_percent is None:
        return ""
    if not 0 < sample_percent <= 100:
        raise ValueError(f"sample_percent must be in (0, 100], got {sample_percent}")
    return f"AND hash(image_id) % 10000 < {int(round(sample_percent * 100))}"


#: SQL regular expressions of prompt tokenising (letters, digits and underscores make a token),
#: of a capitalised word (a capital then a lower-case letter: "Name", not "HDR"), and of a
#: credit ("by …", "artist: …", "style of …" up to the end of the phrase).
_TOKEN_SPLIT_SQL = r"[^\pL\pN_]+"
_TITLECASE_SQL = r"^\p{Lu}\p{Ll}"
_CREDIT_SQL = r"(?:\bby|\bartist:|\bstyle of)\s*([^,.;:()\[\]]+)"


def prompt_term_counts(images: Path, definition: str = "r", sample_percent: float | None = None,
                       min_count: int = 5, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Number of NSFW and SFW prompts that contain each term, counted in one DuckDB pass.

    Tokenising: adapter calls removed (their names are model slugs), split on anything that is
    not a letter, digit or underscore (so ``score_9`` and ``1girl`` stay whole), lower-cased;
    tokens of one character, pure numbers and :data:`STOPWORDS` are dropped. Each term counts
    once per prompt (weights such as ``(nude:1.3)`` and repetition do not inflate it).

    The same pass records how prompts write each term, the evidence :func:`names_in_prompts`
    uses to keep personal names out of published lists: ``n_titlecase`` (prompts writing it
    capitalised, e.g. "Name"; acronyms such as "HDR" do not count) and ``n_attributed``
    (prompts crediting it after "by", "artist:" or "style of").
    ``sample_percent`` takes a deterministic hash sample of images for very large tables.
    Returns ``term``, ``n_nsfw``, ``n_sfw``, ``n_titlecase``, ``n_attributed`` for terms in at
    least ``min_count`` prompts.
    """
    con = _con(con)
    flag = _flag(definition)
    stop = ", ".join("'" + w + "'" for w in sorted(STOPWORDS))
    split, title, credit = (_TOKEN_SPLIT_SQL, _TITLECASE_SQL, _CREDIT_SQL)
    counts = con.execute(f"""
        WITH prompts AS (
            SELECT {flag} AS nsfw, regexp_replace(prompt, {sql_literal(ADAPTER_CALL_PATTERN)}, ' ', 'g') AS text
            FROM {_parquet(images)}
            WHERE prompt IS NOT NULL AND {flag} IS NOT NULL {_sample_sql(sample_percent)}
        ), tokens AS (
            SELECT nsfw, regexp_split_to_array(text, '{split}') AS words,
                   regexp_extract_all(lower(text), '{credit}', 1) AS credits
            FROM prompts
        ), marks AS (
            -- One list per prompt of (term, kind): kind 0 = the term occurs, 1 = it is written
            -- capitalised, 2 = it is credited. Each list is de-duplicated, so every kind counts
            -- once per prompt, and a single unnest keeps it to one pass.
            SELECT nsfw, list_concat(
                list_transform(list_distinct(list_transform(words, lambda w: lower(w))),
                               lambda t: {{'term': t, 'kind': 0}}),
                list_transform(list_distinct(list_transform(
                                   list_filter(words, lambda w: regexp_matches(w, '{title}')),
                                   lambda w: lower(w))),
                               lambda t: {{'term': t, 'kind': 1}}),
                list_transform(list_distinct(flatten(list_transform(
                                   credits, lambda c: regexp_split_to_array(c, '{split}')))),
                               lambda t: {{'term': t, 'kind': 2}})) AS marks
            FROM tokens
        ), flat AS (
            SELECT nsfw, unnest(marks, recursive := true) FROM marks
        )
        SELECT term,
               count(*) FILTER (WHERE kind = 0 AND nsfw) AS n_nsfw,
               count(*) FILTER (WHERE kind = 0 AND NOT nsfw) AS n_sfw,
               count(*) FILTER (WHERE kind = 1) AS n_titlecase,
               count(*) FILTER (WHERE kind = 2) AS n_attributed
        FROM flat
        WHERE length(term) > 1 AND NOT regexp_full_match(term, '[0-9_]+') AND term NOT IN ({stop})
        GROUP BY term HAVING count(*) FILTER (WHERE kind = 0) >= {int(min_count)}
        ORDER BY term""").df()
    return counts.astype({c: "int64" for c in ("n_nsfw", "n_sfw", "n_titlecase", "n_attributed")})


def names_in_prompts(counts: pd.DataFrame, titlecase_share: float = 0.5,
                     attributed_share: float = 0.4, min_attributed: int = 3) -> set[str]:
    """Terms of :func:`prompt_term_counts` that prompts write like personal names.

    Prompts name artists and people in two recognisable ways: as capitalised words
    ("Firstname Lastname") in otherwise lower-case text, and after "by", "artist:" or
    "style of". A term is a name when at least ``titlecase_share`` of the prompts using it write
    it capitalised, or when at least ``attributed_share`` of them (and ``min_attributed``
    prompts) credit it. Brand names (cameras, sites) are caught too; dropping them from a list
    costs little.
    """
    written = (counts["n_nsfw"] + counts["n_sfw"]).clip(lower=1)
    proper = counts["n_titlecase"] / written >= titlecase_share
    credited = (counts["n_attributed"] / written >= attributed_share) & \
        (counts["n_attributed"] >= min_attributed)
    return set(counts.loc[proper | credited, "term"])


def distinctive_terms(images: Path, definition: str = "r", top_n: int = 25,
                      exclude: Callable[[str], bool] | None = None, prior_scale: float = 1.0,
                      sample_percent: float | None = None, min_count: int = 5,
                      con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Prompt terms that most distinguish NSFW from SFW images (weighted log-odds, z-scores).

    Returns the ``top_n`` terms on each side: ``side`` 'nsfw' (z > 0) and 'sfw' (z < 0), with
    their prompt counts, log-odds and z. Personal names never reach the list: ``exclude``
    (normally a :class:`PersonalNameFilter`) removes names known from the models, and
    :func:`names_in_prompts` removes terms that prompts write like names (capitalised, or
    credited with "by"). ``n_name_terms_removed`` counts the terms dropped as names (the same
    on every row).
    """
    columns = ["side", "rank", "term", "n_nsfw", "n_sfw", "log_odds", "z", "n_name_terms_removed"]
    con = _con(con)
    counts = prompt_term_counts(images, definition, sample_percent, min_count, con)
    if counts.empty:
        return pd.DataFrame(columns=columns)
    scored = weighted_log_odds(counts, a="n_nsfw", b="n_sfw", prior_scale=prior_scale)
    removed = 0
    if exclude is not None:
        is_name = scored["term"].map(exclude).astype(bool)
        removed += int(is_name.sum())
        scored = scored[~is_name]
    written_as_names = scored["term"].isin(names_in_prompts(scored))
    removed += int(written_as_names.sum())
    scored = scored[~written_as_names]
    sides = {"nsfw": scored[scored["z"] > 0].sort_values(["z", "term"], ascending=[False, True]),
             "sfw": scored[scored["z"] < 0].sort_values(["z", "term"], ascending=[True, True])}
    parts = []
    for side, ranked in sides.items():
        part = ranked.head(top_n).copy()
        part.insert(0, "side", side)
        part.insert(1, "rank", np.arange(1, len(part) + 1))
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["n_name_terms_removed"] = removed
    return out[columns]


def markers_by_month(images: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Share of prompts with each marker category (booru, pony, sexual, minor, real person), by month.

    Among images with a prompt; Wilson intervals. Minor-coded markers are reported as counts
    and shares only.
    """
    con = _con(con)
    parts = ", ".join(f"sum(CAST({c} AS INTEGER)) AS k_{m}" for m, c in MARKERS.items())
    wide = con.execute(f"""
        SELECT {_month_sql()} AS month, count(*) AS n, {parts}
        FROM {_parquet(images)} WHERE prompt IS NOT NULL GROUP BY 1 ORDER BY 1""").df()
    rows = []
    for m in MARKERS:
        part = wide[["month", "n", f"k_{m}"]].rename(columns={f"k_{m}": "k"})
        part.insert(1, "marker", m)
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out[["n", "k"]] = out[["n", "k"]].fillna(0).astype("int64")
    return with_share(out).sort_values(["marker", "month"], ignore_index=True)


def nsfw_share_by_marker(images: Path, definition: str = "r",
                         con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """NSFW share of prompts with vs without each marker category (Wilson intervals, odds ratio)."""
    con = _con(con)
    flag = _flag(definition)
    rows = []
    for m, col in MARKERS.items():
        part = con.execute(f"""
            SELECT {col} AS has_marker, count({flag}) AS n, sum(CAST({flag} AS INTEGER)) AS k
            FROM {_parquet(images)} WHERE prompt IS NOT NULL AND {col} IS NOT NULL
            GROUP BY 1""").df().set_index("has_marker").reindex([False, True], fill_value=0)
        k = part["k"].fillna(0).astype(int)
        n = part["n"].fillna(0).astype(int)
        ratio = odds_ratio(int(k[True]), int(n[True]), int(k[False]), int(n[False]))
        for has in (False, True):
            rows.append({"marker": m, "has_marker": has, "n": int(n[has]), "k": int(k[has]),
                         "odds_ratio": ratio["odds_ratio"], "or_ci_low": ratio["ci_low"],
                         "or_ci_high": ratio["ci_high"]})
    out = with_share(pd.DataFrame(rows))
    out.insert(1, "definition", definition)
    return out


# --------------------------------------------------------------------------- images: creators
def images_per_user_distribution(images: Path,
                                 con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """How many users posted exactly ``images`` images: (images, users), from SQL.

    A frequency table rather than one row per user, so it stays small at any scale and holds
    no user identifiers.
    """
    con = _con(con)
    return con.execute(f"""
        WITH per_user AS (
            SELECT user_hash, count(*) AS images FROM {_parquet(images)}
            WHERE user_hash IS NOT NULL GROUP BY 1)
        SELECT images, count(*) AS users FROM per_user GROUP BY 1 ORDER BY 1""").df()


def creator_concentration(images: Path, min_users: int = MIN_USERS, lorenz_points: int = 101,
                          con: duckdb.DuckDBPyConnection | None = None
                          ) -> tuple[dict[str, float], pd.DataFrame]:
    """Concentration of posting among hashed users: Gini, top-1% and top-10% shares, Lorenz curve.

    Returns ``(summary, lorenz)``. ``lorenz`` is the curve sampled at ``lorenz_points``
    population shares; points whose bottom or top group would hold fewer than ``min_users``
    users are left out (only the trivial ends remain), and a top-share is NaN when its top
    group is smaller than ``min_users``: no statistic describes fewer than ``min_users`` people.
    """
    dist = images_per_user_distribution(images, con)
    n_users = float(dist["users"].sum())
    n_images = float((dist["images"] * dist["users"]).sum())
    summary: dict[str, float] = {"n_users": n_users, "n_images_with_user": n_images}
    if n_users < min_users:
        summary.update({"gini": math.nan, "top1_share": math.nan, "top10_share": math.nan,
                        "median_images_per_user": math.nan})
        return summary, pd.DataFrame({"population_share": [0.0, 1.0], "image_share": [0.0, 1.0]})
    values, weights = dist["images"].to_numpy(float), dist["users"].to_numpy(float)
    summary["gini"] = gini(values, weights)
    for label, frac in (("top1_share", 0.01), ("top10_share", 0.10)):
        summary[label] = (top_share(values, weights, frac)
                          if math.ceil(frac * n_users) >= min_users else math.nan)
    summary["median_images_per_user"] = quantile_from_counts(values, weights, 0.5)
    summary["mean_images_per_user"] = n_images / n_users
    curve = lorenz_curve(values, weights)
    grid = np.linspace(0.0, 1.0, lorenz_points)
    share = np.interp(grid, curve["population_share"], curve["value_share"])
    keep = ((grid * n_users >= min_users) & ((1 - grid) * n_users >= min_users)) | \
        (grid == 0.0) | (grid == 1.0)
    lorenz = pd.DataFrame({"population_share": grid[keep], "image_share": share[keep]})
    return summary, lorenz


# --------------------------------------------------------------------------- models
def _models_with_month(models: pd.DataFrame) -> pd.DataFrame:
    out = models.copy()
    out["month"] = _months(out["created_at"])
    return out


def model_nsfw_definition(models: pd.DataFrame, preferred: str = "r") -> str:
    """The NSFW definition to compare models by: ``preferred`` if any model has it, else the
    first definition some model has (e.g. the 2023 API gives models a flag but no level)."""
    _flag(preferred)
    for d in [preferred, *(d for d in NSFW_DEFINITIONS if d != preferred)]:
        if models[NSFW_DEFINITIONS[d]].notna().any():
            return d
    return preferred


def model_overview(models: pd.DataFrame) -> dict[str, float | str]:
    """Headline counts of the models table: totals, adapters, NSFW and real-person shares."""
    n = len(models)
    out: dict[str, float | str] = {"n_models": n}
    months = _months(models["created_at"])
    out["first_month"], out["last_month"] = (months.min(), months.max()) if n else ("", "")
    pairs = {"adapter_share": models["is_adapter"],
             "real_person_share": models["is_real_person"],
             **{f"nsfw_share_{d}": models[c] for d, c in NSFW_DEFINITIONS.items()}}
    for key, col in pairs.items():
        known = col.notna()
        k, total = float(_bool(col[known]).sum()), float(known.sum())
        low, high = wilson_interval([k], [total])
        out[key] = k / total if total else math.nan
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(low[0]), float(high[0])
    out["n_adapters"] = int(_bool(models["is_adapter"]).sum())
    out["n_real_person"] = int(_bool(models["is_real_person"]).sum())
    return out


def model_types_by_month(models: pd.DataFrame, top_k: int = 6) -> pd.DataFrame:
    """Number and share of new models of each type per month (rarer types pooled as 'Other').

    The ``top_k`` most frequent types keep their name; the monthly adapter share itself is
    :func:`adapter_share_by_month`.
    """
    data = _models_with_month(models)
    keep = data["type"].value_counts().sort_index().sort_values(ascending=False, kind="stable")
    keep = set(keep.index[:top_k])
    data["type_group"] = data["type"].where(data["type"].isin(keep), "Other")
    return _category_by_month(data, "type_group", "type")


def adapter_share_by_month(models: pd.DataFrame) -> pd.DataFrame:
    """Share of new models per month that are adapters (LoRA & co., not checkpoints), Wilson CI."""
    data = _models_with_month(models)
    out = (data.assign(k=_bool(data["is_adapter"]).astype(int))
           .groupby("month", sort=True).agg(n=("k", "size"), k=("k", "sum")).reset_index())
    return with_share(out)


def _category_by_month(data: pd.DataFrame, column: str, name: str) -> pd.DataFrame:
    """Counts and within-month shares of a categorical column, zero-filled, sorted."""
    counts = data.groupby(["month", column], sort=True).size()
    months = sorted(data["month"].unique())
    cats = sorted(data[column].unique(), key=lambda c: (c == "Other", str(c)))
    grid = pd.MultiIndex.from_product([months, cats], names=["month", name])
    counts.index = counts.index.set_names(["month", name])
    out = counts.reindex(grid, fill_value=0).rename("n").reset_index()
    out["n_month"] = out.groupby("month")["n"].transform("sum")
    out["share"] = out["n"] / out["n_month"]
    return out


def base_models_by_month(models: pd.DataFrame, top_k: int = 6) -> pd.DataFrame:
    """Number and share of new models per base model family per month (rarer pooled as 'Other')."""
    data = _models_with_month(models)
    base = data["base_model"].fillna("unknown")
    order = base.value_counts().sort_index().sort_values(ascending=False, kind="stable")
    keep = set(order.index[:top_k])
    data["base_group"] = base.where(base.isin(keep), "Other")
    return _category_by_month(data, "base_group", "base_model")


def real_person_share_by_month(models: pd.DataFrame) -> pd.DataFrame:
    """Share of new models per month that depict a real person, with Wilson intervals."""
    data = _models_with_month(models)
    out = (data.assign(k=_bool(data["is_real_person"]).astype(int))
           .groupby("month", sort=True).agg(n=("k", "size"), k=("k", "sum")).reset_index())
    return with_share(out)


def real_person_share_by_type(models: pd.DataFrame) -> pd.DataFrame:
    """Share of real-person models within each model type, with Wilson intervals."""
    out = (models.assign(k=_bool(models["is_real_person"]).astype(int))
           .groupby("type", sort=True).agg(n=("k", "size"), k=("k", "sum")).reset_index())
    return with_share(out).sort_values(["n", "type"], ascending=[False, True], ignore_index=True)


def depicted_gender_split(models: pd.DataFrame) -> pd.DataFrame:
    """Depicted gender of real-person models: count, share of all and of known, Wilson CI.

    ``share`` is out of all real-person models (including 'unknown'); ``share_of_known`` out
    of those whose gender could be determined, which is what "targets women" means.
    """
    rp = models[_bool(models["is_real_person"])]
    counts = rp["depicted_gender"].fillna("unknown").value_counts().reindex(list(GENDERS), fill_value=0)
    out = pd.DataFrame({"depicted_gender": list(GENDERS), "k": counts.to_numpy(dtype="int64")})
    out["n"] = int(len(rp))
    out = with_share(out)
    known = int(out.loc[out["depicted_gender"] != "unknown", "k"].sum())
    out["n_known"] = known
    out["share_of_known"] = np.where(out["depicted_gender"] != "unknown",
                                     out["k"] / known if known else np.nan, np.nan)
    lo, hi = wilson_interval(out["k"].where(out["depicted_gender"] != "unknown", 0),
                             np.where(out["depicted_gender"] != "unknown", known, 0))
    out["known_ci_low"], out["known_ci_high"] = lo, hi
    return out


def nsfw_share_by_depicted_gender(models: pd.DataFrame, definition: str = "r") -> pd.DataFrame:
    """NSFW share of real-person models by depicted gender, and of all other models, Wilson CI."""
    flag = _flag(definition)
    data = models[models[flag].notna()].copy()
    group = np.where(_bool(data["is_real_person"]),
                     "real person: " + data["depicted_gender"].fillna("unknown"), "not a real person")
    data["group"] = group
    order = [f"real person: {g}" for g in GENDERS] + ["not a real person"]
    out = (data.assign(k=_bool(data[flag]).astype(int)).groupby("group")
           .agg(n=("k", "size"), k=("k", "sum")).reindex(order, fill_value=0).reset_index())
    out.insert(1, "definition", definition)
    return with_share(out)


def nsfw_share_by_real_person(models: pd.DataFrame, definition: str = "r") -> pd.DataFrame:
    """NSFW share of real-person vs other models, Wilson intervals and odds ratio."""
    flag = _flag(definition)
    data = models[models[flag].notna()]
    rp = _bool(data["is_real_person"])
    nsfw = _bool(data[flag])
    rows = [{"is_real_person": v, "n": int((rp == v).sum()), "k": int((nsfw & (rp == v)).sum())}
            for v in (False, True)]
    out = with_share(pd.DataFrame(rows))
    ratio = odds_ratio(rows[1]["k"], rows[1]["n"], rows[0]["k"], rows[0]["n"])
    out["odds_ratio"], out["or_ci_low"], out["or_ci_high"] = (ratio["odds_ratio"], ratio["ci_low"],
                                                              ratio["ci_high"])
    out.insert(0, "definition", definition)
    return out


def _model_engagement(models: pd.DataFrame, group: pd.Series, metrics: Iterable[str],
                      a_name: str, b_name: str) -> pd.DataFrame:
    rows = []
    for metric in metrics:
        data = pd.DataFrame({"value": models[metric], "group": group}).dropna()
        counts = data.groupby(["value", "group"]).size().rename("n").reset_index()
        rows.append(_compare_groups(counts, metric, True, False, a_name, b_name))
    return pd.DataFrame(rows)


def engagement_real_person_vs_other(models: pd.DataFrame,
                                    metrics: Iterable[str] = MODEL_ENGAGEMENT) -> pd.DataFrame:
    """Downloads and engagement of real-person vs other models: medians, Mann-Whitney, rank-biserial.

    Positive ``rank_biserial`` means real-person models tend to be downloaded/engaged more.
    """
    group = _bool(models["is_real_person"])
    return _model_engagement(models, group, metrics, "real_person", "other")


def engagement_nsfw_vs_sfw_models(models: pd.DataFrame, metrics: Iterable[str] = MODEL_ENGAGEMENT,
                                  definition: str = "r") -> pd.DataFrame:
    """Downloads and engagement of NSFW vs SFW models (Mann-Whitney U, rank-biserial)."""
    flag = _flag(definition)
    data = models[models[flag].notna()]
    out = _model_engagement(data, _bool(data[flag]), metrics, "nsfw", "sfw")
    out.insert(1, "definition", definition)
    return out


def real_person_downloads(models: pd.DataFrame) -> dict[str, float]:
    """Total and median downloads of real-person models and their share of all downloads."""
    rp = _bool(models["is_real_person"])
    downloads = models["download_count"].fillna(0).astype(float)
    total = float(downloads.sum())
    return {"real_person_downloads": float(downloads[rp].sum()),
            "real_person_download_share": float(downloads[rp].sum() / total) if total else math.nan,
            "real_person_median_downloads": float(downloads[rp].median()) if rp.any() else math.nan,
            "other_median_downloads": float(downloads[~rp].median()) if (~rp).any() else math.nan}


def top_tags(models: pd.DataFrame, subset: str = "all", top_n: int = 20,
             name_filter: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """Most frequent tags among ``subset`` ('all', 'real_person', 'other') models; no personal names.

    Every tag that ``name_filter`` (default: :func:`personal_name_filter` built from the whole
    models table) flags as a personal name is dropped before ranking. Returns ``rank``,
    ``tag``, ``n_models``, ``share`` (of the subset's models) and the number of distinct tags
    removed as names, ``n_name_tags_removed`` (the same on every row).
    """
    if subset not in ("all", "real_person", "other"):
        raise ValueError(f"unknown subset {subset!r}; valid: all, real_person, other")
    rp = _bool(models["is_real_person"])
    data = models if subset == "all" else models[rp if subset == "real_person" else ~rp]
    name_filter = name_filter if name_filter is not None else personal_name_filter(models)
    tags = data["tags"].map(lambda t: sorted(set(_as_list(t))))
    exploded = tags.explode().dropna()
    counts = exploded.value_counts()
    counts = counts.rename_axis("tag").reset_index(name="n_models")
    is_name = counts["tag"].map(name_filter).astype(bool)
    kept = counts[~is_name].sort_values(["n_models", "tag"], ascending=[False, True]).head(top_n)
    out = kept.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["share"] = out["n_models"] / max(len(data), 1)
    out["n_name_tags_removed"] = int(is_name.sum())
    return out
