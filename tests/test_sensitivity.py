"""Every comparison under every NSFW definition: the one-pass aggregates agree with independent
counts, the definitions resampled together give each definition's own bootstrap, the sensitivity
tables hold every headline under every definition (and the headline fields are their rows), the
NSFW share by base-model family and month recovers the planted one, and the per-user histogram
counts users exactly."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import db
from helpers import analyse, label, link, paper, robustness, schema
from helpers.analyse import images as image_analyses
from helpers.analyse import links as link_analyses
from helpers.analyse import sensitivity, users
from helpers.paths import RunPaths
from helpers.stats import NotEstimable


@pytest.fixture(scope="module")
def linked_run(synthetic_run, tmp_path_factory) -> RunPaths:
    """The session's synthetic sample labelled and linked in a folder of its own."""
    paths = synthetic_run.interim_copy(tmp_path_factory.mktemp("sensitivity"))
    label.label_images(paths)
    label.label_models(paths, seed=synthetic_run.params.seed, n_boot=20)
    link.link_images(paths)
    return paths


@pytest.fixture(scope="module")
def results(linked_run) -> analyse.ImageResults:
    images, models = linked_run.table("processed", "images"), linked_run.table("processed", "models")
    return analyse.image_results(images, pd.read_parquet(models), links=linked_run.links,
                                 models_file=models, boot_replicates=200, seed=7)


def _images(paths: RunPaths) -> pd.DataFrame:
    return db.read_table(paths.table("processed", "images"),
                           columns=["image_id", "user_hash", "created_at", "n_lora",
                                    *schema.NSFW_DEFINITIONS.values()]).to_pandas()


def test_user_counts_of_every_definition_match_an_independent_count(linked_run):
    data = _images(linked_run)
    data["user"] = data["user_hash"].fillna("image:" + data["image_id"].astype(str))
    data["user"] = pd.factorize(data["user"], sort=True)[0].astype("int64")  # rank among sorted keys
    data["month"] = pd.to_datetime(data["created_at"], utc=True).dt.strftime("%Y-%m")
    adapter = data["n_lora"].fillna(0) > 0
    counts = users.user_counts_by_definition(linked_run.table("processed", "images"))
    assert set(counts) == set(schema.NSFW_DEFINITIONS)
    for d, column in schema.NSFW_DEFINITIONS.items():
        flag = data[column]
        expected = (data.assign(n=flag.notna(), k=flag.fillna(False).astype(bool),
                                n_adapter=flag.notna() & adapter,
                                k_adapter=flag.fillna(False).astype(bool) & adapter)
                    .groupby(["user", "month"])[["n", "k", "n_adapter", "k_adapter"]].sum()
                    .astype("int64").reset_index())
        got = counts[d].sort_values(["user", "month"], ignore_index=True)
        pd.testing.assert_frame_equal(got, expected.sort_values(["user", "month"], ignore_index=True))


def test_stacked_definitions_give_each_definition_its_own_bootstrap():
    """Two identical groups resampled together give exactly what one gives alone (same users,
    same weights), and the pooled numbers are each group's own."""
    rng = np.random.default_rng(0)
    n_users = 400
    frame = pd.DataFrame({"user": np.repeat([f"u{i:03d}" for i in range(n_users)], 2),
                          "month": np.tile(["2023-01", "2023-06"], n_users)})
    frame["n"] = rng.integers(1, 20, len(frame))
    frame["k"] = rng.binomial(frame["n"], np.where(frame["month"] == "2023-01", 0.3, 0.5))
    frame["n_adapter"] = rng.binomial(frame["n"], 0.4)
    frame["k_adapter"] = np.minimum(frame["k"], frame["n_adapter"])
    stacked = pd.concat([frame.assign(definition="a"), frame.assign(definition="b")])
    alone = users.cluster_bootstrap_odds_ratio(frame, n_boot=150, seed=3)
    together = users.cluster_bootstrap_odds_ratio(stacked, n_boot=150, seed=3, group="definition")
    assert together["a"] == together["b"] == pytest.approx(alone)
    single = users.shift_share(frame, n_boot=150, seed=3)
    grouped = users.shift_share(stacked, n_boot=150, seed=3, group="definition")
    for d in ("a", "b"):
        part = grouped[grouped["definition"] == d].drop(columns="definition").reset_index(drop=True)
        pd.testing.assert_frame_equal(part, single)
    # the planted rise of 20 points shows, and the parts add up to it
    change = single.set_index("part")["estimate"]
    assert change["change"] == pytest.approx(change["within users"] + change["who posts"])
    row = single.set_index("part").loc["change"]
    assert row["boot_low"] <= 0.2 <= row["boot_high"]


