"""Inference that respects users: a few users post most images, so images are not independent.

Intervals here resample *users* (the clusters), never image rows: each replicate gives every user
a Poisson(1) weight (the Poisson bootstrap, which for many clusters behaves like drawing users
with replacement) and recomputes the statistic from per-user counts. The cost is that of the
small per-user aggregate (users × groups), whatever the number of images.

The association of adapter use with NSFW is also adjusted for who posts and when: a
Mantel–Haenszel odds ratio over user × month strata compares images of the same user in the same
month, so neither a user's taste nor the month's trend can produce it.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse
from statsmodels.stats.contingency_tables import StratifiedTable

from .. import db
from ..schema import NSFW_DEFINITIONS
from ..stats import CONFIDENCE, NotEstimable, odds_ratio, wilson_interval
from .common import (MIN_USERS, definition_counts_sql, flag_column, month_sql, rank_sql,
                     shared_text, split_definitions)

#: Bootstrap replicates of every cluster interval unless a caller says otherwise.
N_BOOT = 1000
#: Fewest images (with a known NSFW label) a user needs to enter the per-user distribution.
PER_USER_MIN_IMAGES = 5
#: Replicates computed at once (bounds the weight matrix to users × this many floats).
BOOT_CHUNK = 50


# --------------------------------------------------------------------------- per-user counts
def user_counts_by_definition(images: Path, by_month: bool = True,
                              con: duckdb.DuckDBPyConnection | None = None) -> dict[str, pd.DataFrame]:
    """:func:`user_counts` under every NSFW definition, from one pass over the images:
    definition → its per-user (and month) frame."""
    con = db.connection_or_default(con)
    month = f", {month_sql()} AS month" if by_month else ""
    group = "user, month" if by_month else "user"
    adapter = "coalesce(n_lora, 0) > 0"
    parts = ", ".join(f"count({c}) FILTER (WHERE {adapter}) AS n_adapter_{d}, "
                      f"count(*) FILTER (WHERE {c} AND {adapter}) AS k_adapter_{d}"
                      for d, c in NSFW_DEFINITIONS.items())
    wide = con.execute(f"""
        WITH grouped AS (
            SELECT coalesce(user_hash, 'image:' || CAST(image_id AS VARCHAR)) AS user{month},
                   {definition_counts_sql()}, {parts}
            FROM {db.table_sql(images)} GROUP BY {group}),
        {rank_sql("user", "grouped")}
        SELECT user_rank.rank AS user, grouped.* EXCLUDE (user)
        FROM grouped JOIN user_rank USING (user)
        ORDER BY user_rank.rank{", grouped.month" if by_month else ""}""").df()
    keys = ["user", "month"] if by_month else ["user"]
    wide["user"] = wide["user"].astype(np.int64)
    return split_definitions(shared_text(wide, keys[1:]), keys, extra=("n_adapter", "k_adapter"))


def user_counts(images: Path, definition: str = "r", by_month: bool = True,
                con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Per user (and month): images with the definition's flag known (``n``), NSFW (``k``),
    and the same split by adapter use (``n_adapter``, ``k_adapter``). ``user`` is the user's
    rank from 0 among the sorted user keys (the user hash; images without one are one cluster
    each, keyed by image, as they cannot be attributed), so the frame holds no text per user."""
    flag_column(definition)  # refuses an unknown definition before reading anything
    return user_counts_by_definition(images, by_month, con)[definition]


def _codes(values: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), len(uniques)


def width_ratio(shares: pd.DataFrame) -> float:
    """Median over rows of how many times wider the cluster-bootstrap interval is than the naive
    one (from :func:`cluster_bootstrap_shares`): above 1, the naive interval overstates precision."""
    naive = shares["ci_high"] - shares["ci_low"]
    return float(((shares["boot_high"] - shares["boot_low"]) / naive.where(naive > 0)).median())


#: The draws kept by :func:`shared_weights` while it is active: (key, chunks as bytes), or None.
_SHARED: dict[str, object] | None = None


