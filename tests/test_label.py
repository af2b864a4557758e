"""Labelling: lexicon matching, NSFW definitions, real-person rules and classifier, depicted
gender, evaluation helpers, and the SQL path agreeing with the pandas path (no real data)."""
from __future__ import annotations

import json
import math
import random

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import db
from helpers import label, schema, stats
from helpers.paths import RunPaths

LEX = label.load_lexicon()


def markers(text: str | None) -> set[str]:
    """The marker categories found in one prompt."""
    return {c for c, hit in label.match_markers(text, LEX).items() if hit}


# --------------------------------------------------------------------------- lexicon
def test_lexicon_file_is_versioned_and_complete():
    assert LEX.version == label.LEXICON_VERSION == 2
    assert tuple(LEX.categories) == schema.MARKER_CATEGORIES
    for cat, terms in LEX.categories.items():
        assert terms, cat
        assert len(set(terms)) == len(terms), f"duplicate terms in {cat}"
        assert all(t == t.lower() for t in terms), f"{cat}: write terms in lower case"


@pytest.mark.parametrize("category", schema.MARKER_CATEGORIES)
def test_every_lexicon_term_matches_itself_in_prompt_spellings(category):
    for term in LEX.categories[category]:
        for spelling in (term, term.upper(), term.replace(" ", "_"), f"({term}:1.2)", f"[{term}]",
                         f"a photo, {term}, detailed"):
            assert category in markers(spelling), (category, spelling)


@pytest.mark.parametrize("prompt,expected", [
    ("1girl, solo, looking at viewer", {"booru"}),
    ("1 girl standing", {"booru"}),
    ("1_girl", {"booru"}),
    ("2girls", {"booru"}),
    ("masterpiece, best quality, portrait of a woman", set()),      # generic words are not booru
    ("Score_9, score_8_up, score_7_up", {"pony"}),
    ("score 8 up, source_anime", {"pony"}),
    ("SCORE_9", {"pony"}),
    ("rating_explicit", {"sexual"}),                                 # a rating states content
    ("1girl, large breasts, thighhighs", {"booru"}),                 # content tags are not booru
    ("flat chest", set()),
    ("she scored 9 points", set()),                                  # whole words only
    ("(nude:1.3), beach", {"sexual"}),
    ("((NSFW)), [naked]", {"sexual"}),
    ("{pussy}", {"sexual"}),
    ("cucumber, document, scum", set()),                             # no substring matches
    ("loli", {"minor"}),
    ("a little girl in a park", {"minor"}),
    ("photo of a celebrity, instagram model", {"real_person"}),
    ("real_person", {"real_person"}),
    ("<lora:nude_celebrity_v2:0.7> a landscape", set()),            # adapter names are not prompt words
    ("", set()),
])
def test_prompt_markers(prompt, expected):
    assert markers(prompt) == expected


def test_none_prompt_gives_none_markers():
    assert set(label.match_markers(None, LEX).values()) == {None}


@pytest.mark.parametrize("prompt,n", [
    ("<lora:foo_v2:0.7>", 1),
    ("<LORA:Foo:1>", 1),
    ("<lora:a:1>, <lyco:b:0.5>, <LyCo:c:1.1>", 3),
    ("<lora:no_weight>", 1),
    ("<hypernet:x:1> lora: loose text", 1),   # every adapter kind counts; bare "lora:" does not
    ("<embedding:x> <lora :y:1> < locon:z>", 2),
    ("<lora:a<b>", 0),
    ("", 0),
    (None, None),
])
def test_adapter_calls_counted(prompt, n):
    assert label.count_adapter_calls(prompt) == n


@pytest.mark.parametrize("text,expected", [
    ("Score_9, (nude:1.3)", "score 9 nude"),
    ("<lora:foo_v2:0.7> 1girl", "1girl"),
    ("[word] {other}  |  a_b", "word other a b"),
    ("(masterpiece:-0.5)", "masterpiece"),
    ("日本語 text", "text"),
    (None, None),
])
def test_normalise_text(text, expected):
    assert label.normalise_text(text) == expected


def test_term_regex_allows_digit_letter_spacing():
    assert label.term_regex("1girl") == "1 ?girl"
    assert label.term_regex("score_8_up") == "score ?8 ?up"


# --------------------------------------------------------------------------- SQL = pandas
_NOISE = ["", " ", ",", "(", ")", ":1.2", "_", "[", "]", "<lora:x_y:0.5>", "<LYCO:Z:1>", "é", "日本",
          "1", "girl", "score", "9", "up", "nude", "\n", "\t", "—", "🙂", "scored", "solo", "loli"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_NOISE + [t for ts in LEX.categories.values() for t in ts[:8]]),
                max_size=12).map("".join))
def test_sql_and_python_normalise_and_match_identically(text):
    con = duckdb.connect()
    sql_norm = con.execute(f"SELECT {label.normalised_text_sql('?')}", [text]).fetchone()[0]
    assert sql_norm == label.normalise_text(text)
    for cat in schema.MARKER_CATEGORIES:
        pattern = label.category_regex(LEX.categories[cat])
        sql_hit = con.execute("SELECT regexp_matches(?, ?)", [sql_norm, pattern]).fetchone()[0]
        assert sql_hit == label.match_markers(text, LEX)[cat], (cat, text)
    n_sql = con.execute(f"SELECT {label.adapter_calls_sql('?')}", [text]).fetchone()[0]
    assert n_sql == label.count_adapter_calls(text)


