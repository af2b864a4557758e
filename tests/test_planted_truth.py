"""Planted truth: generate a synthetic snapshot with known parameters, run the adapter and the
cleaning, and recover what was planted (monthly NSFW share, volumes, real-person share)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from helpers import clean, sources, synth
from helpers.paths import RunPaths


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    params = synth.default_params(n_images=40_000, n_models=4_000, seed=7)
    paths = RunPaths(tmp_path_factory.mktemp("planted")).ensure()
    sources.acquire("sample", paths, sample_images=params.n_images, sample_models=params.n_models,
                    seed=params.seed)
    report = clean.clean_all(paths)
    return params, synth.expected_truth(params), paths, report


def test_nothing_is_lost_and_synthetic_rows_are_clean(planted):
    params, truth, paths, report = planted
    images = report["tables"]["images"]
    assert images["raw"] == params.n_images
    assert images["raw"] == images["clean"] + images["quarantined"]
    assert images["quarantined"] == 0  # the generator plants no bad rows
    assert report["tables"]["models"]["raw"] == params.n_models


def test_monthly_volume_is_recovered(planted):
    _, truth, paths, _ = planted
    got = clean.rows_by_month(paths, "images").set_index("month")["rows"].to_dict()
    assert got == truth["images_per_month"]


def test_monthly_nsfw_share_is_recovered_within_binomial_error(planted):
    _, truth, paths, _ = planted
    df = pd.read_parquet(paths.table("interim", "images"), columns=["created_at", "browsing_level"])
    df["month"] = df.created_at.dt.strftime("%Y-%m")
    got = df.assign(nsfw=df.browsing_level >= 4).groupby("month").nsfw.agg(["mean", "size"])
    inside = 0
    for month, planted_share in truth["nsfw_share_by_month"].items():
        share, n = got.loc[month, "mean"], got.loc[month, "size"]
        half_width = 1.96 * math.sqrt(planted_share * (1 - planted_share) / n) + 0.5 / n
        inside += abs(share - planted_share) <= half_width
    assert inside / len(truth["nsfw_share_by_month"]) >= 0.9
    overall = (df.browsing_level >= 4).mean()
    assert abs(overall - truth["nsfw_share_overall"]) < 0.01


def test_civiverse_months_follow_the_card(planted):
    _, truth, paths, _ = planted
    assert truth["civiverse_nsfw_share"] == {"2023-10": 0.5519, "2023-11": 0.5829, "2023-12": 0.5597,
                                             "2024-01": 0.5859, "2024-02": 0.6121, "2024-03": 0.6504,
                                             "2024-04": 0.7294}


def test_real_person_share_is_recovered(planted):
    _, truth, paths, _ = planted
    models = pd.read_parquet(paths.table("interim", "models"), columns=["poi", "type"])
    assert abs(models.poi.mean() - truth["real_person_share"]) < 0.02
    assert not models.loc[models.poi, "type"].eq("Checkpoint").any()