@contextmanager
def shared_weights() -> Iterator[None]:
    """Within this block, :func:`poisson_weights` keeps the last set of draws it made and replays
    it to the next call with the same users, replicates, seed and chunk instead of drawing again.

    The draws depend on nothing else, so every bootstrap gets exactly the weights it would have
    drawn itself; only the drawing (the bulk of a bootstrap's time) is saved. One set is kept, as
    one byte per weight (Poisson(1) draws are small integers), and dropped when the block ends.
    """
    global _SHARED
    outer, _SHARED = _SHARED, {"key": None, "chunks": []}
    try:
        yield
    finally:
        _SHARED = outer


#: Users whose weights are drawn at once (bounds the draw's int64 buffer to this × the chunk).
DRAW_ROWS = 16_384


def poisson_thresholds() -> np.ndarray:
    """The 32-bit thresholds of the Poisson(1) inverse CDF: a uniform 32-bit integer ``u`` gives
    the weight ``#{k : u ≥ t_k}``, so ``P(weight ≥ k) = P(X ≥ k)`` rounded to 2⁻³² (weights above
    the last threshold, rarer than that, are not drawn). The tail comes from the survival
    function, not ``1 - cdf``, so it keeps its precision."""
    from scipy import stats

    scale = 2.0 ** 32
    k = np.arange(1, 64)
    t = scale - np.rint(stats.poisson.sf(k - 1, 1.0) * scale)
    return t[t < scale].astype(np.uint32)


def _drawn_weights(n_users: int, n_boot: int, seed: int, chunk: int) -> Iterator[np.ndarray]:
    """Poisson(1) draws as bytes (users × replicates), ``chunk`` replicates at a time, by the
    inverse CDF of uniform 32-bit integers (:func:`poisson_thresholds`): several times faster
    than the generator's Poisson sampler, which is most of a bootstrap's time with many users.

    The generator fills a matrix row by row, so drawing it in blocks of rows gives the same
    numbers as drawing it whole, without the whole matrix's buffer."""
    rng = np.random.default_rng(seed)
    thresholds = poisson_thresholds()
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        out = np.empty((n_users, size), dtype=np.uint8)
        for start in range(0, n_users, DRAW_ROWS):
            uniform = rng.integers(0, 2 ** 32, size=(min(DRAW_ROWS, n_users - start), size),
                                   dtype=np.uint32)
            block = out[start:start + len(uniform)]
            np.greater_equal(uniform, thresholds[0], out=block, casting="unsafe")
            for t in thresholds[1:]:
                block += uniform >= t
        yield out
        done += size


def poisson_weights(n_users: int, n_boot: int, seed: int, chunk: int = BOOT_CHUNK) -> Iterator[np.ndarray]:
    """Yield Poisson(1) weight matrices (users × replicates, float64 like the count matrices they
    multiply, so no product converts them), ``chunk`` replicates at a time (replayed from
    :func:`shared_weights` when it holds these draws)."""
    shared, key = _SHARED, (n_users, n_boot, seed, chunk)
    if shared is None:
        for draws in _drawn_weights(n_users, n_boot, seed, chunk):
            yield draws.astype(np.float64)
        return
    if shared["key"] == key:
        for packed in shared["chunks"]:  # type: ignore[union-attr]
            yield packed.astype(np.float64)
        return
    shared["key"], shared["chunks"] = None, []
    kept = []
    for draws in _drawn_weights(n_users, n_boot, seed, chunk):
        kept.append(draws)
        yield draws.astype(np.float64)
    shared["key"], shared["chunks"] = key, kept


def count_matrix(values: pd.Series | np.ndarray, rows: np.ndarray, users: np.ndarray,
                 shape: tuple[int, int]) -> sparse.csc_matrix:
    """Counts as a sparse rows × users matrix for bootstrap products with :func:`poisson_weights`.

    Stored by user (column-major), so a product reads each user's row of weights once, in
    order, instead of jumping between users for every row: several times faster with many
    users. Counts and weights are whole numbers, so the weighted sums are exact whatever the
    order of the additions (the results do not depend on the storage)."""
    return sparse.csc_matrix((np.asarray(values, dtype=float), (rows, users)), shape=shape)