def _interim_images(prompts: list[str | None], levels: list[int], flags: list[bool | None]) -> pa.Table:
    """A small interim images table with the canonical schema."""
    n = len(prompts)
    cols = {
        "image_id": list(range(1, n + 1)),
        "created_at": pd.date_range("2023-01-01", periods=n, freq="h", tz="UTC").to_pydatetime().tolist(),
        "browsing_level": levels,
        "nsfw_level": [schema.level_name(v) for v in levels],
        "nsfw": flags, "prompt": prompts,
    }
    arrays = []
    target = schema.arrow_schema("images", "interim")
    for field in target:
        values = cols.get(field.name, [None] * n)
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=target)


TRICKY_PROMPTS = [
    "1girl, solo, (nude:1.3), <lora:foo_v2:0.7>", "1 girl standing", "Score_9, score 8 up, <LORA:Foo:1>",
    None, "", "a landscape", "loli", "celebrity photo", "<lyco:x:1><lora:y:1> [naked]", "日本語のみ",
    "scored 9 out of 10", "rating_explicit, source_pony", "(masterpiece:1.2), best quality, woman",
]


def test_label_images_sql_path_equals_pandas_path(tmp_path):
    paths = RunPaths(tmp_path / "run").ensure()
    n = len(TRICKY_PROMPTS)
    levels = [list(schema.BROWSING_LEVELS)[i % 6] for i in range(n)]
    flags = [None if i % 5 == 0 else bool(i % 2) for i in range(n)]
    table = _interim_images(TRICKY_PROMPTS, levels, flags)
    pq.write_table(table, paths.table("interim", "images"))
    counts = label.label_images(paths)
    out = db.read_table(paths.table("processed", "images"))
    schema.validate_schema(out.schema, "images", "processed")
    for f in schema.IMAGE_LABEL_FIELDS:
        assert out.schema.field(f.name).type == f.type, f.name
    sql = out.to_pandas()
    expected = label.label_image_frame(table.to_pandas())
    for col in expected.columns:
        got = sql[col].astype(object).where(sql[col].notna(), None).tolist()
        want = expected[col].astype(object).where(expected[col].notna(), None).tolist()
        assert got == want, col
    assert counts["rows"] == n and counts["with_prompt"] == sum(p is not None for p in TRICKY_PROMPTS)
    assert counts["mk_booru"] == int(expected["mk_booru"].fillna(False).sum())
    assert counts["lora_calls"] == int(expected["n_lora"].fillna(0).sum())
    assert not paths.table("processed", "images").with_name("images.parquet.tmp").exists()


def test_label_images_without_interim_table_skips_and_removes_stale_output(tmp_path):
    paths = RunPaths(tmp_path / "run").ensure()
    stale = paths.table("processed", "images")
    stale.write_bytes(b"old")
    assert label.label_images(paths) == {"rows": None}
    assert not stale.exists()


# --------------------------------------------------------------------------- NSFW definitions
def test_image_nsfw_definitions_follow_schema_bits():
    frame = pd.DataFrame({"browsing_level": list(schema.BROWSING_LEVELS), "nsfw": [None, False, True, True, True, True],
                          "prompt": [None] * 6})
    out = label.label_image_frame(frame)
    names = [schema.BROWSING_LEVELS[b] for b in schema.BROWSING_LEVELS]
    r_or_more = names[names.index("R"):]
    x_or_more = names[names.index("X"):]
    assert out["is_nsfw_r"].tolist() == [n in r_or_more for n in names]
    assert out["is_nsfw_x"].tolist() == [n in x_or_more for n in names]
    assert out["is_nsfw_platform"].isna().tolist() == [True] + [False] * 5


def test_model_nsfw_definitions_and_unknown_levels():
    models = pd.DataFrame({"nsfw_level": ["PG", "R", "X", "Blocked", None, "nonsense", 6],
                           "nsfw": [False, True, True, True, None, False, True]})
    out = label.model_nsfw_labels(models)
    assert out["is_nsfw_r"].tolist()[:4] == [False, True, True, True]
    assert out["is_nsfw_x"].tolist()[:4] == [False, False, True, True]
    assert out["is_nsfw_r"].isna().tolist()[4:6] == [True, True]
    assert bool(out["is_nsfw_r"].iloc[6]) and not bool(out["is_nsfw_x"].iloc[6])  # bitmask 6 = PG13|R
    assert out["is_nsfw_platform"].isna().tolist() == [False] * 4 + [True, False, False]


def test_is_adapter_type():
    types = pd.Series(["LORA", "LoCon", "LyCORIS", "DoRA", "Hypernetwork", "TextualInversion",
                       "Checkpoint", "Controlnet", "Poses", "VAE", None])
    assert label.is_adapter_type(types).tolist()[:10] == [True] * 6 + [False] * 4
    assert pd.isna(label.is_adapter_type(types).iloc[10])


