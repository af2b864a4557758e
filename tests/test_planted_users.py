"""Planted truth that depends on users: the synthetic snapshot plants user-level NSFW propensity
(with confounded adapter use and later, more NSFW-prone cohorts), real-person adapters with a
known adjusted odds ratio and a break, base-model families with known NSFW shares and a creator
concentration of real-person models; the study's estimators recover each inside its interval."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from planted_coverage import assert_monthly_coverage
from helpers import db
from helpers import link, schema, synth
from helpers.analyse import links as link_analyses
from helpers.analyse import real_person, users
from helpers.paths import RunPaths
from helpers.stats import NotEstimable

#: Bootstrap replicates of the intervals checked here (the study's default is 1000).
N_BOOT = 400


# --------------------------------------------------------------------------- many small samples
def _user_counts_of_snapshot(params: synth.SynthParams) -> pd.DataFrame:
    """Per user: images and images at level >= R, read from a freshly written snapshot."""
    with tempfile.TemporaryDirectory() as folder:
        synth.write_snapshot(Path(folder), params)
        images = pq.read_table(Path(folder) / "images", columns=["usernameHash", "browsingLevel"]).to_pandas()
    images["k"] = images["browsingLevel"] >= schema.LEVEL_BITS["R"]
    return (images.groupby("usernameHash").agg(n=("k", "size"), k=("k", "sum"))
            .rename_axis("user").reset_index())


def test_over_seeds_the_cluster_bootstrap_covers_the_planted_share_and_the_naive_interval_does_not():
    """Heavy users move a snapshot's NSFW share around the planted one by more than image-level
    noise: the user-cluster bootstrap interval allows for it, the Wilson interval does not."""
    seeds = range(24)
    boot_hits = naive_hits = 0
    for seed in seeds:
        params = synth.default_params(n_images=5_000, n_models=200, seed=seed, messy_rows=0, messy_model_rows=0)
        planted = synth.expected_truth(params)["nsfw_share_overall"]
        out = users.cluster_bootstrap_shares(_user_counts_of_snapshot(params), n_boot=N_BOOT, seed=seed).iloc[0]
        boot_hits += out["boot_low"] <= planted <= out["boot_high"]
        naive_hits += out["ci_low"] <= planted <= out["ci_high"]
    print(f"planted NSFW share covered in {boot_hits}/{len(seeds)} seeds by the cluster bootstrap, "
          f"{naive_hits}/{len(seeds)} by the naive Wilson interval")
    assert boot_hits >= 0.9 * len(seeds), (boot_hits, naive_hits)
    assert naive_hits < boot_hits, (boot_hits, naive_hits)


def test_without_user_effects_the_cluster_interval_is_not_much_wider_than_the_naive_one():
    """The user effects are what widens the intervals: switched off, the cluster bootstrap is
    close to the naive interval (users still differ by the months they post in); on, it is
    several times wider."""
    def width_ratio(**overrides) -> float:
        params = synth.default_params(n_images=5_000, n_models=200, seed=3, messy_rows=0,
                                      messy_model_rows=0, **overrides)
        out = users.cluster_bootstrap_shares(_user_counts_of_snapshot(params), n_boot=N_BOOT, seed=3).iloc[0]
        return (out["boot_high"] - out["boot_low"]) / (out["ci_high"] - out["ci_low"])

    without = width_ratio(user_propensity_sd=0.0, user_cohort_effect=0.0, user_adapter_propensity=0.0)
    with_users = width_ratio()
    assert without < 2 < 2.5 < with_users, (without, with_users)


# --------------------------------------------------------------------------- the linked sample
@pytest.fixture(scope="module")
def linked(synthetic_run, tmp_path_factory):
    """The session's synthetic sample (cleaned and labelled) linked, in a folder of its own."""
    paths = RunPaths(tmp_path_factory.mktemp("planted_users")).ensure()
    for stage in ("interim", "processed"):  # the tables, stored views and label files alike
        shutil.copytree(synthetic_run.paths.data / stage, paths.data / stage, dirs_exist_ok=True)
    report = link.link_images(paths)
    return synthetic_run.params, synthetic_run.truth, paths, report


@pytest.fixture(scope="module")
def counts(linked) -> pd.DataFrame:
    _, _, paths, _ = linked
    return users.user_counts(paths.table("processed", "images"), "r")