# --------------------------------------------------------------------------- shares
def cluster_bootstrap_shares(counts: pd.DataFrame, group: str | None = None, k: str = "k",
                             n: str = "n", cluster: str = "user", n_boot: int = N_BOOT,
                             seed: int = 0, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Share ``Σk / Σn`` per ``group`` (or overall) with the naive Wilson interval and the
    percentile interval of a cluster (user) bootstrap, side by side.

    Columns: group (if given), n, k, share, ci_low, ci_high (Wilson, images independent),
    boot_low, boot_high (users resampled), users.
    """
    data = counts.loc[counts[n] > 0, list(dict.fromkeys(c for c in (cluster, group, k, n) if c is not None))]
    users, n_users = _codes(data[cluster])
    if group is None:
        groups, n_groups, labels = np.zeros(len(data), np.int64), 1, None
    else:
        groups, n_groups = _codes(data[group])
        labels = np.sort(data[group].unique())
    shape = (n_groups, n_users)
    mat_k = count_matrix(data[k], groups, users, shape)
    mat_n = count_matrix(data[n], groups, users, shape)
    replicates = []
    for weights in poisson_weights(n_users, n_boot, seed):
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates.append(np.asarray(mat_k @ weights) / np.asarray(mat_n @ weights))
    boot = np.concatenate(replicates, axis=1) if replicates else np.empty((n_groups, 0))
    tail = (1 - confidence) / 2
    total_k = np.asarray(mat_k.sum(axis=1)).ravel()
    total_n = np.asarray(mat_n.sum(axis=1)).ravel()
    out = pd.DataFrame({"n": total_n.astype("int64"), "k": total_k.astype("int64")})
    out["share"] = np.where(total_n > 0, total_k / np.where(total_n > 0, total_n, 1), np.nan)
    out["ci_low"], out["ci_high"] = wilson_interval(out["k"], out["n"], confidence)
    out["boot_low"] = np.nanquantile(boot, tail, axis=1) if boot.size else np.nan
    out["boot_high"] = np.nanquantile(boot, 1 - tail, axis=1) if boot.size else np.nan
    out["users"] = np.asarray((mat_n > 0).sum(axis=1)).ravel().astype("int64")
    if labels is not None:
        out.insert(0, group, labels)
    return out


def cluster_bootstrap_odds_ratio(counts: pd.DataFrame, cluster: str = "user", n_boot: int = N_BOOT,
                                 seed: int = 0, confidence: float = CONFIDENCE,
                                 group: str | None = None) -> dict[str, float] | dict[object, dict[str, float]]:
    """NSFW odds ratio of images with vs without an adapter call: the pooled (unadjusted) ratio
    with its Woolf interval and the percentile interval of a cluster (user) bootstrap.

    With ``group`` (e.g. the NSFW definition of stacked counts), one ratio per group, every group
    resampled with the same user weights in each replicate: group → ratio."""
    data = counts if group is not None else counts.assign(_group=0)
    key = group if group is not None else "_group"
    per = data.groupby([key, cluster], sort=True)[["n", "k", "n_adapter", "k_adapter"]].sum().reset_index()
    users, n_users = _codes(per[cluster])
    groups, n_groups = _codes(per[key])
    labels = np.sort(per[key].unique())

    def matrix(values: pd.Series) -> sparse.csc_matrix:
        return count_matrix(values, groups, users, (n_groups, n_users))

    k1, n1 = matrix(per["k_adapter"]), matrix(per["n_adapter"])
    k0, n0 = matrix(per["k"] - per["k_adapter"]), matrix(per["n"] - per["n_adapter"])
    sfw1, sfw0 = n1 - k1, n0 - k0
    ratios = []
    for w in poisson_weights(n_users, n_boot, seed):
        a, b = k1 @ w, sfw1 @ w
        c, d = k0 @ w, sfw0 @ w
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios.append(((a + 0.5) * (d + 0.5)) / ((b + 0.5) * (c + 0.5)))
    boot = np.concatenate(ratios, axis=1) if ratios else np.full((n_groups, 1), np.nan)
    tail = (1 - confidence) / 2
    out = {}
    for i, label in enumerate(labels):
        sums = [int(np.asarray(m[i].sum())) for m in (k1, n1, k0, n0)]
        out[label] = {**odds_ratio(*sums, confidence), "boot_low": float(np.nanquantile(boot[i], tail)),
                      "boot_high": float(np.nanquantile(boot[i], 1 - tail))}
    return out if group is not None else out[0]


# --------------------------------------------------------------------------- adjusted association
def mantel_haenszel_odds_ratio(counts: pd.DataFrame, confidence: float = CONFIDENCE) -> dict[str, float]:
    """Odds ratio of NSFW with vs without an adapter call within user × month strata.

    ``counts`` has one row per stratum (as :func:`user_counts` with ``by_month``). Only strata
    with images both with and without a call say anything about the association; the others
    are counted and left out. Interval: Robins–Breslow–Greenland (statsmodels).
    """
    a = counts["k_adapter"].to_numpy(float)
    b = (counts["n_adapter"] - counts["k_adapter"]).to_numpy(float)
    c = (counts["k"] - counts["k_adapter"]).to_numpy(float)
    d = (counts["n"] - counts["n_adapter"] - c).to_numpy(float)
    informative = ((a + b) > 0) & ((c + d) > 0) & ((a + c) > 0) & ((b + d) > 0)
    out = {"strata": int(len(counts)), "informative_strata": int(informative.sum()),
           "images_in_informative_strata": int((a + b + c + d)[informative].sum())}
    if not informative.any():
        return {**out, "odds_ratio": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    tables = np.stack([np.stack([a, b]), np.stack([c, d])])[:, :, informative]
    table = StratifiedTable(tables)
    low, high = table.oddsratio_pooled_confint(alpha=1 - confidence)
    return {**out, "odds_ratio": float(table.oddsratio_pooled), "ci_low": float(low),
            "ci_high": float(high), "p_value": float(table.test_null_odds().pvalue)}


# --------------------------------------------------------------------------- per-user view
def per_user_share_distribution(counts: pd.DataFrame, min_images: int = PER_USER_MIN_IMAGES,
                                quantiles: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> pd.DataFrame:
    """Quantiles of per-user NSFW shares over users with at least ``min_images`` images:
    unweighted (each user counts once) and weighted by the user's images."""
    per_user = counts.groupby("user")[["n", "k"]].sum()
    per_user = per_user[per_user["n"] >= min_images]
    share = (per_user["k"] / per_user["n"]).to_numpy()
    weight = per_user["n"].to_numpy(float)
    rows = []
    for q in quantiles:
        if len(share):
            order = np.argsort(share, kind="stable")
            cum = np.cumsum(weight[order]) / weight.sum()
            weighted = float(share[order][np.searchsorted(cum, q)])
            rows.append({"quantile": q, "unweighted": float(np.quantile(share, q)), "weighted": weighted})
        else:
            rows.append({"quantile": q, "unweighted": np.nan, "weighted": np.nan})
    out = pd.DataFrame(rows)
    out.attrs["users"] = int(len(share))
    return out


def per_user_share_histogram(counts: pd.DataFrame, bins: int = 10, min_images: int = PER_USER_MIN_IMAGES,
                             min_users: int = MIN_USERS) -> pd.DataFrame | NotEstimable:
    """How per-user NSFW shares are distributed over users with at least ``min_images`` images:
    per bin of the share (``bins`` equal bins of [0, 1], the last one closed), the share of
    those users in it (``user_share``, each user counts once) and the share of their images
    (``image_share``, each user weighted by their images).

    A bin holding fewer than ``min_users`` users describes too few people: its counts and shares
    are suppressed (NaN) and ``suppressed`` is true; the shares of the other bins are still out
    of all users and images, so suppressed mass is visibly missing. :class:`NotEstimable` when
    fewer than ``min_users`` users qualify.
    """
    per_user = counts.groupby("user")[["n", "k"]].sum()
    per_user = per_user[per_user["n"] >= min_images]
    if len(per_user) < min_users:
        return NotEstimable(f"fewer than {min_users} users have at least {min_images} images with "
                            "a known NSFW label (privacy floor)")
    share = (per_user["k"] / per_user["n"]).to_numpy()
    edges = np.linspace(0.0, 1.0, bins + 1)
    # A share on an edge opens the upper bin (the tolerance absorbs float error in share × bins).
    index = np.clip(np.floor(share * bins + 1e-9).astype(int), 0, bins - 1)
    users = np.bincount(index, minlength=bins).astype(float)
    images = np.bincount(index, weights=per_user["n"].to_numpy(float), minlength=bins)
    out = pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "users": users,
                        "images": images, "user_share": users / users.sum(),
                        "image_share": images / images.sum()})
    out["suppressed"] = (out["users"] > 0) & (out["users"] < min_users)
    out.loc[out["suppressed"], ["users", "images", "user_share", "image_share"]] = np.nan
    out.attrs["users"] = int(len(per_user))
    return out


