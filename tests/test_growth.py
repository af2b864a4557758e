""""Disproportionate" measured: growth of NSFW vs SFW counts and a trend that breaks, each
recovered from data where it was planted."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.analyse import growth
from helpers.analyse.images import nsfw_share_by_month


def _expected_monthly(truth: dict) -> pd.DataFrame:
    months = sorted(truth["images_per_month"])
    n = np.array([truth["images_per_month"][m] for m in months], float)
    share = np.array([truth["nsfw_share_by_month"][m] for m in months])
    return pd.DataFrame({"month": months, "n": n, "k": n * share})


def _expected_given_users(params) -> pd.DataFrame:
    """Monthly images and expected NSFW images given the users who posted them."""
    from helpers import synth

    counts = synth.user_month_truth(params).groupby("month")[["n", "nsfw"]].sum()
    return counts.rename(columns={"nsfw": "k"}).rename_axis("month").reset_index()


def test_growth_ratio_recovers_the_planted_disproportionate_rise(synthetic_run):
    planted = growth.growth_ratio(_expected_monthly(synthetic_run.truth))  # noise-free counts
    given_users = growth.growth_ratio(_expected_given_users(synthetic_run.params))
    monthly = nsfw_share_by_month(synthetic_run.paths.table("processed", "images"))
    got = growth.growth_ratio(monthly[monthly["definition"] == "r"])
    assert planted["ratio"] > 1.1  # the sample plants NSFW growing faster than SFW
    # The interval comes from monthly counts (HAC): it allows for months, not for the users
    # who posted them, so it is checked against the ratio those users give in expectation.
    assert got["ratio_low"] <= given_users["ratio"] <= got["ratio_high"], (got, given_users)
    assert got["ratio_low"] > 1 and got["nsfw_growth"] > got["sfw_growth"]


def _user_month_counts_of_snapshot(params) -> pd.DataFrame:
    """Per user and month: images and images at level >= R, read from a freshly written snapshot."""
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from helpers import schema, synth

    with tempfile.TemporaryDirectory() as folder:
        synth.write_snapshot(Path(folder), params)
        images = pq.read_table(Path(folder) / "images",
                               columns=["usernameHash", "browsingLevel", "createdAt"]).to_pandas()
    images["k"] = images["browsingLevel"] >= schema.LEVEL_BITS["R"]
    images["month"] = pd.to_datetime(images["createdAt"], utc=True).dt.strftime("%Y-%m")
    return (images.groupby(["usernameHash", "month"]).agg(n=("k", "size"), k=("k", "sum"))
            .rename_axis(["user", "month"]).reset_index())


def test_over_seeds_the_user_bootstrap_growth_ratio_covers_the_planted_one():
    """The planted ratio holds over the generator's user distribution; a snapshot's users move
    it. Resampling users (their per-month counts) covers the planted ratio in at least 90% of
    seeds (the HAC interval's coverage over months is shown beside it)."""
    from helpers import synth

    seeds = range(24)
    boot_hits = hac_hits = 0
    for seed in seeds:
        params = synth.default_params(n_images=20_000, n_models=200, seed=seed, messy_rows=0,
                                      messy_model_rows=0)
        planted = growth.growth_ratio(_expected_monthly(synth.expected_truth(params)))["ratio"]
        counts = _user_month_counts_of_snapshot(params)
        got = growth.growth_ratio_bootstrap(counts, n_boot=400, seed=seed)
        hac = growth.growth_ratio(counts.groupby("month")[["n", "k"]].sum().reset_index())
        assert got["ratio"] == pytest.approx(hac["ratio"], rel=1e-6)  # the same maximum-likelihood slope
        boot_hits += got["boot_low"] <= planted <= got["boot_high"]
        hac_hits += hac["ratio_low"] <= planted <= hac["ratio_high"]
    print(f"planted growth ratio covered in {boot_hits}/{len(seeds)} seeds by the user bootstrap, "
          f"{hac_hits}/{len(seeds)} by the HAC interval")
    assert boot_hits >= 0.9 * len(seeds), (boot_hits, hac_hits)


def test_the_user_bootstrap_growth_ratio_on_the_sample(synthetic_run):
    """On the session's sample: the bootstrap refits the study's ratio (the same slope as the
    GLM), its interval lies above 1 and is no narrower than the HAC one by much."""
    from helpers.analyse import users

    planted = growth.growth_ratio(_expected_monthly(synthetic_run.truth))["ratio"]
    counts = users.user_counts(synthetic_run.paths.table("processed", "images"), "r")
    got = growth.growth_ratio_bootstrap(counts, n_boot=400, seed=1)
    monthly = nsfw_share_by_month(synthetic_run.paths.table("processed", "images"))
    hac = growth.growth_ratio(monthly[monthly["definition"] == "r"])
    print(f"growth ratio: planted {planted:.2f}, estimate {got['ratio']:.2f}, user bootstrap "
          f"{got['boot_low']:.2f}-{got['boot_high']:.2f}, HAC {hac['ratio_low']:.2f}-{hac['ratio_high']:.2f}")
    assert got["ratio"] == pytest.approx(hac["ratio"], rel=1e-6)
    assert 1 < got["boot_low"] < got["ratio"] < got["boot_high"]
    assert np.log(got["boot_high"] / got["boot_low"]) > 0.8 * np.log(hac["ratio_high"] / hac["ratio_low"])
    empty = counts.assign(k=0)
    assert np.isnan(growth.growth_ratio_bootstrap(empty, n_boot=10, seed=1)["ratio"])


def test_the_vectorised_slopes_are_the_glm_ones():
    rng = np.random.default_rng(4)
    t = np.arange(18) / 12
    n = rng.integers(50, 500, size=(18, 5)).astype(float)
    k = rng.binomial(n.astype(int), 1 / (1 + np.exp(-(-1 + 0.8 * t[:, None])))).astype(float)
    months = pd.period_range("2023-01", periods=18, freq="M").astype(str)
    for j in range(5):
        glm = growth.growth_ratio(pd.DataFrame({"month": months, "n": n[:, j], "k": k[:, j]}))["ratio"]
        assert np.exp(growth.logistic_slopes(k[:, j:j + 1], n[:, j:j + 1], t)[0]) == pytest.approx(glm, rel=1e-6)
    assert np.isnan(growth.logistic_slopes(np.zeros((18, 1)), n[:, :1], t)[0])


def test_growth_ratio_is_one_when_shares_stay_flat():
    months = pd.period_range("2023-01", periods=24, freq="M").astype(str)
    rng = np.random.default_rng(0)
    n = (1000 * 1.08 ** np.arange(24)).astype(int)
    data = pd.DataFrame({"month": months, "n": n, "k": rng.binomial(n, 0.4)})
    got = growth.growth_ratio(data)
    assert got["ratio_low"] <= 1 <= got["ratio_high"]
    assert abs(got["sfw_growth"] - 1.08 ** 12) / 1.08 ** 12 < 0.05


def test_segmented_trend_finds_a_planted_break():
    months = pd.period_range("2023-01", periods=30, freq="M").astype(str)
    t = np.arange(30) / 12
    logit = np.where(np.arange(30) < 14, -1 + 1.2 * t, -1 + 1.2 * t[14] - 0.6 * (t - t[14]))
    rng = np.random.default_rng(3)
    n = np.full(30, 4000)
    data = pd.DataFrame({"month": months, "n": n, "k": rng.binomial(n, 1 / (1 + np.exp(-logit)))})
    got = growth.segmented_trend(data)
    assert abs((pd.Period(got["break_month"]) - pd.Period("2024-03")).n) <= 1, got["break_month"]
    assert got["before_low"] <= np.exp(1.2) <= got["before_high"]
    assert got["after_low"] <= np.exp(-0.6) <= got["after_high"]
    assert got["straight_dispersion"] > 5 > got["broken_deviance"] / (30 - 3)


def test_too_few_months_are_not_a_number():
    data = pd.DataFrame({"month": ["2023-01", "2023-02"], "n": [10, 10], "k": [3, 4]})
    assert np.isnan(growth.growth_ratio(data)["ratio"])
    assert growth.segmented_trend(data)["break_month"] == ""
