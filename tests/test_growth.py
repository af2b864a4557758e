""""Disproportionate" measured: growth of NSFW vs SFW counts and a trend that breaks, each
recovered from data where it was planted."""
from __future__ import annotations

import numpy as np
import pandas as pd

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