def test_the_adjusted_adapter_odds_ratio_recovers_the_planted_one_the_crude_one_does_not(linked, counts):
    params, truth, _, _ = linked
    adjusted = users.mantel_haenszel_odds_ratio(counts)
    crude = users.cluster_bootstrap_odds_ratio(counts, n_boot=N_BOOT, seed=1)
    planted = truth["lora_nsfw_odds_ratio"]
    assert planted == params.lora_nsfw_odds_ratio
    assert adjusted["ci_low"] <= planted <= adjusted["ci_high"], adjusted
    # NSFW-prone users call adapters more, and both rise over time: the pooled ratio is larger.
    assert crude["boot_low"] <= truth["lora_nsfw_odds_ratio_crude"] <= crude["boot_high"], crude
    assert truth["lora_nsfw_odds_ratio_crude"] > 1.4 * planted
    assert crude["ci_low"] > adjusted["ci_high"], (crude, adjusted)


def test_the_rise_splits_into_its_planted_parts_within_users_and_who_posts(linked, counts):
    params, _, _, _ = linked
    estimate = users.shift_share(counts, n_boot=N_BOOT, seed=1).set_index("part")
    truth = synth.shift_share_truth(params, str(estimate["split_month"].iloc[0]))
    for part in ("change", "within users", "who posts"):
        low, high = estimate.loc[part, ["boot_low", "boot_high"]]
        assert low <= truth[part] <= high, (part, truth[part], low, high)
    # Both parts are planted, not zero: later cohorts are more NSFW-prone and users' own share rises.
    assert truth["within users"] > 0.02 and truth["who posts"] > 0.02, truth
    assert truth["users_in_both"] == estimate["users_in_both"].iloc[0]


def test_the_nsfw_share_by_month_scatters_around_the_planted_path_as_users_allow(linked, counts):
    _, truth, _, _ = linked
    assert_monthly_coverage(counts, truth["nsfw_share_by_month"], N_BOOT)
    overall = users.cluster_bootstrap_shares(counts, n_boot=N_BOOT, seed=1).iloc[0]
    assert overall["boot_low"] <= truth["nsfw_share_overall"] <= overall["boot_high"]


# --------------------------------------------------------------------------- real-person adapters
def _images_with_calls(paths: RunPaths) -> pd.DataFrame:
    """Processed images with month, whether every adapter call resolved to one model, and whether
    a resolved call (per the link table) names a real-person model."""
    images = db.read_table(paths.table("processed", "images"),
                           columns=["image_id", "created_at", "user_hash", "is_nsfw_r", "n_lora", "prompt"]).to_pandas()
    models = pq.read_table(paths.table("interim", "models")).to_pandas()
    real = set(pq.read_table(paths.table("processed", "models")).to_pandas()
               .query("is_real_person == True")["model_id"])
    calls = images[["image_id", "prompt"]].assign(
        name=images["prompt"].fillna("").str.findall(r"<lora:([^:>]+):")).explode("name").dropna(subset=["name"])
    status = link.resolve_names(calls["name"], link.name_index(models)).set_index("name")["status"]
    unresolved = set(calls.loc[calls["name"].map(status) != "resolved", "image_id"])
    links = pq.read_table(paths.links).to_pandas()
    person = set(links.loc[(links["kind"] == "adapter") & links["model_id"].isin(real), "image_id"])
    return images.assign(month=images["created_at"].dt.strftime("%Y-%m"),
                         all_resolved=~images["image_id"].isin(unresolved),
                         uses_person=images["image_id"].isin(person))


def test_the_real_person_adapter_odds_ratio_adjusted_for_user_and_month_recovers_the_planted_one(linked):
    """Among adapter-calling images whose calls all resolve (so the exposure is known), those of
    the same user and month that call a real-person adapter have the planted NSFW odds ratio:
    the pipeline's adjusted estimate recovers it, its raw comparison does not."""
    params, truth, paths, _ = linked
    processed_images, processed_models = paths.table("processed", "images"), paths.table("processed", "models")
    strata = link_analyses.real_person_adapter_strata_by_definition(processed_images, paths.links,
                                                                    processed_models)["r"]
    adjusted = link_analyses.real_person_adapter_adjusted(strata)
    planted = truth["real_person_adapter_nsfw_odds_ratio"]
    assert planted == params.real_person_adapter_nsfw_odds_ratio
    assert adjusted["informative_strata"] > 200
    assert adjusted["ci_low"] <= planted <= adjusted["ci_high"], adjusted
    # The pipeline's restriction is the one the truth is defined on: an independent count from
    # the prompts (every call name resolved one by one) selects the same images, up to the few
    # whose two names resolve to one model (left out by the pipeline).
    images = _images_with_calls(paths)
    hand = images[(images["n_lora"] > 0) & images["all_resolved"] & images["is_nsfw_r"].notna()]
    assert 0.97 * len(hand) <= strata["n"].sum() <= len(hand), (strata["n"].sum(), len(hand))
    assert strata["n_adapter"].sum() <= hand["uses_person"].sum()
    # The study's unadjusted comparison (every image, real-person adapter vs not) mixes in the
    # adapter effect and the users, and misses it.
    raw = link_analyses.nsfw_share_by_real_person_adapter(link_analyses.link_counts(
        processed_images, paths.links, processed_models))
    assert raw["or_ci_low"].iloc[0] > adjusted["ci_high"], (raw, adjusted)
    print(f"real-person adapter NSFW odds ratio: planted {planted}, adjusted {adjusted['odds_ratio']:.2f} "
          f"({adjusted['ci_low']:.2f}-{adjusted['ci_high']:.2f}), raw {raw['odds_ratio'].iloc[0]:.2f}")


