"""Moderation rules: declared as parameters, parsed safely, and simulated with removed shares
that are known by construction (planted-truth tables written here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import interventions_report, parameters, plots
from helpers.analyse import interventions as iv
from helpers.analyse.results import Results
from helpers.paths import RunPaths
from helpers.stats import NotEstimable

VALIDATION = {"true_positives": 850, "condition_positives": 1000, "true_negatives": 9700,
              "condition_negatives": 10000}


# --------------------------------------------------------------------------- planted tables
def write_tables(folder: Path, images: pd.DataFrame, models: pd.DataFrame,
                 links: pd.DataFrame) -> tuple[Path, Path, Path]:
    """The columns the interventions read, as Parquet files (images, links, models)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, frame in (("images", images), ("links", links), ("models", models)):
        path = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        out.append(path)
    return tuple(out)


def planted(folder: Path, users: int = 60, seed: int = 3, source: str = "platform",
            truth_share: float = 0.25, se: float = 1.0, sp: float = 1.0, n_models: int = 400):
    """Images spread over ``users``, each using one adapter (or none); adapters truly depict a
    real person with ``truth_share`` and are labelled with sensitivity ``se`` and specificity
    ``sp`` (``source`` says whether the label is the platform's flag or a prediction). Returns
    the three files, the frames and the true real-person flag of each model."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_models + 1)
    truth = rng.random(n_models) < truth_share
    labelled = np.where(truth, rng.random(n_models) < se, rng.random(n_models) >= sp)
    models = pd.DataFrame({"model_id": ids, "is_real_person": labelled,
                           "real_person_source": source, "is_adapter": True,
                           "depicted_gender": np.where(labelled, "female", "unknown"),
                           "is_nsfw_r": rng.random(n_models) < 0.5, "is_nsfw_x": False,
                           "is_nsfw_platform": False, "mk_minor": False, "mk_sexual": False})
    n = users * 40
    image_ids = np.arange(1, n + 1)
    adapter = np.where(rng.random(n) < 0.6, rng.integers(1, n_models + 1, n), 0)
    images = pd.DataFrame({
        "image_id": image_ids, "user_hash": [f"u{u}" for u in rng.integers(0, users, n)],
        "created_at": pd.Timestamp("2024-01-15", tz="UTC"),
        "is_nsfw_r": rng.random(n) < 0.5, "is_nsfw_x": False, "is_nsfw_platform": False,
        "n_lora": (adapter > 0).astype("int32"), "mk_minor": rng.random(n) < 0.1,
        "mk_sexual": False, "mk_real_person": False, "mk_booru": False, "mk_pony": False})
    links = pd.DataFrame({"image_id": image_ids[adapter > 0], "model_id": adapter[adapter > 0],
                          "kind": "adapter", "how": "file_name"})
    files = write_tables(folder, images, models, links)
    return files, images, models, links, pd.Series(truth, index=ids)


RULES = [
    {"name": "block_nsfw_rp", "label": "Block NSFW with a real-person adapter", "unit": "image",
     "predicate": "nsfw and real_person_adapter"},
    {"name": "delist_rp", "label": "De-list real-person adapters", "unit": "model",
     "predicate": "real_person and adapter"},
    {"name": "block_nsfw_minor", "label": "Block NSFW minor-coded", "unit": "image",
     "predicate": "nsfw and minor_marker"},
    {"name": "block_nsfw", "label": "Block NSFW", "unit": "image", "predicate": "nsfw"},
    {"name": "sfw_not_minor", "label": "Block SFW images without minor markers", "unit": "image",
     "predicate": "not (nsfw or minor_marker)"},
]


def run_rules(files, rules=RULES, validation=None, n_boot=200, seed=1):
    return iv.intervention_results(*files, rules=rules, events=[], validation=validation,
                                   n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------- planted truth
def test_removed_shares_equal_what_was_planted(tmp_path):
    """With exact (platform) labels every share is a count fixed by construction."""
    files, images, models, links, _ = planted(tmp_path)
    results = run_rules(files).rules.set_index("name")
    rp_models = set(models.loc[models["is_real_person"], "model_id"])
    uses_rp = images["image_id"].isin(links.loc[links["model_id"].isin(rp_models), "image_id"])
    nsfw, minor = images["is_nsfw_r"], images["mk_minor"]
    harm_rp, harm_minor = nsfw & uses_rp, nsfw & minor
    harm = harm_rp | harm_minor
    removed = {"block_nsfw_rp": nsfw & uses_rp, "delist_rp": uses_rp,
               "block_nsfw_minor": nsfw & minor, "block_nsfw": nsfw, "sfw_not_minor": ~(nsfw | minor)}
    for name, gone in removed.items():
        row = results.loc[name]
        assert row["images_removed"] == gone.sum()
        assert row["real_person_nsfw_removed"] == pytest.approx((gone & harm_rp).sum() / harm_rp.sum())
        assert row["minor_nsfw_removed"] == pytest.approx((gone & harm_minor).sum() / harm_minor.sum())
        assert row["any_harm_removed"] == pytest.approx((gone & harm).sum() / harm.sum())
        assert row["collateral"] == pytest.approx((gone & ~harm).sum() / (~harm).sum())
        assert row["users_touched"] == images.loc[gone, "user_hash"].nunique()
        for column in ("real_person_nsfw_removed", "collateral"):
            assert row[f"{column}_low"] <= row[column] + 1e-12 <= row[f"{column}_high"] + 2e-12
    # planted structure: the targeted rule removes all its harm and nothing else
    assert results.loc["block_nsfw_rp", "real_person_nsfw_removed"] == 1.0
    assert results.loc["block_nsfw_rp", "collateral"] == 0.0
    assert results.loc["sfw_not_minor", "any_harm_removed"] == 0.0
    assert results.loc["delist_rp", "models_delisted"] == len(rp_models)
    assert results.loc["delist_rp", "models_touched"] == len(rp_models)
    assert results.loc["delist_rp", "collateral"] > 0  # SFW images of real-person adapters go too


def test_label_error_is_carried_and_recovers_the_true_share(tmp_path):
    """Predicted labels with known sensitivity and specificity: taken as true, the targeted rule
    seems to remove every real-person ∧ NSFW image; corrected, its interval covers the share of
    truly real-person ∧ NSFW images it removes (computed from the planted truth)."""
    se, sp = VALIDATION["true_positives"] / 1000, VALIDATION["true_negatives"] / 10000
    files, images, models, links, truth = planted(tmp_path, users=300, source="predicted",
                                                 se=se, sp=sp, n_models=3000, seed=11)
    results = run_rules(files, rules=RULES[:1], validation=VALIDATION, n_boot=300)
    row = results.rules.iloc[0]
    true_rp = set(truth.index[truth])
    labelled_rp = set(models.loc[models["is_real_person"], "model_id"])
    linked = images.merge(links[["image_id", "model_id"]], on="image_id", how="left")
    truly = linked["is_nsfw_r"] & linked["model_id"].isin(true_rp)
    gone = linked["is_nsfw_r"] & linked["model_id"].isin(labelled_rp)
    planted_share = (truly & gone).sum() / truly.sum()
    assert row["real_person_nsfw_removed_as_labelled"] == 1.0
    assert planted_share < 0.95
    assert row["real_person_nsfw_removed_low"] <= planted_share <= row["real_person_nsfw_removed_high"]
    assert abs(row["real_person_nsfw_removed"] - planted_share) < 0.05
    assert "carried" in results.label_error["real_person_label"]


def test_platform_labels_carry_no_label_error(tmp_path):
    files, *_ = planted(tmp_path)
    results = run_rules(files, validation=VALIDATION)
    assert results.label_error["real_person_label"].startswith("not needed")
    rules = results.rules
    assert (rules["real_person_nsfw_removed"] == rules["real_person_nsfw_removed_as_labelled"]).all()
    assert "not yet carried" in results.label_error["minor_marker"]


def test_marker_precision_is_carried_when_the_report_has_it(tmp_path):
    files, *_ = planted(tmp_path)
    report = {"tables": {"marker_precision": {"columns": ["category", "hits", "correct"],
                                              "rows": [["minor", 50, 40]]}}}
    assert iv.marker_precision_counts(report) == (40, 50)
    assert iv.marker_precision_counts({"tables": {}}) is None
    results = iv.intervention_results(*files, rules=RULES, events=[], report=report, n_boot=100)
    assert results.label_error["minor_marker_precision"] == pytest.approx(0.8)
    # a marker right 80% of the time: fewer images truly harmful, the harm size shrinks
    harm = results.harm.set_index("category")
    assert harm.loc["minor_nsfw", "images_corrected"] == pytest.approx(0.8 * harm.loc["minor_nsfw", "images"])


# --------------------------------------------------------------------------- rules are parameters
def test_rule_added_in_a_yaml_appears_in_the_table(tmp_path):
    from helpers.__main__ import _load_yaml

    extra = {"name": "delist_female_real_person", "label": "De-list real women's adapters",
             "unit": "model", "predicate": "real_person and female"}
    profile = tmp_path / "mine.yaml"
    lines = ["moderation_rules:"] + [
        f"  - {{name: {r['name']}, label: {r['label']}, unit: {r['unit']}, predicate: {r['predicate']}}}"
        for r in [*parameters.default("moderation_rules"), extra]]
    profile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    params = parameters.parse_parameters(_load_yaml(str(profile)))
    assert params["moderation_rules"][-1] == extra
    files, *_ = planted(tmp_path / "t")
    results = run_rules(files, rules=params["moderation_rules"], n_boot=50)
    assert list(results.rules["name"]) == [r["name"] for r in params["moderation_rules"]]
    assert results.rules.iloc[-1]["label"] == extra["label"]
    table = interventions_report.intervention_rule_table(results.rules)
    assert extra["label"] in set(table["label"])


def test_rules_from_the_command_line_are_yaml_text():
    text = "[{name: only, label: Only rule, unit: image, predicate: nsfw}]"
    assert parameters.parse_parameters({"moderation_rules": text})["moderation_rules"] == [
        {"name": "only", "label": "Only rule", "unit": "image", "predicate": "nsfw"}]


def test_every_profile_declares_the_default_rules():
    import yaml

    from helpers.paths import repo_root

    for name in ("sample", "full", "civ40k"):
        profile = yaml.safe_load((repo_root() / "params" / f"{name}.yaml").read_text(encoding="utf-8"))
        assert profile["moderation_rules"] == parameters.default("moderation_rules"), name
        synthetic = [e for e in profile["policy_events"] if e.get("synthetic")]
        assert bool(synthetic) == (name == "sample"), name


@pytest.mark.parametrize("rule, match", [
    ({"predicate": "nsfw and DROP"}, "unknown image flag 'DROP'.*valid image flags: nsfw"),
    ({"predicate": "nsfw; DROP TABLE images"}, "unexpected character ';'"),
    ({"predicate": "real_person and nsfw"}, "unknown image flag 'real_person'"),
    ({"unit": "model", "predicate": "minor_marker or real_person_adapter"},
     "unknown model flag 'real_person_adapter'"),
    ({"predicate": "nsfw and (minor_marker"}, "ends too early"),
    ({"predicate": "nsfw minor_marker"}, "unexpected 'minor_marker'"),
    ({"predicate": ""}, "empty predicate"),
    ({"unit": "user"}, "unknown unit 'user'"),
    ({"name": "Bad Name"}, "name must be"),
])
def test_bad_rule_is_refused_with_a_clear_error(rule, match):
    raw = {"name": "r", "label": "A rule", "unit": "image", "predicate": "nsfw", **rule}
    with pytest.raises(parameters.ParameterError, match=match):
        parameters.parse_parameters({"moderation_rules": [raw]})


def test_malformed_rule_lists_are_refused():
    with pytest.raises(parameters.ParameterError, match="missing predicate"):
        parameters.parse_parameters({"moderation_rules": [{"name": "a", "label": "A", "unit": "image"}]})
    with pytest.raises(parameters.ParameterError, match="unknown key"):
        parameters.parse_parameters({"moderation_rules": [
            {"name": "a", "label": "A", "unit": "image", "predicate": "nsfw", "sql": "x"}]})
    with pytest.raises(parameters.ParameterError, match="used twice"):
        parameters.parse_parameters({"moderation_rules": [
            {"name": "a", "label": "A", "unit": "image", "predicate": "nsfw"}] * 2})
    with pytest.raises(parameters.ParameterError, match="not a valid list"):
        parameters.parse_parameters({"moderation_rules": "nsfw"})


def test_predicate_sql_uses_only_declared_expressions():
    tree = iv.parse_predicate("not nsfw or (minor_marker and adapter)", "image")
    assert tree == ("or", ("not", ("flag", "nsfw")),
                    ("and", ("flag", "minor_marker"), ("flag", "adapter")))
    sql = iv.predicate_sql(tree, {"nsfw": "A", "minor_marker": "B", "adapter": "C"})
    assert sql == "((NOT (A)) OR ((B) AND (C)))"


# --------------------------------------------------------------------------- results object
def test_results_save_load_and_figure(tmp_path):
    files, *_ = planted(tmp_path / "t")
    results = run_rules(files, n_boot=50)
    assert isinstance(results, Results) and isinstance(results.enforcement, NotEstimable)
    back = iv.InterventionResults.load(results.save(tmp_path / "saved"))
    pd.testing.assert_frame_equal(back.rules, results.rules)
    assert back.label_error == results.label_error
    fig = plots.draw("fig14_interventions", back, synthetic=True)
    assert [ax.get_title() for ax in fig.axes] == [t for _, t in plots.INTERVENTION_PANELS]
    numbers = interventions_report.intervention_numbers(back)
    assert numbers["rule_block_nsfw_rp_real_person_nsfw_removed"]["value"] == 1.0
    assert numbers["interventions_rules"]["value"] == len(RULES)


def test_empty_images_are_not_estimable(tmp_path):
    files, images, models, links, _ = planted(tmp_path / "t")
    empty = write_tables(tmp_path / "e", images.iloc[:0], models, links.iloc[:0])
    results = run_rules(empty, n_boot=20)
    assert isinstance(results.rules, NotEstimable) and isinstance(results.harm, NotEstimable)


def test_without_links_model_rules_remove_nothing(tmp_path):
    files, *_ = planted(tmp_path / "t")
    results = iv.intervention_results(files[0], None, None, rules=RULES, events=[], n_boot=20)
    rules = results.rules.set_index("name")
    assert rules.loc["delist_rp", "images_removed"] == 0
    assert np.isnan(rules.loc["block_nsfw_rp", "real_person_nsfw_removed"])
    assert rules.loc["block_nsfw", "images_removed"] > 0