def _row(table: pd.DataFrame, estimate: str, definition: str) -> pd.Series:
    rows = table[(table["estimate"] == estimate) & (table["definition"] == definition)]
    assert len(rows) == 1, (estimate, definition)
    return rows.iloc[0]


def test_every_headline_under_every_definition(results, linked_run):
    table = results.sensitivity
    images = linked_run.table("processed", "images")
    assert list(table.columns) == list(sensitivity.SENSITIVITY_COLUMNS)
    for key in sensitivity.IMAGE_ESTIMATES:
        for d in schema.NSFW_DEFINITIONS:
            row = _row(table, key, d)
            assert row["reason"] == "" and math.isfinite(row["value"]), (key, d, row["reason"])
    counts = users.user_counts_by_definition(images)
    for d in schema.NSFW_DEFINITIONS:
        part = results.monthly[(results.monthly["definition"] == d) & (results.monthly["n"] > 0)]
        assert _row(table, "share", d)["value"] == part["k"].sum() / part["n"].sum()
        # each definition's row is what the single-definition function gives
        alone = image_analyses.nsfw_share_by_adapter_use(images, d)
        assert _row(table, "adapter_or", d)["value"] == pytest.approx(alone["odds_ratio"].iloc[0])
        adjusted = users.mantel_haenszel_odds_ratio(counts[d])
        assert _row(table, "adapter_or_adjusted", d)["value"] == pytest.approx(adjusted["odds_ratio"])
        rp = link_analyses.nsfw_share_by_real_person_adapter(
            link_analyses.link_counts(images, linked_run.links, linked_run.table("processed", "models"), d))
        assert _row(table, "rp_with", d)["value"] == pytest.approx(rp["share"].iloc[1])
        low, high = _row(table, "shift_change", d)[["ci_low", "ci_high"]]
        assert low <= _row(table, "shift_change", d)["value"] <= high
        # the planted rise shows under every definition
        assert _row(table, "trend_or", d)["ci_low"] > 1 and _row(table, "growth_ratio", d)["ci_low"] > 1
    # the headline fields are the headline definition's rows
    h = results.definition
    assert _row(table, "adapter_or_adjusted", h)["value"] == results.adapter_adjusted["odds_ratio"]
    assert _row(table, "share_boot", h)["ci_low"] == results.clustered_share["boot_low"].iloc[0]
    change = results.decomposition.set_index("part").loc["change"]
    assert _row(table, "shift_change", h)["value"] == change["estimate"]


