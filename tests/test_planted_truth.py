"""Planted truth: generate a synthetic snapshot with known parameters, run the adapter and the
cleaning, and recover what was planted (monthly NSFW share, volumes, real-person share)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from planted_coverage import assert_monthly_coverage
from helpers import clean


@pytest.fixture(scope="module")
def planted(synthetic_run):
    run = synthetic_run
    return run.params, run.truth, run.paths, run.clean_report


def test_nothing_is_lost_and_synthetic_rows_are_clean(planted):
    params, truth, paths, report = planted
    for table, good, prefix in (("images", params.n_images, "messy_rows"),
                                ("models", params.n_models, "messy_models")):
        rep = report["tables"][table]
        assert rep["raw"] == truth[f"raw_{'image' if table == 'images' else 'model'}_rows"]
        assert rep["raw"] == rep["clean"] + rep["quarantined"]
        # Only the planted bad rows are quarantined: every good synthetic row is kept, and so
        # are the planted rows that are only repaired.
        planted_quarantined = sum(truth[f"{prefix}_by_outcome"]["quarantined"].values())
        planted_repaired = sum(truth[f"{prefix}_by_outcome"]["repaired"].values())
        assert rep["quarantined"] == planted_quarantined > 0, table
        assert rep["clean"] == good + planted_repaired, table


def test_monthly_volume_is_recovered(planted):
    _, truth, paths, _ = planted
    got = clean.rows_by_month(paths, "images").set_index("month")["rows"].to_dict()
    # The planted volume plus the repaired (kept) bad rows, which copy a good row's month.
    assert got == truth["clean_images_per_month"]
    assert sum(got.values()) - sum(truth["images_per_month"].values()) == \
        sum(truth["messy_rows_by_outcome"]["repaired"].values())


@pytest.mark.parametrize("table,prefix", [("images", "messy_rows"), ("models", "messy_models")])
def test_cleaning_report_equals_the_planted_messy_rows(planted, table, prefix):
    """Every planted bad row is reported under exactly the reason it was planted for."""
    params, truth, _, report = planted
    rep, outcome = report["tables"][table], truth[f"{prefix}_by_outcome"]
    assert rep["quarantine_reasons"] == outcome["quarantined"]
    # prompt_missing counts images posted without generation metadata (the planted
    # missing_prompt_share), not bad rows; it is checked against that share instead.
    repairs = {k: v for k, v in rep["repairs"].items() if k != "prompt_missing"}
    assert repairs == outcome["repaired"]
    assert {**rep["quarantine_reasons"], **repairs} == truth[f"{prefix}_by_reason"]
    if table == "images":
        n, p = rep["clean"], params.missing_prompt_share
        assert abs(rep["repairs"]["prompt_missing"] / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n)


def test_monthly_nsfw_share_is_recovered_within_user_respecting_error(planted):
    """Users differ in NSFW propensity, so the monthly shares scatter around the planted path
    by more than binomial error: the cluster-bootstrap interval over users covers the planted
    share in most months, far more often than the naive interval that treats images as
    independent, and the shares are binomial around what the users who posted give in expectation."""
    from helpers import synth
    from helpers.analyse import users

    params, truth, paths, _ = planted
    df = pd.read_parquet(paths.table("interim", "images"), columns=["created_at", "browsing_level", "user_hash"])
    df["month"] = df.created_at.dt.strftime("%Y-%m")
    df["nsfw"] = df.browsing_level >= 4
    counts = df.groupby(["user_hash", "month"]).nsfw.agg(n="size", k="sum").rename_axis(["user", "month"]).reset_index()
    monthly = assert_monthly_coverage(counts, truth["nsfw_share_by_month"], n_boot=400).set_index("month")
    overall = users.cluster_bootstrap_shares(counts, n_boot=400, seed=1).iloc[0]
    assert overall["boot_low"] <= truth["nsfw_share_overall"] <= overall["boot_high"]
    given = synth.user_month_truth(params).groupby("month")[["n", "nsfw"]].sum()
    expected = given["nsfw"] / given["n"]
    for month, row in monthly.iterrows():
        p = expected[month]
        assert abs(row["share"] - p) <= 4.5 * math.sqrt(p * (1 - p) / row["n"]) + 2 / row["n"], month


def test_real_person_share_is_recovered(planted):
    _, truth, paths, _ = planted
    models = pd.read_parquet(paths.table("interim", "models"), columns=["poi", "type"])
    assert abs(models.poi.mean() - truth["real_person_share"]) < 0.02
    assert not models.loc[models.poi, "type"].eq("Checkpoint").any()