def test_tag_markers_match_tag_by_tag():
    tags = pd.Series([["Real Person", "woman"], ["real", "person"], ["1girl"], ["score_9"], [], None],
                     index=[10, 11, 12, 13, 14, 15])
    out = label.tag_markers(tags, LEX)
    assert out.loc[10, "mk_real_person"] and not out.loc[11, "mk_real_person"]
    assert out.loc[12, "mk_booru"] and out.loc[13, "mk_pony"]
    assert not out.loc[14].any()
    assert out.loc[15].isna().all()


# --------------------------------------------------------------------------- real-person rules
def models_frame(rows: list[dict]) -> pd.DataFrame:
    """Canonical-looking models from partial rows (missing text columns are empty)."""
    base = {"model_id": 0, "name": "x", "type": "LORA", "nsfw": False, "nsfw_level": None, "poi": None,
            "tags": [], "description": None, "trigger_words": []}
    frame = pd.DataFrame([{**base, "model_id": i + 1, **r} for i, r in enumerate(rows)])
    frame["poi"] = frame["poi"].astype("boolean")
    return frame


@pytest.mark.parametrize("row,cue", [
    ({"tags": ["celebrity"]}, "tag_real_person_cue"),
    ({"tags": ["Instagram Model"]}, "tag_real_person_cue"),
    ({"name": "Someone (Instagram Model)"}, "name_real_person_cue"),
    ({"description": "An embedding of the American actress."}, "description_real_person_cue"),
    ({"name": "Jennifer Smithson LoRA v2"}, "name_is_personal_name"),
    ({"name": "JenniferSmithson"}, "name_is_personal_name"),
    ({"name": "Jennifer"}, "name_first_name_known"),
    ({"trigger_words": ["photo of abc person"]}, "trigger_word_person"),
    ({"name": "小明 LoRA", "tags": ["photorealistic"]}, "cjk_name_photo_tags"),
    ({"tags": ["realistic"]}, "photo_tag"),
    ({"tags": ["person"]}, "person_tag"),
    ({"tags": ["anime"]}, "fiction_tag"),
    ({"tags": ["character"]}, "character_tag"),
    ({"tags": ["style"]}, "style_or_concept_tag"),
])
def test_each_rule_cue_fires_on_its_evidence_and_not_on_a_blank_model(row, cue):
    features = label.real_person_rule_features(models_frame([row, {"name": "zzqx"}]), LEX)
    assert features.loc[0, cue], cue
    assert not features.loc[1].any()


def test_description_disclaimers_and_creator_links_are_not_cues():
    rows = [{"description": "Do not use this model on real people or celebrities."},
            {"description": "Follow me on Instagram and TikTok!"}]
    features = label.real_person_rule_features(models_frame(rows), LEX)
    assert not features["description_real_person_cue"].any()


def test_rule_score_orders_evidence():
    rows = [{"name": "Jennifer Smithson", "tags": ["celebrity", "woman", "photorealistic"]},
            {"name": "Jennifer Smithson", "tags": ["woman"]},
            {"name": "Neon Glow Style", "tags": ["style", "anime"]}]
    score = label.real_person_rule_score(label.real_person_rule_features(models_frame(rows), LEX))
    assert score.between(0, 1).all()
    assert score[0] > label.RULE_THRESHOLD > score[2]
    assert score[0] > score[1] > score[2]


def test_calibrate_rule_threshold_finds_the_separating_cut():
    scores = pd.Series([0.1, 0.2, 0.35, 0.7, 0.8, 0.9])
    truth = pd.Series([False, False, False, True, True, True])
    assert 0.35 < label.calibrate_rule_threshold(scores, truth) <= 0.7