def test_the_real_person_adapter_adjusted_ratio_is_not_estimable_without_both_kinds():
    strata = pd.DataFrame({"user": ["a", "b"], "month": ["2023-01"] * 2, "n": [4, 3], "k": [2, 1],
                           "n_adapter": [0, 0], "k_adapter": [0, 0]})
    assert isinstance(link_analyses.real_person_adapter_adjusted(strata), NotEstimable)
    assert isinstance(link_analyses.real_person_adapter_adjusted(strata.iloc[:0]), NotEstimable)
    # Each user only ever calls one kind: no stratum compares the two.
    apart = strata.assign(n_adapter=[4, 0], k_adapter=[2, 0])
    assert isinstance(link_analyses.real_person_adapter_adjusted(apart), NotEstimable)


def test_real_person_adapter_use_follows_its_planted_path_and_break(linked):
    params, truth, paths, _ = linked
    images = _images_with_calls(paths)
    after = images["month"] >= truth["real_person_break_month"]
    data = (images.assign(period=np.where(after, "after", "before"))
            .groupby(["user_hash", "period"]).agg(n=("uses_person", "size"), k=("uses_person", "sum"))
            .rename_axis(["user", "period"]).reset_index())
    got = users.cluster_bootstrap_shares(data, group="period", n_boot=N_BOOT, seed=1).set_index("period")
    counts = pd.Series(truth["clean_images_per_month"], dtype=float)
    share = pd.Series(truth["real_person_adapter_image_share_by_month_resolved"])
    for period, months in (("before", counts.index < params.real_person_break_month),
                           ("after", counts.index >= params.real_person_break_month)):
        planted = float((counts[months] * share[months]).sum() / counts[months].sum())
        assert got.loc[period, "boot_low"] <= planted <= got.loc[period, "boot_high"], (period, planted, got)
    # The break: the month before it and the break month, planted and seen.
    m = truth["months"].index(params.real_person_break_month)
    before, at = truth["months"][m - 1], truth["months"][m]
    no_break = truth["real_person_adapter_image_share_by_month_no_break"]
    planted_share = truth["real_person_adapter_image_share_by_month"]
    assert truth["real_person_break_level_change"] == pytest.approx(planted_share[at] - no_break[at])
    assert planted_share[at] == pytest.approx(params.real_person_break_factor * no_break[at])
    seen = images[images["month"].isin([before, at])].groupby("month")["uses_person"].mean()
    assert seen[at] < 0.7 * seen[before], seen


def test_real_person_calls_are_a_known_share_of_adapter_calls(linked):
    _, truth, paths, _ = linked
    share = link_analyses.real_person_share_of_adapter_links(paths.links, paths.table("processed", "models"))
    images = db.read_table(paths.table("processed", "images"), columns=["created_at", "n_lora"]).to_pandas()
    calls = images.groupby(images["created_at"].dt.strftime("%Y-%m"))["n_lora"].sum()
    planted = float((calls * pd.Series(truth["real_person_call_share_by_month"])[calls.index]).sum() / calls.sum())
    # Resolved links: each call resolves with the same probability whoever it names; an image
    # calling one model twice links once, which the binomial tolerance below absorbs.
    n, k = int(share.loc[0, "n"]), int(share.loc[0, "k"])
    assert abs(k / n - planted) <= 4.5 * (planted * (1 - planted) / n) ** 0.5 + 0.005, (k / n, planted)