# --------------------------------------------------------------------------- who posts vs how they post
def _period_parts(counts: pd.DataFrame, split_month: str) -> pd.DataFrame:
    """Per user: images and NSFW images before ``split_month`` (A) and from it on (B)."""
    before = counts["month"] < split_month
    parts = [counts[before].groupby("user")[["n", "k"]].sum().add_suffix("_a"),
             counts[~before].groupby("user")[["n", "k"]].sum().add_suffix("_b")]
    return pd.concat(parts, axis=1).fillna(0.0)


def _decompose(n_a: np.ndarray, k_a: np.ndarray, n_b: np.ndarray, k_b: np.ndarray) -> np.ndarray:
    """(change, within, composition) of the NSFW share between two periods; columns of the inputs
    are replicates (users × replicates), so one call decomposes every bootstrap replicate."""
    with np.errstate(invalid="ignore", divide="ignore"):
        w_a, w_b = n_a / n_a.sum(axis=0), n_b / n_b.sum(axis=0)
        s_a, s_b = k_a / n_a, k_b / n_b
        both = (n_a > 0) & (n_b > 0)
        within = np.where(both, (w_a + w_b) / 2 * (s_b - s_a), 0.0).sum(axis=0)
        change = (k_b.sum(axis=0) / n_b.sum(axis=0)) - (k_a.sum(axis=0) / n_a.sum(axis=0))
    return np.vstack([change, within, change - within])


