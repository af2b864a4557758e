"""Models over time and real-person models: counts agree with pandas, label error is corrected
back to a planted prevalence, bounds and curves behave."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers.analyse import real_person as rp


@pytest.fixture(scope="module")
def models(synthetic_run):
    return pq.read_table(synthetic_run.paths.table("processed", "models")).to_pandas()


def test_model_nsfw_share_by_month_counts_and_trend(models, synthetic_run):
    out, trend = rp.model_nsfw_share_by_month(models)
    months = models["created_at"].dt.strftime("%Y-%m")
    assert out["n"].tolist() == models.groupby(months)["is_nsfw_r"].count().tolist()
    assert out["n"].sum() == models["is_nsfw_r"].notna().sum()
    params = synthetic_run.params
    assert params.model_nsfw_share_end != params.model_nsfw_share_start  # a planted trend
    assert (trend["odds_ratio_per_year"] > 1) == (params.model_nsfw_share_end > params.model_nsfw_share_start)
    assert trend["ci_low"] > 1 or trend["ci_high"] < 1  # and the trend is detected


def test_downloads_and_creator_concentration(models):
    down = rp.real_person_downloads_by_month(models)
    assert down["n"].sum() == models["download_count"].fillna(0).sum()
    assert down["k"].sum() == models.loc[models["is_real_person"].fillna(False).astype(bool),
                                         "download_count"].fillna(0).sum()
    summary, lorenz = rp.real_person_creator_concentration(models)
    real = models[models["is_real_person"].fillna(False).astype(bool) & models["creator_hash"].notna()]
    assert summary["models"] == len(real) and summary["creators"] == real["creator_hash"].nunique()
    assert 0 <= summary["gini"] < 1 and summary["top1_share"] <= summary["top10_share"] <= 1
    assert lorenz.iloc[-1].tolist() == [1.0, 1.0]
    none = rp.real_person_creator_concentration(models.assign(is_real_person=False))[0]
    assert none["creators"] == 0 and np.isnan(none["gini"])


def test_rogan_gladen_recovers_a_planted_prevalence_from_noisy_labels():
    rng = np.random.default_rng(4)
    truth, se, sp, n = 0.12, 0.86, 0.985, 20_000
    hits = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        real = rng.random(n) < truth
        label = np.where(real, rng.random(n) < se, rng.random(n) >= sp)
        # an independent validation sample of 700 real and 4,700 other models
        val_pos, val_neg = rng.random(700) < se, rng.random(4700) < sp
        out = rp.rogan_gladen(int(label.sum()), n, int(val_pos.sum()), 700, int(val_neg.sum()), 4700,
                              n_boot=1000, seed=seed)
        assert abs(out["apparent"] - truth) > abs(out["corrected"] - truth) - 0.01
        hits += out["ci_low"] <= truth <= out["ci_high"]
    assert hits >= 18, hits


def test_rogan_gladen_without_information_is_not_a_number():
    out = rp.rogan_gladen(10, 100, 5, 10, 5, 10)  # se + sp - 1 = 0
    assert np.isnan(out["corrected"]) and np.isnan(out["ci_low"])


def test_female_share_bounds_and_threshold_curve(models):
    b = rp.female_share_bounds(models)
    assert b["lower"] <= b["female_share_known"] <= b["upper"]
    assert b["known"] + b["unknown"] == b["real_person_models"]
    curve = rp.real_person_share_by_threshold(models, thresholds=(0.1, 0.5, 0.9))
    assert curve["k"].is_monotonic_decreasing and curve["n"].nunique() == 1
    assert curve.loc[1, "k"] == (models["real_person_score"] >= 0.5).sum()
    small = pd.DataFrame({"real_person_score": [0.2, 0.6, None, 0.95]})
    assert rp.real_person_share_by_threshold(small, (0.5,))["k"].tolist() == [2]