# --------------------------------------------------------------------------- families and creators
def test_nsfw_share_by_base_model_family_covers_its_planted_value(linked):
    """The pipeline's per-family shares carry a user-bootstrap interval that covers every planted
    family share; the Wilson interval beside it (images independent) is narrower."""
    _, truth, paths, _ = linked
    processed_images = paths.table("processed", "images")
    clustered = link_analyses.family_clustered(link_analyses.family_user_cells(processed_images),
                                               n_boot=N_BOOT, seed=1)
    got = clustered[(clustered["definition"] == "r") & (clustered["month"] == link_analyses.ALL_MONTHS)
                    ].set_index("family")
    study = link_analyses.nsfw_share_by_family(link_analyses.link_counts(
        processed_images, paths.links, paths.table("processed", "models"))).set_index("family")
    planted = truth["nsfw_share_by_family"]
    assert set(got.index) == set(planted) == set(study.index)
    wilson_hits = 0
    for family, share in planted.items():
        assert got.loc[family, "share"] == pytest.approx(study.loc[family, "share"])
        assert got.loc[family, "ci_low"] == pytest.approx(study.loc[family, "ci_low"])
        assert got.loc[family, "boot_low"] <= share <= got.loc[family, "boot_high"], (family, share, got)
        wilson_hits += got.loc[family, "ci_low"] <= share <= got.loc[family, "ci_high"]
    print(f"planted family NSFW shares covered: {len(planted)}/{len(planted)} by the user bootstrap, "
          f"{wilson_hits}/{len(planted)} by the Wilson interval")
    assert (got["boot_high"] - got["boot_low"] > got["ci_high"] - got["ci_low"]).all(), got
    assert max(planted.values()) - min(planted.values()) > 0.15  # the families differ by design
    for month, shares in truth["nsfw_share_by_family_by_month"].items():
        assert set(shares) <= set(planted) and all(0 < s < 1 for s in shares.values()), month


def test_creator_concentration_of_real_person_models_covers_its_planted_value(synthetic_run):
    truth = synthetic_run.truth
    models = pq.read_table(synthetic_run.paths.table("processed", "models")).to_pandas()
    got, _ = real_person.real_person_creator_concentration(models)
    for key in ("top1_share", "top10_share", "gini"):
        expected, sd = truth[f"real_person_creator_{key}"], truth[f"real_person_creator_{key}_sd"]
        assert abs(got[key] - expected) <= 4 * sd, (key, got[key], expected, sd)
    # Planted as concentrated: the top 1% of creators make several times 1% of the models.
    assert truth["real_person_creator_top1_share"] > 5 * 0.01
    assert got["creators"] <= truth["real_person_creator_pool"]


def test_the_concentration_truth_matches_the_study_statistics():
    """The truth's own top-share and Gini formulas agree with :mod:`helpers.stats` on any counts."""
    from helpers.stats import gini, top_share

    rng = np.random.default_rng(2)
    for _ in range(5):
        counts = rng.zipf(1.6, 300).astype(float)
        mine = synth.concentration(counts)
        assert mine["top1_share"] == pytest.approx(top_share(counts, None, 0.01))
        assert mine["top10_share"] == pytest.approx(top_share(counts, None, 0.10))
        assert mine["gini"] == pytest.approx(gini(counts))


# --------------------------------------------------------------------------- the truth itself
def test_planted_shares_hold_in_expectation_over_users():
    """The calibration: the monthly NSFW and LoRA shares the users' logits give, averaged over the
    user distribution (a fresh quadrature, not the one the plan was solved on), are the planted
    ones; the conditional shares average back to them."""
    params = synth.default_params()
    plan = synth.make_plan(params)
    q = 1 - params.missing_prompt_share
    z = np.linspace(-8, 8, 4001)
    w = np.exp(-z ** 2 / 2)
    w /= w.sum()
    years = synth.cohort_years(len(plan.months))
    adapter = 1 / (1 + np.exp(-(plan.lora_logit[:, None] + params.user_adapter_propensity * z)))  # (M, Z)
    assert adapter @ w == pytest.approx(plan.lora_share, abs=1e-6)
    logit = (plan.nsfw_logit[:, None, None] + params.user_propensity_sd * z[None, None, :]
             + params.user_cohort_effect * years[None, :, None])
    share = synth.user_nsfw_share(logit, adapter[:, None, :], q, params.lora_nsfw_odds_ratio)
    got = np.einsum("mcz,mc,z->m", share, plan.cohort_mix, w)
    assert got == pytest.approx(plan.nsfw_share, abs=1e-6)
    lora = plan.lora_share
    back = (1 - q) * np.einsum("mcz,mc,z->m", 1 / (1 + np.exp(-logit)), plan.cohort_mix, w) \
        + q * (lora * plan.nsfw_share_lora + (1 - lora) * plan.nsfw_share_no_lora)
    assert back == pytest.approx(plan.nsfw_share, abs=1e-6)