def decomposition_terms(arrays: list[np.ndarray]) -> np.ndarray:
    """The per-user terms whose weighted sums give every bootstrap replicate of the shift-share
    decomposition (rows: n_a, k_a, n_b, k_b, n_a·Δs, n_b·Δs; columns: users), from the per-user
    n_a, k_a, n_b, k_b of :func:`shift_share` (users × 1). Δs is the user's change of NSFW share
    between the periods, zero for a user not in both.

    A user's weight cancels in its own shares (k·w / n·w), so the within-user part of a replicate
    is ``Σ w·n_a·Δs / (2·N_a) + Σ w·n_b·Δs / (2·N_b)`` with the replicate's period totals N_a,
    N_b: every piece is a weighted sum, and one matrix product gives them for all replicates."""
    n_a, k_a, n_b, k_b = (a[:, 0] for a in arrays)
    both = (n_a > 0) & (n_b > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.where(both, k_b / np.where(both, n_b, 1) - k_a / np.where(both, n_a, 1), 0.0)
    return np.vstack([n_a, k_a, n_b, k_b, n_a * delta, n_b * delta])


def decompose_sums(sums: np.ndarray) -> np.ndarray:
    """(change, within, composition) per replicate from the weighted sums of
    :func:`decomposition_terms` (6 × replicates). Equal to :func:`_decompose` of the weighted
    per-user counts up to rounding (the sums are added in another order); a replicate in which
    a period has no images has no change (NaN) and no within-user part (zero), as there."""
    total_n_a, total_k_a, total_n_b, total_k_b, within_a, within_b = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        change = (total_k_b / total_n_b) - (total_k_a / total_n_a)
        within = np.where((total_n_a > 0) & (total_n_b > 0),
                          within_a / (2 * total_n_a) + within_b / (2 * total_n_b), 0.0)
    return np.vstack([change, within, change - within])


def halving_month(counts: pd.DataFrame) -> str:
    """The month that halves the images of ``counts`` (the first month of the second half)."""
    by_month = counts.groupby("month")["n"].sum().sort_index()
    return str(by_month.index[np.searchsorted(by_month.cumsum().to_numpy(), by_month.sum() / 2)])


def shift_share(counts: pd.DataFrame, split_month: str | None = None, n_boot: int = N_BOOT,
                seed: int = 0, confidence: float = CONFIDENCE, group: str | None = None) -> pd.DataFrame:
    """The change of the NSFW share between two periods split into change *within* users active
    in both (each weighted by their mean share of images) and change in *who posts* (users'
    shifting weights, users who joined and users who left), with cluster-bootstrap intervals.

    ``counts`` is :func:`user_counts` by month; ``split_month`` starts the second period
    (default: the month that halves the images). The two parts add up to the change exactly
    (the symmetric shift-share decomposition). With ``group`` (e.g. the NSFW definition of
    stacked counts) every group is decomposed (its own halving month unless ``split_month`` is
    given) with the same user weights in each replicate, and the frame gains the group column.
    """
    data = counts if group is not None else counts.assign(_group=0)
    key = group if group is not None else "_group"
    users = pd.Index(np.sort(data["user"].unique()))
    setup = {}
    for label, part in data.groupby(key, sort=True):
        split = split_month if split_month is not None else halving_month(part)
        parts = _period_parts(part, split).reindex(users, fill_value=0.0)
        setup[label] = (split, parts, [parts[c].to_numpy(float)[:, None] for c in ("n_a", "k_a", "n_b", "k_b")])
    labels = list(setup)
    terms = np.vstack([decomposition_terms(setup[label][2]) for label in labels])
    replicates: dict = {label: [] for label in setup}
    for w in poisson_weights(len(users), n_boot, seed):
        sums = terms @ w
        for i, label in enumerate(labels):
            replicates[label].append(decompose_sums(sums[6 * i:6 * i + 6]))
    tail = (1 - confidence) / 2
    frames = []
    for label, (split, parts, arrays) in setup.items():
        boot = np.concatenate(replicates[label], axis=1) if replicates[label] else np.full((3, 1), np.nan)
        frame = pd.DataFrame({
            "part": ["change", "within users", "who posts"], "estimate": _decompose(*arrays)[:, 0],
            "boot_low": np.nanquantile(boot, tail, axis=1),
            "boot_high": np.nanquantile(boot, 1 - tail, axis=1), "split_month": split,
            "users_in_both": int(((parts["n_a"] > 0) & (parts["n_b"] > 0)).sum())})
        if group is not None:
            frame.insert(0, group, label)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def user_estimates(counts: Mapping[str, pd.DataFrame], n_boot: int, seed: int) -> dict[str, dict]:
    """The user-respecting estimates that the sensitivity table repeats under every NSFW
    definition: definition → {the overall share with its user-bootstrap interval
    (``clustered_share``), the adapter odds ratio pooled with both intervals
    (``adapter_clustered``) and adjusted for user × month (``adapter_adjusted``), and the
    shift-share decomposition (``decomposition``)}. ``counts`` is definition →
    :func:`user_counts` by month. The definitions are stacked and resampled together (one set
    of user weights per replicate), so three definitions cost one bootstrap, not three. A result
    a definition cannot give is :class:`~helpers.stats.NotEstimable` with the reason."""
    reasons: dict[str, dict] = {}
    for d, c in counts.items():
        reasons[d] = {}
        if c["n"].sum() == 0:
            reason = NotEstimable("no image has a known NSFW label under this definition")
            reasons[d] = dict.fromkeys(("clustered_share", "adapter_clustered", "adapter_adjusted",
                                        "decomposition"), reason)
            continue
        with_adapter, without = c["n_adapter"].sum(), (c["n"] - c["n_adapter"]).sum()
        if with_adapter == 0 or without == 0:
            reason = NotEstimable("no image calls an adapter" if with_adapter == 0 else
                                  "every image calls an adapter")
            reasons[d].update(adapter_clustered=reason, adapter_adjusted=reason)
        if c.loc[c["n"] > 0, "month"].nunique() < 2:
            reasons[d]["decomposition"] = NotEstimable("one month only: no change to decompose")
    stacked = pd.concat([c.assign(definition=d) for d, c in counts.items()], ignore_index=True)

    def eligible(field: str) -> pd.DataFrame:
        keep = [d for d in counts if field not in reasons[d]]
        return stacked if len(keep) == len(counts) else stacked[stacked["definition"].isin(keep)]

    shares = cluster_bootstrap_shares(eligible("clustered_share"), group="definition", n_boot=n_boot,
                                      seed=seed)
    ratios = (cluster_bootstrap_odds_ratio(eligible("adapter_clustered"), n_boot=n_boot, seed=seed,
                                           group="definition")
              if len(eligible("adapter_clustered")) else {})
    parts = (shift_share(eligible("decomposition"), n_boot=n_boot, seed=seed, group="definition")
             if len(eligible("decomposition")) else pd.DataFrame(columns=["definition"]))
    out = {}
    for d, c in counts.items():
        r = reasons[d]
        adjusted = r.get("adapter_adjusted") or mantel_haenszel_odds_ratio(c)
        if not isinstance(adjusted, NotEstimable) and adjusted["informative_strata"] == 0:
            adjusted = NotEstimable("no user posted images both with and without an adapter call "
                                    "in the same month (or the images carry no user)")
        out[d] = {"clustered_share": r.get("clustered_share") or
                  shares[shares["definition"] == d].drop(columns="definition").reset_index(drop=True),
                  "adapter_clustered": r.get("adapter_clustered") or ratios[d],
                  "adapter_adjusted": adjusted,
                  "decomposition": r.get("decomposition") or
                  parts[parts["definition"] == d].drop(columns="definition").reset_index(drop=True)}
    return out


def user_fields(images: Path, definition: str, n_boot: int, seed: int,
                con: duckdb.DuckDBPyConnection | None = None,
                counts: Mapping[str, pd.DataFrame] | None = None,
                estimates: Mapping[str, dict] | None = None) -> dict:
    """Notebook 03's results that respect users under the headline ``definition``:
    :func:`user_estimates`, the NSFW share by month with naive and cluster-bootstrap intervals,
    and the per-user share distribution (quantiles and histogram). ``counts``
    (:func:`user_counts_by_definition`) and ``estimates`` (:func:`user_estimates` of them) are
    computed when not given. A result the snapshot cannot give is
    :class:`~helpers.stats.NotEstimable` with the reason."""
    counts = counts if counts is not None else user_counts_by_definition(images, con=con)
    estimates = estimates if estimates is not None else user_estimates(counts, n_boot, seed)
    headline = counts[definition]
    out = dict(estimates[definition])
    if headline["n"].sum() == 0:
        reason = out["clustered_share"]
        return {**out, "clustered_monthly": reason, "per_user": reason, "per_user_histogram": reason}
    per_user = per_user_share_distribution(headline)
    if per_user.attrs.get("users", 0) == 0:
        per_user = NotEstimable(f"no user has at least {PER_USER_MIN_IMAGES} images with a known "
                                "NSFW label")
    return {**out, "per_user": per_user, "per_user_histogram": per_user_share_histogram(headline),
            "clustered_monthly": cluster_bootstrap_shares(headline, group="month", n_boot=n_boot,
                                                          seed=seed)}