def _synthetic_people(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Models whose label is planted in their text (persons vs styles), with some label noise."""
    rng = random.Random(seed)
    rows, truth = [], []
    for i in range(n):
        person = rng.random() < 0.3
        if person:
            rows.append({"name": f"Model{i} likeness", "tags": ["celebrity", "woman"], "type": "LORA"})
        else:
            rows.append({"name": f"Model{i} style", "tags": ["style", rng.choice(["anime", "painting"])]})
        truth.append(person)
    frame = models_frame(rows)
    frame["poi"] = pd.array(truth, dtype="boolean")
    return frame, np.array(truth)


def test_no_poi_means_rules_alone_decide():
    frame, _ = _synthetic_people(60, seed=1)
    frame["poi"] = pd.array([None] * len(frame), dtype="boolean")
    scores = label.score_real_person(frame, seed=3)
    assert (scores["method"] == "rules").all() and scores["classifier_score"].isna().all()
    assert scores["real_person_score"].equals(scores["rule_score"].clip(0, 1))
    labels = label.real_person_labels(frame, scores)
    assert (labels["real_person_source"] == "predicted").all()
    assert labels["is_real_person"].tolist() == (scores["rule_score"] >= label.RULE_THRESHOLD).tolist()


def test_platform_flag_decides_where_present_but_score_never_reads_it():
    frame, truth = _synthetic_people(200, seed=2)
    frame.loc[:19, "poi"] = pd.NA  # twenty models without the flag are predicted
    scores = label.score_real_person(frame, seed=5)
    assert (scores["method"] == "rules+classifier").all()
    labels = label.real_person_labels(frame, scores)
    assert (labels.loc[:19, "real_person_source"] == "predicted").all()
    assert (labels.loc[20:, "real_person_source"] == "platform").all()
    assert labels.loc[20:, "is_real_person"].tolist() == frame.loc[20:, "poi"].tolist()
    assert labels.loc[:19, "is_real_person"].tolist() == truth[:20].tolist()


def test_classifier_scores_are_out_of_fold():
    """A token unique to each model that carries its (random) label would be learned by an
    in-sample fit; out-of-fold, the token is never seen in training, so it cannot help."""
    rng = np.random.default_rng(0)
    n = 300
    poi = rng.random(n) < 0.5
    frame = models_frame([{"name": f"uniq{i}x{'pos' if poi[i] else 'neg'}{i}",
                           "description": f"tok{i}q" * 3} for i in range(n)])
    frame["poi"] = pd.array(poi, dtype="boolean")
    features = label.real_person_rule_features(frame, LEX)
    oof = label.classifier_scores(frame, features, seed=1).to_numpy()
    accuracy = np.mean((oof >= 0.5) == poi)
    assert accuracy < 0.65, "out-of-fold scores look like they saw their own labels"
    # sanity: the same text *is* learnable in-sample, so the check above has power
    counts = label.models.hashed_counts(label.real_person_documents(frame))
    fitted = label.models._fit_classifier(counts, features, poi)
    assert np.mean((label.models._predict_classifier(fitted, counts, features) >= 0.5) == poi) > 0.95


def test_classifier_is_deterministic_for_a_seed():
    frame, _ = _synthetic_people(120, seed=4)
    a = label.score_real_person(frame, seed=9)["real_person_score"]
    b = label.score_real_person(frame, seed=9)["real_person_score"]
    assert a.equals(b)


# --------------------------------------------------------------------------- depicted gender
@pytest.mark.parametrize("row,expected", [
    ({"name": "Somebody", "tags": ["woman", "actress"]}, "female"),
    ({"name": "Somebody", "tags": ["man"]}, "male"),
    ({"name": "Jennifer Smithson"}, "female"),                                      # first name
    ({"name": "Michael Smithson"}, "male"),
    ({"name": "Zzq Qxx", "description": "She is a model. Her photos ... she"}, "unknown"),  # pronouns alone: 1.5
    ({"name": "Zzq Qxx", "tags": ["person"], "description": "She was on TV; her show ran long."}, "unknown"),
    ({"name": "Zzq Qxx", "tags": ["woman"], "description": "She was on TV; her show ran long."}, "female"),
    ({"name": "Zzq", "tags": ["woman", "man"]}, "unknown"),                          # conflict
    ({"name": "Zzq and Qxx", "tags": ["woman", "man", "couple"]}, "mixed"),
    ({"name": "Zzq", "description": "he"}, "unknown"),                               # thin
    ({"name": "Zzq", "tags": []}, "unknown"),
    ({"name": "Handsome man LoRA"}, "male"),                                         # name word
    ({"name": "Zzq", "trigger_words": ["zzq woman"], "tags": ["female"]}, "female"),
])
def test_depicted_gender_rules(row, expected):
    frame = models_frame([row])
    assert label.depicted_gender(frame, pd.Series([True])).iloc[0] == expected


def test_depicted_gender_is_unknown_for_non_real_person_models():
    frame = models_frame([{"tags": ["woman"]}, {"tags": ["woman"]}])
    out = label.depicted_gender(frame, pd.Series([False, None], dtype="boolean"))
    assert out.tolist() == ["unknown", "unknown"]


# --------------------------------------------------------------------------- evaluation helpers
def test_binary_metrics_known_values():
    m = label.binary_metrics([1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 0, 0])
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(4 / 6)
    assert np.isnan(label.binary_metrics([0, 0], [0, 0])["precision"])


def test_bootstrap_metrics_are_seeded_and_bracket_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.3
    p = np.where(rng.random(400) < 0.85, y, ~y)
    a = label.bootstrap_metrics(y, p, n_boot=300, seed=7)
    b = label.bootstrap_metrics(y, p, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["metric"]) == {"precision", "recall", "f1", "accuracy"}
    assert ((a["ci_low"] <= a["estimate"]) & (a["estimate"] <= a["ci_high"])).all()
    assert ((a["ci_high"] - a["ci_low"]) < 0.2).all()


def _wilson_formula(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval written out, independent of the implementation under test."""
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def test_wilson_bounds():
    low, high = stats.wilson_bounds(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert (low, high) == (pytest.approx(_wilson_formula(50, 100)[0]), pytest.approx(_wilson_formula(50, 100)[1]))
    assert stats.wilson_bounds(0, 10)[0] == pytest.approx(0.0) and stats.wilson_bounds(10, 10)[1] == pytest.approx(1.0)
    assert all(np.isnan(stats.wilson_bounds(0, 0)))


def test_confusion_and_error_categories_carry_no_names():
    frame = models_frame([{"name": "Secret Name One", "tags": ["celebrity"], "type": "LORA"},
                          {"name": "Secret Name Two", "tags": ["anime"], "type": "Checkpoint"},
                          {"name": "Secret Name Three", "tags": ["style"], "type": "LORA"}])
    features = label.real_person_rule_features(frame, LEX)
    y, p = [False, True, True], [True, False, True]
    conf = label.confusion_table(y, p)
    assert conf["n"].sum() == 3
    errors = label.error_categories(frame, features, y, p)
    assert set(errors["error"]) == {"false_positive", "false_negative"}
    assert "Secret" not in errors.to_csv()
    fp = errors[(errors.error == "false_positive") & (errors.dimension == "cue")]
    assert fp["category"].tolist() == ["tag_real_person_cue"]


def test_platform_miss_estimate_and_sample():
    frame = models_frame([{"poi": False}] * 8 + [{"poi": True}] * 2)
    scores = pd.DataFrame({"real_person_score": [0.95, 0.9, 0.1, 0.2, 0.3, 0.1, 0.85, 0.1, 0.99, 0.99],
                           "rule_score": [0.5] * 10})
    est = label.platform_miss_estimate(frame, scores)
    assert (est["poi_false"], est["high_score"]) == (8, 3)
    assert est["ci_low"] < est["share"] < est["ci_high"]
    features = label.real_person_rule_features(frame, LEX)
    sample = label.platform_miss_sample(frame, scores, features, n=2, seed=0)
    assert list(sample.columns) == ["model_id", "type", "score", "cues"] and len(sample) == 2
    assert set(sample["model_id"]) <= {1, 2, 7}


def test_platform_miss_checked_estimate_known_answer():
    # ids 1-5 are candidates (poi False, score >= threshold); 6-7 score low; 8-10 are flagged.
    frame = pd.DataFrame({"model_id": range(1, 11), "poi": [False] * 7 + [True] * 3,
                          "real_person_score": [0.9, 0.85, 0.99, 0.8, 0.95, 0.5, 0.1, 0.9, 0.2, 0.99]})
    check = pd.DataFrame({"model_id": [1, 2, 3, 4, 6],  # 6 is no candidate: ignored
                          "label": ["real_person", "real_person", "plausible", "not_real_person", "real_person"]})
    est = label.platform_miss_checked_estimate(frame, check).set_index("counted")
    strict = est.loc["real_person"]
    assert (strict["candidates"], strict["checked"], strict["confirmed"], strict["poi_true"]) == (5, 4, 2, 3)
    assert not strict["checked_all_candidates"]
    assert strict["share"] == pytest.approx(0.5)
    low, high = _wilson_formula(2, 4)
    assert (strict["ci_low"], strict["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert strict["missed_estimate"] == pytest.approx(2.5)
    assert (strict["missed_low"], strict["missed_high"]) == (pytest.approx(5 * low), pytest.approx(5 * high))
    assert strict["missed_share_of_real_person"] == pytest.approx(2.5 / 5.5)
    assert strict["missed_share_low"] == pytest.approx(5 * low / (3 + 5 * low))
    generous = est.loc["real_person or plausible"]
    assert (generous["confirmed"], generous["share"]) == (3, pytest.approx(0.75))
    assert generous["missed_estimate"] == pytest.approx(3.75)


def test_platform_miss_checked_estimate_without_checked_candidates_is_nan():
    frame = pd.DataFrame({"model_id": [1, 2], "poi": [False, True], "real_person_score": [0.9, 0.9]})
    est = label.platform_miss_checked_estimate(frame, pd.DataFrame({"model_id": [2], "label": ["real_person"]}))
    assert (est["candidates"] == 1).all() and (est["checked"] == 0).all()
    assert est[["share", "ci_low", "missed_estimate"]].isna().all().all()


def test_platform_miss_check_file_is_ids_and_labels_only():
    check = label.load_platform_miss_check()
    assert list(check.columns) == ["model_id", "label"]
    assert 0 < len(check) <= 40 and check["model_id"].is_unique and check["model_id"].is_monotonic_increasing
    assert set(check["label"]) <= set(label.PLATFORM_MISS_CHECK_LABELS)


def test_gold_set_file_is_ids_and_labels_only():
    gold = label.load_gold_gender()
    assert list(gold.columns) == ["model_id", "label"]
    assert len(gold) >= 300 and gold["model_id"].is_unique
    assert gold["model_id"].is_monotonic_increasing
    assert set(gold["label"]) <= set(schema.GENDERS)


def test_evaluate_gender_gold_counts():
    gold = pd.DataFrame({"model_id": [1, 2, 3, 4, 5], "label": ["female", "female", "male", "unknown", "female"]})
    pred = pd.DataFrame({"model_id": [1, 2, 3, 4, 6], "depicted_gender": ["female", "male", "male", "unknown", "female"]})
    ev = label.evaluate_gender_gold(pred, gold).set_index("metric")
    assert ev.loc["accuracy_where_decided", ["successes", "n"]].tolist() == [2, 3]
    assert ev.loc["coverage", ["successes", "n"]].tolist() == [3, 4]
    conf = label.gender_confusion(pred, gold)
    assert conf.loc["female", "male"] == 1 and conf.to_numpy().sum() == 4


# --------------------------------------------------------------------------- planted truth
_GIVEN = {"female": ["Jennifer", "Maria", "Emily", "Sophie", "Laura", "Hannah"],
          "male": ["Michael", "David", "Thomas", "Robert", "Daniel", "Peter"]}
_PERSON_CUES = ["celebrity", "actress", "instagram model", "real person", "singer", "pornstar", "streamer"]
_OTHER = [("Neon {x} Style", ["style", "art style"]), ("{x} Armor Outfit", ["clothing", "outfit"]),
          ("{x} (original character)", ["character", "anime", "girl"]), ("Dynamic {x} Pose", ["poses", "woman"]),
          ("{x}Mix Realistic", ["base model", "photorealistic"]), ("{x} Lighting", ["concept", "lighting"])]


def _planted_models(n: int, seed: int) -> tuple[pd.DataFrame, list[bool], list[str | None]]:
    """Invented models with a planted kind (person or not) and, for persons, gender."""
    rnd = random.Random(seed)
    surname = lambda: rnd.choice(["Vell", "Mor", "Cast", "Dun", "Quill"]) + rnd.choice(["ane", "ston", "ovic", "ard"])
    rows, is_person, gender = [], [], []
    for i in range(n):
        if rnd.random() < 0.35:
            g = rnd.choice(["female"] * 8 + ["male"] * 2 + ["mixed"])
            first = rnd.choice(_GIVEN["male" if g == "male" else "female"])
            name = f"{first} {surname()}" + rnd.choice(["", " LoRA", " v2", " [Embedding]"])
            gender_tags = {"female": ["woman"], "male": ["man"], "mixed": ["woman", "man", "couple"]}[g]
            if g == "mixed":
                name = f"{first} {surname()} & {rnd.choice(_GIVEN['male'])} {surname()}"
            tags = rnd.sample(_PERSON_CUES, rnd.randint(1, 2)) + gender_tags + \
                rnd.sample(["photorealistic", "realistic", "person", "portrait"], rnd.randint(0, 2))
            rows.append({"name": name, "tags": tags, "description": f"Likeness of {name}.",
                         "trigger_words": [name.split()[0].lower()]})
        else:
            g = None
            template, tags = rnd.choice(_OTHER)
            rows.append({"name": template.format(x=surname()), "tags": list(tags),
                         "description": "Use at weight 0.7.", "trigger_words": []})
        is_person.append(g is not None)
        gender.append(g)
    return models_frame(rows), is_person, gender


def test_planted_truth_on_a_synthetic_frame():
    """Invented models with a known kind and gender are recovered by the rules and the labeller."""
    frame, is_person, gender = _planted_models(300, seed=11)
    features = label.real_person_rule_features(frame, LEX)
    predicted = label.real_person_rule_score(features) >= label.RULE_THRESHOLD
    m = label.binary_metrics(is_person, predicted)
    assert m["precision"] >= 0.95 and m["recall"] >= 0.95
    persons = np.flatnonzero(is_person)
    got = label.depicted_gender(frame.iloc[persons], pd.Series(True, index=frame.index[persons]))
    truth = np.array(gender, dtype=object)[persons]
    decided = got.to_numpy() != "unknown"
    assert decided.mean() >= 0.9
    assert (got.to_numpy()[decided] == truth[decided]).mean() >= 0.95
    assert {"female", "male", "mixed"} <= set(got)


def test_label_all_on_the_embedded_sample(tmp_path, synthetic_run):
    paths = synthetic_run.interim_copy(tmp_path / "run")
    report = label.label_all(paths, seed=7, n_boot=100)
    json.dumps(report)  # the report must be JSON-ready
    images = db.read_table(paths.table("processed", "images"))
    models = pq.read_table(paths.table("processed", "models"))
    schema.validate_file(paths.table("processed", "images"), "images", "processed")
    schema.validate_file(paths.table("processed", "models"), "models", "processed")
    assert report["rows"] == {"images": images.num_rows, "models": models.num_rows}
    for f in schema.MODEL_LABEL_FIELDS:
        assert models.schema.field(f.name).type == f.type, f.name
    m = models.to_pandas()
    assert set(m["depicted_gender"]) <= set(schema.GENDERS)
    assert (m.loc[~m["is_real_person"].astype(bool), "depicted_gender"] == "unknown").all()
    assert m["real_person_score"].between(0, 1).all()
    assert (m["real_person_source"] == np.where(m["poi"].notna(), "platform", "predicted")).all()
    # interim columns pass through untouched
    interim = pq.read_table(paths.table("interim", "models"))
    assert models.select(interim.column_names).equals(interim)
    shares = label.nsfw_definition_shares(report)
    assert set(shares["definition"]) == {"platform flag", "level >= R", "level >= X"}
    x_share = shares.set_index(["table", "definition"]).loc[("images", "level >= X"), "share"]
    r_share = shares.set_index(["table", "definition"]).loc[("images", "level >= R"), "share"]
    assert x_share <= r_share
    prevalence = label.marker_prevalence(report)
    assert (prevalence["share"].between(0, 1)).all()
    dist = label.gender_distribution(report)
    assert dist["models"].sum() == report["models"]["is_real_person"]
    frames = label.evaluation_frames(report)
    assert set(frames["metrics"]["method"]) == {"rules", "rules+classifier"}
    # the report notebook 02 shows names the sample's make-up, never a model id or score
    sample = frames["platform_miss_sample"]
    assert list(sample.columns) == ["dimension", "category", "n"]
    assert "models" in sample.loc[sample["dimension"] == "sampled", "category"].tolist()


# --------------------------------------------------------------------------- real-data report
def _planted_report_input() -> pd.DataFrame:
    """Planted models with a platform flag that misses every fifth person (platform misses)."""
    frame, is_person, _ = _planted_models(300, seed=11)
    flag = [p and i % 5 != 0 for i, p in enumerate(is_person)]
    return frame.assign(poi=pd.array(flag, dtype="boolean"))


def test_real_records_report_is_deterministic_and_aggregate(tmp_path):
    models = _planted_report_input()
    report = label.real_records_report(models, seed=3, n_boot=50, source={"file": "x/models.jsonl.gz"})
    again = label.real_records_report(models, seed=3, n_boot=50, source={"file": "x/models.jsonl.gz"})
    assert report == again
    # without the pipeline run on the records, the linkage tables are left out
    assert list(report["tables"]) == [t for t in label.REPORT_TABLES if t not in label.validation.LINKAGE_TABLES]
    assert report["records"] == {"models": 300, "with_poi": 300, "poi_true": int(models["poi"].sum())}
    for name, table in report["tables"].items():
        assert not {"model_id", "name", "cues"} & set(table["columns"]), name
    # "score" appears only as the name of a score in the platform-miss estimate, never a value.
    miss = report["tables"]["platform_miss"]
    assert {row[miss["columns"].index("score")] for row in miss["rows"]} == {"rule_score", "real_person_score"}
    composition = label.real_records_frames(report)["platform_miss_sample"].set_index(["dimension", "category"])
    sampled = composition.loc[("sampled", "models"), "n"]
    assert sampled > 0  # the planted misses score high
    assert composition.xs("type", level="dimension")["n"].sum() == sampled
    first = label.write_real_records_report(report, tmp_path / "a")
    second = label.write_real_records_report(again, tmp_path / "b")
    for f, g in zip(first, second):
        assert f.read_bytes() == g.read_bytes()
        assert str(tmp_path) not in f.read_text(encoding="utf-8")
    assert label.load_real_records_report(first[0]) == json.loads(json.dumps(report))


def test_real_records_frames_keep_the_evaluation_columns():
    models = _planted_report_input()
    report = label.real_records_report(models, seed=3, n_boot=20)
    frames = label.real_records_frames(json.loads(json.dumps(report, sort_keys=True)))
    direct = label.real_data_evaluation(models, seed=3, n_boot=20)
    for name in set(label.REPORT_TABLES) - {"platform_miss_sample", "marker_precision"} - set(label.validation.LINKAGE_TABLES):
        assert list(frames[name].columns) == list(direct[name].columns), name
        assert len(frames[name]) == len(direct[name]), name
    # Marker precision comes from prompts, not from the models: without prompts the table is
    # empty but keeps its columns.
    empty = label.marker_precision(pd.DataFrame({"image_id": [], "prompt": []}), label.load_marker_check())
    assert list(frames["marker_precision"].columns) == list(empty.columns)
    assert frames["marker_precision"].empty
    metrics = frames["metrics"].set_index(["method", "metric"])["estimate"]
    want = direct["metrics"].set_index(["method", "metric"])["estimate"]
    assert np.allclose(metrics.loc[want.index].to_numpy(), want.to_numpy(), atol=1e-6)


def test_sample_composition_counts_types_and_cues_only():
    sample = pd.DataFrame({"model_id": [5, 9, 12], "type": ["LORA", "LORA", None], "score": [0.9, 0.95, 0.81],
                           "cues": ["photo_tag, tag_real_person_cue", "tag_real_person_cue", ""]})
    got = label.sample_composition(sample)
    assert got.to_dict("records") == [
        {"dimension": "sampled", "category": "models", "n": 3},
        {"dimension": "type", "category": "LORA", "n": 2},
        {"dimension": "type", "category": "unknown", "n": 1},
        {"dimension": "cue", "category": "tag_real_person_cue", "n": 2},
        {"dimension": "cue", "category": "photo_tag", "n": 1}]


def test_committed_real_data_report_is_consistent_and_aggregate():
    """The committed report (shown by notebook 02 on every machine): its Markdown is generated
    from its JSON, it carries no per-model column and no absolute path."""
    json_path, md_path = label.report_paths()
    report = label.load_real_records_report()
    assert report is not None, f"{json_path.name} is missing from docs/validation"
    assert md_path.read_text(encoding="utf-8") == label.report_markdown(report)
    assert json_path.read_text(encoding="utf-8") == json.dumps(report, indent=2, sort_keys=True) + "\n"
    assert list(report["tables"]) == sorted(label.REPORT_TABLES)
    for name, table in report["tables"].items():
        assert not {"model_id", "name", "cues"} & set(table["columns"]), name
    text = json_path.read_text(encoding="utf-8") + md_path.read_text(encoding="utf-8")
    assert "/work/" not in text and "/home/" not in text and "shared/data" not in text
    assert report["source"]["file"] == "civitai-api-models-2023/models.jsonl.gz"


def test_validate_command_refuses_a_missing_file(tmp_path, capsys):
    from helpers.__main__ import main

    assert main(["validate", "--real", str(tmp_path / "absent.jsonl.gz"), "--out", str(tmp_path)]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- marker precision
def test_marker_check_file_holds_ids_and_labels_only():
    check = label.load_marker_check()
    assert list(check.columns) == ["category", "image_id", "label"]
    assert set(check["category"]) <= set(schema.MARKER_CATEGORIES)
    assert not check.duplicated(["category", "image_id"]).any()


def test_committed_marker_precision_every_category_kept_or_dropped():
    """Every marker category is >= the precision floor on the hand-checked real prompts, or is
    dropped on prompts, or has no hit there to check (and says so)."""
    report = label.load_real_records_report()
    assert report is not None and "marker_precision" in report["tables"], \
        "regenerate docs/validation with `python -m helpers validate --real PATH`"
    table = label.real_records_frames(report)["marker_precision"].set_index("category")
    assert set(table.index) == set(schema.MARKER_CATEGORIES)
    for cat, row in table.iterrows():
        if cat in schema.MARKERS_DROPPED_ON_PROMPTS:
            assert row["status"] == "dropped on prompts"
        elif row["hits"] == 0:
            assert row["status"] == "no hits on these prompts" and row["checked"] == 0
        else:
            assert row["precision"] >= schema.MARKER_MIN_PRECISION, (cat, row["precision"])
            assert row["status"] in ("kept", "fixed (terms removed after the check)")
            assert row["checked_still_hits"] >= min(50, row["hits"]), f"{cat}: fewer than 50 checked hits"
            assert row["ci_low"] <= row["precision"] <= row["ci_high"]
    # A dropped category really failed the check (a drop is not a way around a good result).
    for cat in schema.MARKERS_DROPPED_ON_PROMPTS:
        assert table.loc[cat, "precision"] < schema.MARKER_MIN_PRECISION


def test_marker_precision_scores_only_current_hits():
    prompts = pd.DataFrame({"image_id": [1, 2, 3, 4], "prompt": ["1girl, solo", "a cat", "nude, 1girl", "loli"]})
    check = pd.DataFrame({"category": ["booru", "booru", "booru", "minor"], "image_id": [1, 2, 3, 4],
                          "label": ["yes", "yes", "no", "no"]})
    out = label.marker_precision(prompts, check).set_index("category")
    # id 2 is no booru hit (any more): it leaves the sample, so the status says "fixed".
    assert out.loc["booru", "checked"] == 3 and out.loc["booru", "checked_still_hits"] == 2
    assert out.loc["booru", "precision"] == pytest.approx(0.5)
    assert out.loc["booru", "status"].startswith("below")
    assert out.loc["minor", "precision"] == 0 and out.loc["pony", "status"] == "no hits on these prompts"
    assert out.loc["real_person", "status"] == "dropped on prompts"


def test_distinct_prompt_labels_equal_every_row_labelled_in_sql(tmp_path):
    """Labelling each distinct prompt of a batch once and taking the labels back to the rows
    gives the labels of the row-by-row SQL select, in the same row order, for any batch size."""
    paths = RunPaths(tmp_path / "run").ensure()
    prompts = [p for p in TRICKY_PROMPTS for _ in range(3)][::-1] + list(TRICKY_PROMPTS)
    n = len(prompts)
    levels = [list(schema.BROWSING_LEVELS)[i % 6] for i in range(n)]
    flags = [None if i % 5 == 0 else bool(i % 2) for i in range(n)]
    table = _interim_images(prompts, levels, flags)
    pq.write_table(table, paths.table("interim", "images"))
    with db.connect() as con:
        rowwise = con.sql(label.image_labels_of_file_sql(paths.table("interim", "images"),
                                                         label.load_lexicon())).to_arrow_table()
    for batch_rows in (1, 7, n):
        label.label_images(paths, batch_rows=batch_rows)
        got = db.read_table(paths.table("processed", "images"))
        assert got.column("image_id").to_pylist() == table.column("image_id").to_pylist()
        for f in schema.IMAGE_LABEL_FIELDS:
            assert got.column(f.name).to_pylist() == rowwise.column(f.name).to_pylist(), (batch_rows, f.name)
    # only the labels are written; the processed table is a view of the interim file and them
    assert not paths.table("processed", "images").exists()
    assert set(pq.read_schema(paths.image_labels).names) == {"image_id", *(f.name for f in schema.IMAGE_LABEL_FIELDS)}
