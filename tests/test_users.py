"""Inference that respects users: cluster-bootstrap intervals and the user × month adjusted odds
ratio recover effects planted in simulated per-user data, where naive intervals do not."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from helpers import db
from helpers.analyse import users


def _clustered(seed: int, n_users: int = 300, mean: float = 0.6, concentration: float = 1.5):
    """Users with Zipf-like activity and a Beta propensity of mean ``mean``; images Bernoulli."""
    rng = np.random.default_rng(seed)
    n = np.maximum(1, (200 * np.arange(1, n_users + 1) ** -0.9).astype(int))  # the top user posts 200
    p = rng.beta(mean * concentration, (1 - mean) * concentration, n_users)
    k = rng.binomial(n, p)
    return pd.DataFrame({"user": [f"u{i:04d}" for i in range(n_users)], "n": n, "k": k})


def test_cluster_bootstrap_covers_the_planted_share_where_the_naive_interval_does_not():
    planted, seeds = 0.6, range(20)
    boot_hits = naive_hits = 0
    for seed in seeds:
        out = users.cluster_bootstrap_shares(_clustered(seed), n_boot=400, seed=seed).iloc[0]
        boot_hits += out["boot_low"] <= planted <= out["boot_high"]
        naive_hits += out["ci_low"] <= planted <= out["ci_high"]
    # Both numbers are shown when the test fails: the bootstrap holds, the naive one does not.
    assert boot_hits >= 0.9 * len(seeds) and naive_hits < boot_hits, (boot_hits, naive_hits)
    assert naive_hits <= 0.7 * len(seeds), (boot_hits, naive_hits)


def test_cluster_bootstrap_by_group_matches_the_pooled_counts_and_is_seeded():
    data = pd.concat([_clustered(1).assign(month="2023-01"), _clustered(2).assign(month="2023-02")])
    a = users.cluster_bootstrap_shares(data, group="month", n_boot=200, seed=3)
    b = users.cluster_bootstrap_shares(data, group="month", n_boot=200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a["month"].tolist() == ["2023-01", "2023-02"]
    assert a["k"].tolist() == data.groupby("month")["k"].sum().tolist()
    assert (a["boot_low"] <= a["share"]).all() and (a["share"] <= a["boot_high"]).all()
    # independent images: the cluster interval is about the naive one
    flat = pd.DataFrame({"user": [f"i{j}" for j in range(4000)], "n": 1,
                         "k": np.random.default_rng(0).binomial(1, 0.3, 4000)})
    one = users.cluster_bootstrap_shares(flat, n_boot=400, seed=1).iloc[0]
    naive, boot = one["ci_high"] - one["ci_low"], one["boot_high"] - one["boot_low"]
    assert abs(boot / naive - 1) < 0.15


def _confounded(seed: int, true_or: float = 2.0, n_users: int = 1500):
    """NSFW-prone users use adapters more (confounding); within a user and month the planted odds
    ratio of an adapter call is ``true_or``; later months are more NSFW (a trend)."""
    rng = np.random.default_rng(seed)
    rows = []
    base = rng.normal(0, 1.5, n_users)
    for u in range(n_users):
        for month, shift in (("2023-01", -0.5), ("2023-02", 0.0), ("2023-03", 0.5)):
            n = int(rng.integers(2, 12))
            adapter = rng.random(n) < expit(base[u])          # confounded exposure
            p = expit(base[u] + shift + np.log(true_or) * adapter)
            nsfw = rng.random(n) < p
            rows.append({"user": f"u{u}", "month": month, "n": n, "k": int(nsfw.sum()),
                         "n_adapter": int(adapter.sum()), "k_adapter": int((nsfw & adapter).sum())})
    return pd.DataFrame(rows)


def test_mantel_haenszel_recovers_the_planted_within_user_odds_ratio_the_crude_one_misses():
    data = _confounded(5)
    adjusted = users.mantel_haenszel_odds_ratio(data)
    crude = users.cluster_bootstrap_odds_ratio(data, n_boot=300, seed=1)
    assert adjusted["ci_low"] <= 2.0 <= adjusted["ci_high"], adjusted
    assert crude["odds_ratio"] > 3.0 and not crude["ci_low"] <= 2.0 <= crude["ci_high"], crude
    assert crude["boot_high"] - crude["boot_low"] > crude["ci_high"] - crude["ci_low"]
    assert 0 < adjusted["informative_strata"] < adjusted["strata"]


def test_mantel_haenszel_without_informative_strata_is_not_a_number():
    data = pd.DataFrame({"user": ["a", "b"], "month": ["m", "m"], "n": [3, 2], "k": [1, 2],
                         "n_adapter": [3, 0], "k_adapter": [1, 0]})
    out = users.mantel_haenszel_odds_ratio(data)
    assert out["informative_strata"] == 0 and np.isnan(out["odds_ratio"])


def test_per_user_distribution_weighted_and_unweighted():
    data = pd.DataFrame({"user": ["a", "b", "c", "d"], "n": [100, 5, 5, 2], "k": [100, 0, 0, 2]})
    out = users.per_user_share_distribution(data, min_images=5).set_index("quantile")
    assert out.attrs["users"] == 3                      # d has fewer than 5 images
    assert out.loc[0.5, "unweighted"] == 0.0            # two of three users never post NSFW
    assert out.loc[0.5, "weighted"] == 1.0              # but most images come from the one who does


def test_user_counts_on_the_sample_add_up(synthetic_run):
    images = synthetic_run.paths.table("processed", "images")
    counts = users.user_counts(images, "r")
    table = db.read_table(images, columns=["is_nsfw_r", "n_lora"]).to_pandas()
    assert counts["n"].sum() == table["is_nsfw_r"].notna().sum()
    assert counts["k"].sum() == table["is_nsfw_r"].fillna(False).sum()
    assert counts["n_adapter"].sum() == (table["is_nsfw_r"].notna() & (table["n_lora"] > 0)).sum()
    out = users.cluster_bootstrap_shares(counts, group="month", n_boot=100, seed=1)
    assert (out["boot_high"] - out["boot_low"] >= 0).all()


def _two_periods(shares_a, shares_b, n_a, n_b):
    rows = []
    for u, (sa, sb, na, nb) in enumerate(zip(shares_a, shares_b, n_a, n_b)):
        if na:
            rows.append({"user": f"u{u}", "month": "2023-01", "n": na, "k": round(sa * na)})
        if nb:
            rows.append({"user": f"u{u}", "month": "2023-07", "n": nb, "k": round(sb * nb)})
    return pd.DataFrame(rows)


def test_shift_share_splits_a_planted_within_user_rise():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.1, 0.6, 200)
    n = rng.integers(20, 200, 200)
    out = users.shift_share(_two_periods(base, base + 0.2, n, n), "2023-07", n_boot=300, seed=1).set_index("part")
    assert out.loc["change", "estimate"] == pytest.approx(0.2, abs=0.01)
    assert out.loc["within users", "estimate"] == pytest.approx(0.2, abs=0.01)
    assert out.loc["who posts", "boot_low"] <= 0 <= out.loc["who posts", "boot_high"]
    assert out["estimate"].iloc[0] == pytest.approx(out["estimate"].iloc[1] + out["estimate"].iloc[2])


def test_shift_share_splits_a_planted_change_in_who_posts():
    shares = np.r_[np.full(100, 0.1), np.full(100, 0.9)]
    n_a = np.r_[np.full(100, 90), np.full(100, 10)]   # period A: mostly SFW posters
    n_b = np.r_[np.full(100, 10), np.full(100, 90)]   # period B: mostly NSFW posters
    out = users.shift_share(_two_periods(shares, shares, n_a, n_b), "2023-07", n_boot=300, seed=1).set_index("part")
    assert out.loc["change", "estimate"] == pytest.approx(0.8 * 0.9 - 0.8 * 0.1, abs=0.01)
    assert abs(out.loc["within users", "estimate"]) < 0.01
    assert out.loc["who posts", "boot_low"] > 0.5


def test_shift_share_on_the_sample_is_a_rise_within_users(synthetic_run):
    counts = users.user_counts(synthetic_run.paths.table("processed", "images"), "r")
    out = users.shift_share(counts, n_boot=200, seed=1).set_index("part")
    assert out.loc["change", "estimate"] > 0.1          # the planted rise
    assert out.loc["within users", "boot_low"] > 0      # users post more NSFW over time
    assert out["users_in_both"].iloc[0] > 50
