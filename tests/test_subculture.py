"""Subculture analyses: definitional markers are never findings, booru lineage over time, booru
syntax by family (planted on a constructed table: the synthetic generator does not expose it as
a truth), and the minor-coded ∧ NSFW co-occurrence (counts and shares)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import analyse, paper, schema, subculture_report
from helpers.analyse import subculture
from test_analyse import write_images


# --------------------------------------------------------------------------- definitional pairs
@pytest.fixture
def marker_images(tmp_path: Path) -> Path:
    """Sexual terms on every NSFW prompt (definitional), booru syntax on some of each side."""
    recs = ([{"level": "X", "mk_sexual": True, "mk_booru": True}] * 30
            + [{"level": "X", "mk_sexual": True}] * 10
            + [{"level": "PG", "mk_booru": True}] * 20 + [{"level": "PG"}] * 40)
    return write_images(tmp_path / "images.parquet", recs)


def test_sexual_marker_odds_ratio_is_never_a_finding(marker_images):
    by = analyse.nsfw_share_by_marker(marker_images)
    sexual = by[by["marker"] == "sexual"]
    assert set(sexual["role"]) == {"definitional"} and set(sexual["kind"]) == {"content"}
    assert sexual["odds_ratio"].isna().all() and sexual["or_ci_low"].isna().all()
    assert sexual.set_index("has_marker").loc[True, "share"] == pytest.approx(1.0)  # shares stay
    findings = analyse.marker_findings(by)
    assert "sexual" not in set(findings["marker"])
    booru = findings.set_index("marker").loc["booru"]
    # booru: 30 of 50 NSFW with the marker vs 10 of 50 without -> OR = (30/20) / (10/40) = 6
    assert booru["odds_ratio"] == pytest.approx(6.0)
    assert booru["share_with"] == pytest.approx(0.6) and booru["share_without"] == pytest.approx(0.2)


def test_definitional_and_dropped_markers_have_their_roles():
    assert schema.MARKER_DEFINITIONAL["sexual"] and schema.marker_role("sexual") == "definitional"
    assert schema.marker_role("booru") == "finding" and schema.marker_role("pony") == "finding"
    for cat in schema.MARKERS_DROPPED_ON_PROMPTS:
        assert schema.marker_role(cat) == "dropped"
    assert "sexual" not in subculture.SYNTAX_MARKERS


# --------------------------------------------------------------------------- lineage over time
def test_lineage_share_by_month_counts_lineage_families_over_both_denominators():
    family_monthly = pd.DataFrame({
        "month": ["2024-01"] * 3 + ["2024-02"] * 2,
        "family": ["SDXL", "Pony", schema.OTHER_FAMILY, "Illustrious/NoobAI", "Pony"],
        "k": [60, 30, 10, 5, 15], "n": [100, 100, 100, 20, 20]})
    out = subculture.lineage_share_by_month(family_monthly).set_index(["denominator", "month"])
    assert out.loc[("all", "2024-01"), "share"] == pytest.approx(0.3)
    assert out.loc[("known", "2024-01"), "n"] == 90
    assert out.loc[("known", "2024-01"), "share"] == pytest.approx(30 / 90)
    assert out.loc[("all", "2024-02"), "share"] == pytest.approx(1.0)
    assert (out["ci_low"] <= out["share"]).all() and (out["share"] <= out["ci_high"]).all()


# --------------------------------------------------------------------------- syntax by family
def _planted_syntax_images(path: Path, shares: dict[str, float], seed: int = 3) -> Path:
    """Images whose prompts carry booru syntax with a planted probability per base model, spread
    over 200 users and two months."""
    rng = np.random.default_rng(seed)
    bases = {"Pony": "Pony", "SDXL": "SDXL 1.0", "SD 1.x": "SD 1.5"}
    recs = []
    for family, p in shares.items():
        for i in range(3000):
            recs.append({"base_model": bases[family], "mk_booru": bool(rng.random() < p),
                         "user_hash": f"u{rng.integers(0, 200)}", "month": "2024-0" + str(1 + i % 2)})
    return write_images(path, recs)


def test_booru_syntax_share_by_family_recovers_planted_shares(tmp_path):
    planted = {"Pony": 0.8, "SDXL": 0.4, "SD 1.x": 0.5}
    images = _planted_syntax_images(tmp_path / "images.parquet", planted)
    counts = subculture.syntax_counts(images)
    out = subculture.syntax_share_by_family(counts, n_boot=200, seed=1)
    booru = out[out["marker"] == "booru"].set_index("family")
    for family, p in planted.items():
        row = booru.loc[family]
        assert row["boot_low"] <= p <= row["boot_high"], (family, row["share"])
        assert row["ci_low"] <= p <= row["ci_high"]
        assert bool(row["booru_lineage"]) == schema.is_booru_lineage(family)
    by_lineage = subculture.booru_syntax_by_lineage(counts, n_boot=200, seed=1)
    # planted: lineage 0.8 vs other (0.4 and 0.5 equally) 0.45 -> OR = 4 / (0.45/0.55)
    planted_or = (0.8 / 0.2) / (0.45 / 0.55)
    assert by_lineage["boot_low"] <= planted_or <= by_lineage["boot_high"]
    assert by_lineage["mh_ci_low"] > 1 and by_lineage["informative_strata"] > 0
    assert "more often than" in subculture_report.subculture_sentence(by_lineage)


# The formulation of syntax_counts before its faster rewrite, kept here so the rewrite is proven
# to count the same.
def _syntax_counts_reference(images: Path) -> pd.DataFrame:
    from helpers import db
    from helpers.analyse.common import month_sql, shared_text

    parts = ", ".join(f"count_if({schema.marker_column(m)}) AS k_{m}" for m in subculture.SYNTAX_MARKERS)
    return shared_text(db.connection_or_default(None).execute(f"""
        SELECT coalesce(user_hash, 'image:' || CAST(image_id AS VARCHAR)) AS user,
               {month_sql()} AS month, {schema.base_model_family_sql('base_model')} AS family,
               count(*) AS n, {parts}
        FROM {db.table_sql(images)} WHERE prompt IS NOT NULL
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""").df(), ["user", "month", "family"])


def test_syntax_counts_equal_the_reference_formulation_on_tricky_tables(tmp_path):
    rng = np.random.default_rng(16)
    bases = [None, "Pony", "pony diffusion v6", "Ponyo", "SDXL 1.0", "SDXL Lightning", "sd3", " SD 3.5",
             "SD 1.5", "SD 2.1 768", "Illustrious", "NoobAI-XL", "Flux.1 D", "Other", "", "XL"]
    recs = []
    for i in range(500):
        when = (pd.Timestamp("2023-12-31 21:00", tz="America/Sao_Paulo")
                + pd.Timedelta(hours=int(rng.integers(0, 24 * 70))))
        recs.append({"base_model": bases[int(rng.integers(0, len(bases)))],
                     "user_hash": None if i % 7 == 0 else f"u{int(rng.integers(0, 20))}",
                     "created_at": when.to_pydatetime(),
                     "prompt": None if i % 11 == 0 else "1girl, score_9",
                     "mk_booru": [True, False, None][int(rng.integers(0, 3))],
                     "mk_pony": [True, False, None][int(rng.integers(0, 3))]})
    images = write_images(tmp_path / "images.parquet", recs)
    got = subculture.syntax_counts(images)
    want = _syntax_counts_reference(images)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["family"].nunique() >= 6 and got["month"].nunique() == 3 and len(got) > 100


def test_booru_syntax_sentence_flips_with_the_planted_effect(tmp_path):
    images = _planted_syntax_images(tmp_path / "images.parquet", {"Pony": 0.2, "SDXL": 0.7, "SD 1.x": 0.7})
    by_lineage = subculture.booru_syntax_by_lineage(subculture.syntax_counts(images), n_boot=100, seed=1)
    assert by_lineage["mh_ci_high"] < 1
    assert "less often than" in subculture_report.subculture_sentence(by_lineage)


def test_syntax_by_lineage_not_estimable_without_lineage_prompts(tmp_path):
    images = _planted_syntax_images(tmp_path / "images.parquet", {"SDXL": 0.4, "SD 1.x": 0.5})
    result = subculture.booru_syntax_by_lineage(subculture.syntax_counts(images), n_boot=20)
    assert isinstance(result, analyse.NotEstimable)
    assert "not estimable" in subculture_report.subculture_sentence(result)


# --------------------------------------------------------------------------- minor-coded ∧ NSFW
def test_minor_nsfw_by_month_counts_and_shares(tmp_path):
    recs = ([{"month": "2024-01", "level": "X", "mk_minor": True}] * 3
            + [{"month": "2024-01", "level": "PG", "mk_minor": True}] * 1
            + [{"month": "2024-01", "level": "PG"}] * 96
            + [{"month": "2024-02", "level": "PG"}] * 50
            + [{"month": "2024-02", "level": "X", "prompt": None, "mk_minor": None}] * 5)
    images = write_images(tmp_path / "images.parquet", recs)
    out = subculture.minor_nsfw_by_month(images).set_index(["measure", "month"])
    assert out.loc[("of_prompts", "2024-01"), "k"] == 3 and out.loc[("of_prompts", "2024-01"), "n"] == 100
    assert out.loc[("of_minor", "2024-01"), "share"] == pytest.approx(0.75)
    assert out.loc[("of_prompts", "2024-02"), "n"] == 50  # images without a prompt are not counted
    assert np.isnan(out.loc[("of_minor", "2024-02"), "share"])  # no minor-coded prompt that month
    totals = subculture.minor_nsfw_totals(subculture.minor_nsfw_by_month(images))
    assert (totals["minor"], totals["minor_nsfw"], totals["prompts"]) == (4, 3, 150)
    sentence = subculture_report.minor_nsfw_sentence(totals, "r")
    assert sentence.startswith("3 of the 4 prompts") and "75.0%" in sentence


# --------------------------------------------------------------------------- through the results
def test_paper_numbers_carry_no_definitional_odds_ratio(synthetic_run):
    paths = synthetic_run.paths
    results = analyse.image_results(paths.table("processed", "images"), boot_replicates=50)
    numbers = paper.image_numbers(results)
    assert not [k for k in numbers if "sexual" in k and "_or" in k], "sexual-terms OR reported"
    for marker in subculture.SYNTAX_MARKERS:
        assert f"marker_nsfw_or_{marker}" in numbers
    assert numbers["minor_prompts"]["value"] == 0  # the generator writes no minor-coded terms
    assert numbers["minor_nsfw_sentence"]["text"].startswith("No prompt")
    lineage = results.lineage_monthly
    assert set(lineage["denominator"]) == {"all", "known"}
    assert isinstance(results.lineage_models_monthly, analyse.NotEstimable)  # no models given
    syntax = results.syntax_by_family
    pony = syntax[(syntax["marker"] == "pony") & (syntax["family"] == "Pony")]
    assert pony["share"].iloc[0] > 0.9  # the generator writes score tokens into Pony prompts


def test_complete_separation_gives_reasons_not_infinite_ratios(tmp_path):
    """Every lineage prompt in booru syntax and no other one: the within-stratum odds ratio is
    infinite, so it is reported as not estimable (never as 'inf' or 'nan' in the paper)."""
    images = _planted_syntax_images(tmp_path / "images.parquet", {"Pony": 1.0, "SDXL": 0.0})
    by_lineage = subculture.booru_syntax_by_lineage(subculture.syntax_counts(images), n_boot=50)
    assert isinstance(by_lineage["mh_odds_ratio"], analyse.NotEstimable)
    sentence = subculture_report.subculture_sentence(by_lineage)
    assert "inf" not in sentence and "nan" not in sentence.lower()
    numbers = {k: v for k, v in paper.entry(by_lineage["mh_ci_high"], "float", 2).items()}
    assert numbers["value"] is None and numbers["reason"]