def test_planted_nsfw_share_by_family_and_month(results, synthetic_run, linked_run):
    """The share of each family and month equals an independent count of the images, and covers
    its planted value (NSFW images draw their base model from one mix, SFW images from another)
    within user-bootstrap intervals: users carry a planted NSFW propensity, so images of a user
    are not independent and Wilson intervals alone would be too narrow."""
    truth = synthetic_run.truth
    images = db.read_table(linked_run.table("processed", "images"),
                             columns=["user_hash", "image_id", "created_at", "base_model", "is_nsfw_r"]).to_pandas()
    images = images[images["is_nsfw_r"].notna()]
    images["cell"] = (pd.to_datetime(images["created_at"], utc=True).dt.strftime("%Y-%m") + "|" +
                      [schema.base_model_family(b if isinstance(b, str) else None) for b in images["base_model"]])
    images["user"] = images["user_hash"].fillna("image:" + images["image_id"].astype(str))
    counts = (images.assign(k=images["is_nsfw_r"].astype(bool)).groupby(["user", "cell"])
              .agg(n=("k", "size"), k=("k", "sum")).reset_index())
    got = results.family_nsfw_monthly
    got = got[(got["definition"] == "r") & (got["n"] >= 100)].assign(cell=lambda d: d["month"] + "|" + d["family"])
    mine = counts.groupby("cell")[["n", "k"]].sum()
    hits = wilson_hits = 0
    for row in got.itertuples():
        assert mine.loc[row.cell, "k"] == row.k and mine.loc[row.cell, "n"] == row.n, row.cell
        planted = truth["nsfw_share_by_family_by_month"][row.month][row.family]
        hits += row.boot_low <= planted <= row.boot_high
        wilson_hits += row.ci_low <= planted <= row.ci_high
    print(f"family × month cells covering the planted share: {hits}/{len(got)} user bootstrap, "
          f"{wilson_hits}/{len(got)} Wilson")
    assert len(got) >= 20 and hits >= 0.85 * len(got), (hits, len(got))
    # pooled over the months, each family covers its planted share too: in the results, in the
    # headline frame and in the sensitivity table's per-family rows (user-bootstrap intervals)
    pooled = results.family_nsfw.set_index("family")
    clustered = results.family_nsfw_clustered.query("definition == 'r'").set_index("family")
    table = results.sensitivity
    counts["family"] = counts["cell"].str.split("|").str[1]
    totals = counts.groupby("family")[["k", "n"]].sum()
    for family, share in truth["nsfw_share_by_family"].items():
        assert totals.loc[family, "k"] == pooled.loc[family, "k"] == clustered.loc[family, "k"]
        assert pooled.loc[family, "boot_low"] <= share <= pooled.loc[family, "boot_high"], family
        row = _row(table, f"family_{family}", "r")
        assert row["interval"] == "user bootstrap"
        assert (row["ci_low"], row["ci_high"]) == (clustered.loc[family, "boot_low"],
                                                   clustered.loc[family, "boot_high"])


def test_growth_and_real_person_rows_carry_their_new_intervals(results, synthetic_run):
    """The growth ratio has its user-bootstrap row beside the HAC one, covering the planted
    ratio; the real-person adapter odds ratio has its adjusted row beside the raw one."""
    table = results.sensitivity
    h = results.definition
    hac, boot = _row(table, "growth_ratio", h), _row(table, "growth_ratio_boot", h)
    assert hac["value"] == boot["value"] == results.growth["ratio"]
    assert (boot["ci_low"], boot["ci_high"]) == (results.growth["ratio_boot_low"],
                                                 results.growth["ratio_boot_high"])
    assert results.real_person_adapter_adjusted["odds_ratio"] == _row(table, "rp_or_adjusted", h)["value"]
    planted_or = synthetic_run.truth["real_person_adapter_nsfw_odds_ratio"]
    adjusted = results.real_person_adapter_adjusted
    assert adjusted["ci_low"] <= planted_or <= adjusted["ci_high"], adjusted
    assert _row(table, "rp_or", h)["value"] > adjusted["ci_high"]


def test_per_user_histogram_counts_users_and_images_exactly():
    # 30 users with 10 images and 2 NSFW (share 0.2), 12 with 20 images all NSFW, 3 with 5 and 3
    # NSFW (share 0.6: below the privacy floor), 4 with too few images to count.
    groups = [(30, 10, 2), (12, 20, 20), (3, 5, 3), (4, 2, 1)]
    rows, i = [], 0
    for n_users, n, k in groups:
        for _ in range(n_users):
            rows.append({"user": f"u{i}", "month": "2023-01", "n": n, "k": k})
            i += 1
    hist = users.per_user_share_histogram(pd.DataFrame(rows), bins=10, min_images=5, min_users=10)
    by_bin = hist.set_index(hist["bin_low"].round(1))
    assert hist.attrs["users"] == 45
    assert by_bin.loc[0.2, "users"] == 30 and by_bin.loc[0.9, "users"] == 12
    assert by_bin.loc[0.2, "user_share"] == pytest.approx(30 / 45)
    assert by_bin.loc[0.9, "image_share"] == pytest.approx(240 / (300 + 240 + 15))
    assert bool(by_bin.loc[0.6, "suppressed"]) and math.isnan(by_bin.loc[0.6, "users"])
    assert isinstance(users.per_user_share_histogram(pd.DataFrame(rows[:5])), NotEstimable)


def test_model_sensitivity_under_every_definition_and_a_missing_one(synthetic_run):
    models = pd.read_parquet(synthetic_run.paths.table("processed", "models"))
    table = analyse.model_results(models).sensitivity
    for d in schema.NSFW_DEFINITIONS:
        alone = analyse.nsfw_share_by_real_person(models, d).set_index("is_real_person")
        assert _row(table, "real_person", d)["value"] == pytest.approx(alone.loc[True, "share"])
        assert _row(table, "real_person_or", d)["value"] == pytest.approx(alone.loc[True, "odds_ratio"])
    without_x = models.assign(is_nsfw_x=pd.Series(pd.NA, index=models.index, dtype="boolean"))
    missing = analyse.model_results(without_x).sensitivity
    rows = missing[missing["definition"] == "x"]
    assert (rows["reason"] != "").all() and rows["value"].isna().all()
    assert (missing.loc[missing["definition"] == "r", "reason"] == "").all()


def test_paper_sentences_follow_the_numbers(results):
    text = robustness.adjusted_adapter_sentence(results)
    adjusted = results.adapter_adjusted
    assert paper.format_value(adjusted["odds_ratio"], "float", 2)[0] in text
    side = robustness.direction(adjusted["odds_ratio"], adjusted["ci_low"], adjusted["ci_high"])
    assert ("interval excludes 1" in text) == (side == "above")
    assert "cannot be an artefact" not in text
    # an adjusted ratio whose interval covers 1 is said to, a not-estimable one gives the reason
    table = results.sensitivity.copy()
    covered = table["estimate"] == "adapter_or_adjusted"
    table.loc[covered, ["value", "ci_low", "ci_high"]] = [1.1, 0.9, 1.3]
    sentence = robustness.sensitivity_sentence(table)
    assert "depends on the definition" in sentence and "covers 1" in sentence
    assert robustness.direction(1.1, 0.9, 1.3) == "unclear" and robustness.direction(0.5, 0.4, 0.6) == "below"
    unclear = robustness.adjusted_adapter_sentence(
        _replace(results, adapter_adjusted={**adjusted, "odds_ratio": 1.1, "ci_low": 0.9, "ci_high": 1.3}))
    assert "The interval includes 1" in unclear
    none = robustness.adjusted_adapter_sentence(_replace(results, adapter_adjusted=NotEstimable("no strata")))
    assert "cannot be estimated here: no strata." in none


def _replace(results, **changes):
    import dataclasses

    return dataclasses.replace(results, **changes)


def test_sensitivity_table_for_the_paper(results, tmp_path: Path):
    frame = robustness.sensitivity_table(results.sensitivity)
    assert not frame["section"].eq(sensitivity.FAMILY_SECTION).any()
    assert len(frame) == len(sensitivity.IMAGE_ESTIMATES)
    files = paper.write_paper_table(RunPaths(tmp_path), "sensitivity_images", frame)
    tex = files["tex"].read_text()
    assert "resizebox" not in tex and r"level $\geq$ X" in tex and r"\newline{}" in tex


def test_a_definition_the_snapshot_lacks_is_named_not_counted_as_disagreeing(results):
    table = results.sensitivity.copy()
    lacking = table["definition"] == "platform"
    table.loc[lacking, ["value", "ci_low", "ci_high"]] = np.nan
    table.loc[lacking, "reason"] = "no image has a known NSFW label under this definition"
    sentence = robustness.sensitivity_sentence(table)
    assert "Under every NSFW definition this snapshot can estimate" in sentence
    assert "depends on the definition" not in sentence
    assert "Not estimable on this snapshot" in sentence and "platform flag" in sentence
    counts = pd.DataFrame({"month": ["2023-01"] * 2, "family": "SD 1.x",
                           "uses_real_person_adapter": [False, True], "images": [5, 3], "n": 0, "k": 0})
    reason = link_analyses.real_person_adapter_comparison(counts)
    assert isinstance(reason, NotEstimable) and "no image has a known NSFW label" in reason.reason
