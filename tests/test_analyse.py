"""Unit tests of helpers.analyse on small hand-built tables with known answers."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from helpers import analyse, schema

Z95 = stats.norm.ppf(0.975)

IMAGE_LABELS: dict[str, pa.DataType] = {
    "is_nsfw_platform": pa.bool_(), "is_nsfw_r": pa.bool_(), "is_nsfw_x": pa.bool_(),
    "n_lora": pa.int32(), "mk_booru": pa.bool_(), "mk_pony": pa.bool_(), "mk_sexual": pa.bool_(),
    "mk_minor": pa.bool_(), "mk_real_person": pa.bool_(),
}


# --------------------------------------------------------------------------- fixtures
def write_images(path: Path, records: list[dict]) -> Path:
    """A processed images Parquet file (interim schema + label columns) from short records.

    Each record gives ``month`` (YYYY-MM) and ``level`` (PG … XXX) and optionally any other
    column; labels default to what the level implies.
    """
    rows = []
    for i, rec in enumerate(records):
        rec = dict(rec)
        level = rec.pop("level", "PG")
        bit = schema.LEVEL_BITS[level]
        month = rec.pop("month", "2023-01")
        row = {c.name: None for c in schema.IMAGES}
        row.update({
            "image_id": i + 1,
            "created_at": pd.Timestamp(f"{month}-15 12:00", tz="UTC").to_pydatetime(),
            "browsing_level": bit, "nsfw_level": level, "nsfw": bit >= 4,
            "prompt": "masterpiece, landscape", "reaction_count": 0, "user_hash": f"u{i:04d}",
            "is_nsfw_platform": bit >= 4, "is_nsfw_r": bit >= 4, "is_nsfw_x": bit >= 8,
            "n_lora": 0, "mk_booru": False, "mk_pony": False, "mk_sexual": False,
            "mk_minor": False, "mk_real_person": False,
        })
        row.update(rec)
        rows.append(row)
    fields = list(schema.arrow_schema("images")) + [pa.field(k, v) for k, v in IMAGE_LABELS.items()]
    table = pa.Table.from_pylist(rows, schema=pa.schema(fields))
    pq.write_table(table, path)
    return path


def wilson_by_hand(k: float, n: float) -> tuple[float, float]:
    """The Wilson score interval written out from its formula."""
    p = k / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 / (1 + Z95 ** 2 / n) * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n ** 2))
    return centre - half, centre + half


def make_models(records: list[dict]) -> pd.DataFrame:
    """A processed models frame from short records (defaults for every used column)."""
    rows = []
    for i, rec in enumerate(records):
        row = {
            "model_id": i + 1, "name": f"Style model {i}", "type": "LORA", "tags": ["style"],
            "trigger_words": [], "created_at": pd.Timestamp("2023-01-15", tz="UTC"),
            "base_model": "SD 1.5", "download_count": 10, "favorite_count": 1, "comment_count": 0,
            "rating_count": 0, "is_nsfw_platform": False, "is_nsfw_r": False, "is_nsfw_x": False,
            "is_adapter": True, "is_real_person": False, "depicted_gender": "unknown",
            "real_person_source": "predicted",
        }
        row.update(rec)
        if "month" in row:
            row["created_at"] = pd.Timestamp(f"{row.pop('month')}-15", tz="UTC")
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- statistics
def test_wilson_interval_matches_formula_and_edge_cases():
    low, high = analyse.wilson_interval([5, 0, 10, 3], [10, 10, 10, 0])
    for i, (k, n) in enumerate([(5, 10), (0, 10), (10, 10)]):
        lo, hi = wilson_by_hand(k, n)
        assert low[i] == pytest.approx(lo, abs=1e-9)
        assert high[i] == pytest.approx(hi, abs=1e-9)
    assert low[1] == pytest.approx(0.0, abs=1e-12) and high[2] == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(low[3]) and np.isnan(high[3])


def test_odds_ratio_known_table():
    res = analyse.odds_ratio(k1=30, n1=40, k0=10, n0=40)
    assert res["odds_ratio"] == pytest.approx((30 * 30) / (10 * 10))
    se = math.sqrt(1 / 30 + 1 / 10 + 1 / 10 + 1 / 30)
    assert res["ci_low"] == pytest.approx(9 * math.exp(-Z95 * se), rel=1e-6)
    assert res["ci_high"] == pytest.approx(9 * math.exp(Z95 * se), rel=1e-6)
    assert math.isnan(analyse.odds_ratio(k1=0, n1=0, k0=3, n0=10)["odds_ratio"])


def test_logistic_trend_recovers_planted_slope():
    months = pd.period_range("2022-11", periods=24, freq="M").astype(str)
    t = np.arange(24) / 12
    n = np.full(24, 200_000)
    k = np.round(n / (1 + np.exp(-(-0.5 + 0.8 * t)))).astype(int)
    res = analyse.logistic_trend(pd.DataFrame({"month": months, "k": k, "n": n}))
    assert res["odds_ratio_per_year"] == pytest.approx(math.exp(0.8), rel=0.01)
    assert res["ci_low"] < res["odds_ratio_per_year"] < res["ci_high"]
    assert res["p_value"] < 1e-6


def test_logistic_trend_flat_share_includes_one():
    rng = np.random.default_rng(1)
    n = np.full(18, 1000)
    k = rng.binomial(n, 0.4)
    months = pd.period_range("2023-01", periods=18, freq="M").astype(str)
    res = analyse.logistic_trend(pd.DataFrame({"month": months, "k": k, "n": n}))
    assert res["ci_low"] < 1 < res["ci_high"]


def test_mann_kendall_direction_and_tau():
    up = analyse.mann_kendall(np.arange(12.0))
    assert up["tau"] == pytest.approx(1.0) and up["p_value"] < 0.001 and up["sen_slope"] == 1.0
    down = analyse.mann_kendall(-np.arange(12.0), per_step=12)
    assert down["tau"] == pytest.approx(-1.0) and down["sen_slope"] == pytest.approx(-12.0)
    assert analyse.mann_kendall(np.ones(10))["s"] == 0
    rng = np.random.default_rng(3)
    x = rng.normal(size=30)
    tau, _ = stats.kendalltau(np.arange(30), x)
    assert analyse.mann_kendall(x)["tau"] == pytest.approx(tau)


def test_mann_whitney_from_counts_matches_scipy_and_direction():
    rng = np.random.default_rng(7)
    a = rng.poisson(4, 300)
    b = rng.poisson(3, 200)
    frame = pd.DataFrame({"value": np.concatenate([a, b]),
                          "group": np.r_[np.ones(300, bool), np.zeros(200, bool)]})
    counts = frame.groupby(["value", "group"]).size().rename("n").reset_index()
    res = analyse.mann_whitney_from_counts(counts)
    ref = stats.mannwhitneyu(a, b, method="asymptotic", use_continuity=False)
    assert res["u"] == pytest.approx(ref.statistic)
    assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert res["rank_biserial"] > 0  # a (larger mean) tends to be larger
    swapped = analyse.mann_whitney_from_counts(counts, a=False, b=True)
    assert swapped["rank_biserial"] == pytest.approx(-res["rank_biserial"])


def test_mann_whitney_complete_separation_gives_rank_biserial_one():
    counts = pd.DataFrame({"value": [5, 6, 1, 2], "group": [True, True, False, False],
                           "n": [3, 2, 4, 1]})
    assert analyse.mann_whitney_from_counts(counts)["rank_biserial"] == pytest.approx(1.0)


def test_quantile_from_counts_matches_numpy():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 20, 501)
    values, counts = np.unique(data, return_counts=True)
    for q in (0.1, 0.5, 0.9):
        assert analyse.quantile_from_counts(values, counts, q) == np.quantile(
            data, q, method="inverted_cdf")


def test_gini_known_distributions():
    assert analyse.gini(np.full(50, 3.0)) == pytest.approx(0.0, abs=1e-12)
    n = 20
    one = np.zeros(n)
    one[-1] = 7
    assert analyse.gini(one) == pytest.approx((n - 1) / n)
    assert analyse.gini([1, 2, 3, 4]) == pytest.approx(0.25)
    # A frequency table gives the same answer as the expanded data.
    assert analyse.gini([1, 5], weights=[3, 2]) == pytest.approx(analyse.gini([1, 1, 1, 5, 5]))


def test_top_share_and_lorenz():
    values = np.r_[np.ones(99), 100.0]
    assert analyse.top_share(values, None, 0.01) == pytest.approx(100 / 199)
    assert analyse.top_share([1, 100], [99, 1], 0.01) == pytest.approx(100 / 199)
    curve = analyse.lorenz_curve([1, 1, 2])
    assert curve.iloc[0].tolist() == [0.0, 0.0] and curve.iloc[-1].tolist() == [1.0, 1.0]
    assert curve["value_share"].is_monotonic_increasing


def test_weighted_log_odds_signs():
    counts = pd.DataFrame({"term": ["nude", "landscape", "girl"],
                           "n_a": [90, 5, 50], "n_b": [5, 90, 50]})
    out = analyse.weighted_log_odds(counts).set_index("term")
    assert out.loc["nude", "z"] > 2 and out.loc["landscape", "z"] < -2
    assert out.loc["girl", "log_odds"] == pytest.approx(0.0, abs=1e-12)
    # More evidence (same proportions, ten times the counts) gives a larger |z|.
    big = analyse.weighted_log_odds(counts.assign(n_a=counts.n_a * 10, n_b=counts.n_b * 10))
    assert big.set_index("term").loc["nude", "z"] > out.loc["nude", "z"]


# --------------------------------------------------------------------------- images
@pytest.fixture()
def monthly_images(tmp_path: Path) -> Path:
    """Jan: 10 images, 3 R/X (1 X), platform flag null on 2; Feb: 4 images, 3 XXX."""
    recs = ([{"month": "2023-01", "level": "PG"}] * 5 + [{"month": "2023-01", "level": "PG13"}] * 2
            + [{"month": "2023-01", "level": "R"}] * 2 + [{"month": "2023-01", "level": "X"}]
            + [{"month": "2023-02", "level": "PG"}] + [{"month": "2023-02", "level": "XXX"}] * 3)
    recs = [dict(r) for r in recs]
    recs[0]["is_nsfw_platform"] = None
    recs[7]["is_nsfw_platform"] = None  # an R image with unknown flag
    return write_images(tmp_path / "images.parquet", recs)


def test_nsfw_share_by_month_counts_and_intervals(monthly_images: Path):
    out = analyse.nsfw_share_by_month(monthly_images).set_index(["definition", "month"])
    jan_r = out.loc[("r", "2023-01")]
    assert (jan_r["n_images"], jan_r["n"], jan_r["k"]) == (10, 10, 3)
    lo, hi = wilson_by_hand(3, 10)
    assert jan_r["ci_low"] == pytest.approx(lo) and jan_r["ci_high"] == pytest.approx(hi)
    assert out.loc[("x", "2023-01"), "k"] == 1
    assert out.loc[("platform", "2023-01"), "n"] == 8  # nulls are unknown, not SFW
    assert out.loc[("platform", "2023-01"), "k"] == 2
    assert out.loc[("r", "2023-02"), "share"] == pytest.approx(0.75)


def test_nsfw_share_trend_rows(monthly_images: Path):
    monthly = analyse.nsfw_share_by_month(monthly_images)
    trend = analyse.nsfw_share_trend(monthly)
    assert set(trend) == {"platform", "r", "x"}
    # Two months cannot carry a trend: each definition says so instead of giving NaN.
    assert all(t == analyse.NotEstimable("two months with data: a trend needs at least three")
               for t in trend.values())
    assert analyse.trend_frame(trend).empty


def test_image_overview(monthly_images: Path):
    ov = analyse.image_overview(monthly_images)
    assert ov["n_images"] == 14 and ov["n_users"] == 14 and ov["n_months"] == 2
    assert ov["first_month"] == "2023-01" and ov["last_month"] == "2023-02"
    assert ov["nsfw_share_r"] == pytest.approx(6 / 14)
    assert ov["nsfw_share_platform"] == pytest.approx(5 / 12)


def test_level_composition_by_month(monthly_images: Path):
    out = analyse.level_composition_by_month(monthly_images)
    assert list(out["level"].cat.categories) == list(schema.LEVEL_NAMES)
    assert len(out) == 2 * len(schema.LEVEL_NAMES)
    assert out.groupby("month")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    jan = out[out.month == "2023-01"].set_index("level")["n"]
    assert (jan["PG"], jan["PG13"], jan["R"], jan["X"], jan["XXX"]) == (5, 2, 2, 1, 0)


@pytest.fixture()
def lora_images(tmp_path: Path) -> Path:
    """With LoRA: 20 images, 15 NSFW; without: 30 images, 6 NSFW."""
    recs = ([{"level": "X", "n_lora": 2}] * 15 + [{"level": "PG", "n_lora": 1}] * 5
            + [{"level": "R", "n_lora": 0}] * 6 + [{"level": "PG", "n_lora": 0}] * 24)
    recs = [dict(r, month="2023-03" if i % 2 else "2023-04") for i, r in enumerate(recs)]
    return write_images(tmp_path / "images.parquet", recs)


def test_lora_use_by_month_and_adapter_comparison(lora_images: Path):
    monthly = analyse.lora_use_by_month(lora_images)
    assert monthly["n"].sum() == 50 and monthly["k"].sum() == 20
    by_use = analyse.nsfw_share_by_adapter_use(lora_images).set_index("uses_adapter")
    assert by_use.loc[True, "share"] == pytest.approx(0.75)
    assert by_use.loc[False, "share"] == pytest.approx(0.2)
    assert by_use.loc[True, "odds_ratio"] == pytest.approx((15 * 24) / (5 * 6))
    assert by_use.loc[True, "or_ci_low"] > 1
    per_month = analyse.nsfw_share_by_adapter_use_by_month(lora_images)
    assert per_month["n"].sum() == 50 and per_month["k"].sum() == 21


def test_engagement_nsfw_vs_sfw_direction(tmp_path: Path):
    rng = np.random.default_rng(11)
    nsfw_r = rng.poisson(8, 60)
    sfw_r = rng.poisson(4, 80)
    recs = ([{"level": "X", "reaction_count": int(v), "like_count": int(v)} for v in nsfw_r]
            + [{"level": "PG", "reaction_count": int(v), "like_count": int(v)} for v in sfw_r])
    path = write_images(tmp_path / "images.parquet", recs)
    out = analyse.engagement_nsfw_vs_sfw(path, metrics=["reaction_count", "like_count"])
    row = out.set_index("metric").loc["reaction_count"]
    ref = stats.mannwhitneyu(nsfw_r, sfw_r, method="asymptotic", use_continuity=False)
    assert row["u"] == pytest.approx(ref.statistic) and row["p_value"] == pytest.approx(ref.pvalue)
    assert row["rank_biserial"] > 0 and row["median_nsfw"] > row["median_sfw"]
    assert row["n_nsfw"] == 60 and row["n_sfw"] == 80
    with pytest.raises(ValueError, match="engagement metric"):
        analyse.engagement_counts(path, metric="prompt")


def test_distinctive_terms_signs_tokenising_and_exclusion(tmp_path: Path):
    recs = ([{"level": "X", "prompt": "(nude:1.3), nude, 1girl, Valena, <lora:landscape_v2:0.7>"}] * 30
            + [{"level": "PG", "prompt": "landscape, mountains, 1girl, Valena"}] * 30
            + [{"level": "PG", "prompt": "score_9, landscape"}] * 5)
    path = write_images(tmp_path / "images.parquet", recs)
    counts = analyse.prompt_term_counts(path, min_count=1).set_index("term")
    assert counts.loc["nude", "n_nsfw"] == 30  # once per prompt, weight syntax stripped
    assert counts.loc["landscape", "n_nsfw"] == 0  # the LoRA call's slug is not a term
    assert "score_9" in counts.index and "1girl" in counts.index
    assert "lora" not in counts.index and "0" not in counts.index
    terms = analyse.distinctive_terms(path, top_n=5, min_count=1)
    nsfw = terms[terms.side == "nsfw"]
    assert nsfw.iloc[0]["term"] == "nude" and (nsfw["z"] > 0).all()
    assert terms[terms.side == "sfw"].iloc[0]["term"] in {"landscape", "mountains"}
    excluded = analyse.distinctive_terms(path, top_n=5, min_count=1,
                                         exclude=lambda t: t == "landscape")
    assert "landscape" not in set(excluded["term"])


def test_distinctive_terms_drop_names_written_as_names(tmp_path: Path):
    # "Orlan Vesk" (capitalised) and "brindlemoor" (credited with "by") are fictional artists;
    # "HDR" is an acronym, not a name, and must stay.
    recs = ([{"level": "X", "prompt": "nude, HDR, portrait of Orlan Vesk, art by brindlemoor"}] * 30
            + [{"level": "PG", "prompt": "landscape, sky, Orlan Vesk style, by brindlemoor and a friend"}] * 2
            + [{"level": "PG", "prompt": "landscape, sky"}] * 30)
    path = write_images(tmp_path / "images.parquet", recs)
    counts = analyse.prompt_term_counts(path, min_count=1)
    ev = counts.set_index("term")
    assert ev.loc["orlan", "n_titlecase"] == 32 and ev.loc["orlan", ["n_nsfw", "n_sfw"]].sum() == 32
    assert ev.loc["brindlemoor", "n_attributed"] == 32 and ev.loc["friend", "n_attributed"] == 2
    assert ev.loc["hdr", "n_titlecase"] == 0 and ev.loc["nude", "n_attributed"] == 0
    assert analyse.names_in_prompts(counts) == {"orlan", "vesk", "brindlemoor"}
    terms = analyse.distinctive_terms(path, top_n=10, min_count=1)
    assert {"orlan", "vesk", "brindlemoor"}.isdisjoint(terms["term"])
    assert {"nude", "hdr"} <= set(terms.loc[terms.side == "nsfw", "term"])
    assert (terms["n_name_terms_removed"] == 3).all()


def test_prompt_term_counts_hash_sample_is_deterministic_subset(tmp_path: Path):
    recs = [{"level": "X" if i % 2 else "PG", "prompt": f"word{i % 7}, common"} for i in range(400)]
    path = write_images(tmp_path / "images.parquet", recs)
    full = analyse.prompt_term_counts(path, min_count=1).set_index("term")
    half = analyse.prompt_term_counts(path, sample_percent=50, min_count=1).set_index("term")
    again = analyse.prompt_term_counts(path, sample_percent=50, min_count=1).set_index("term")
    pd.testing.assert_frame_equal(half, again)
    assert 100 < half.loc["common"].sum() < full.loc["common"].sum()
    with pytest.raises(ValueError):
        analyse.prompt_term_counts(path, sample_percent=0)


# The formulation of prompt_term_counts before its faster rewrite, kept here so the rewrite is
# proven to count the same: a regular expression per word for capitals, lower() per word.
def _prompt_term_counts_reference(images: Path, definition: str, sample_percent: float | None,
                                  min_count: int) -> pd.DataFrame:
    from helpers import db
    from helpers.analyse import images as image_analyses

    flag = schema.NSFW_DEFINITIONS[definition]
    stop = ", ".join(db.sql_literal(w) for w in sorted(image_analyses.STOPWORDS))
    split, title, credit = r"[^\pL\pN_]+", r"^\p{Lu}\p{Ll}", r"(?:\bby|\bartist:|\bstyle of)\s*([^,.;:()\[\]]+)"
    sample = image_analyses._sample_sql(sample_percent)
    adapter = db.sql_literal(schema.ADAPTER_CALL_PATTERN)
    counts = db.connection_or_default(None).execute(f"""
        WITH prompts AS (
            SELECT {flag} AS nsfw, regexp_replace(prompt, {adapter}, ' ', 'g') AS text
            FROM {db.table_sql(images)}
            WHERE prompt IS NOT NULL AND {flag} IS NOT NULL {sample}
        ), tokens AS (
            SELECT nsfw, regexp_split_to_array(text, '{split}') AS words,
                   regexp_extract_all(lower(text), '{credit}', 1) AS credits
            FROM prompts
        ), marks AS (
            SELECT nsfw, list_concat(
                list_transform(list_distinct(list_transform(words, lambda w: lower(w))),
                               lambda t: {{'term': t, 'kind': 0}}),
                list_transform(list_distinct(list_transform(
                                   list_filter(words, lambda w: regexp_matches(w, '{title}')),
                                   lambda w: lower(w))),
                               lambda t: {{'term': t, 'kind': 1}}),
                list_transform(list_distinct(flatten(list_transform(
                                   credits, lambda c: regexp_split_to_array(c, '{split}')))),
                               lambda t: {{'term': t, 'kind': 2}})) AS marks
            FROM tokens
        ), flat AS (
            SELECT nsfw, unnest(marks, recursive := true) FROM marks
        )
        SELECT term,
               count(*) FILTER (WHERE kind = 0 AND nsfw) AS n_nsfw,
               count(*) FILTER (WHERE kind = 0 AND NOT nsfw) AS n_sfw,
               count(*) FILTER (WHERE kind = 1) AS n_titlecase,
               count(*) FILTER (WHERE kind = 2) AS n_attributed
        FROM flat
        WHERE length(term) > 1 AND NOT regexp_full_match(term, '[0-9_]+') AND term NOT IN ({stop})
        GROUP BY term HAVING count(*) FILTER (WHERE kind = 0) >= {int(min_count)}
        ORDER BY term""").df()
    return counts.astype({c: "int64" for c in ("n_nsfw", "n_sfw", "n_titlecase", "n_attributed")})


#: Prompts that test tokenising at its edges: Unicode capitals and title-case digraphs, the
#: dotted capital I, the Kelvin sign, underscores, weights, adapter calls in any case, credits,
#: repeated terms, scripts without case, control characters, empty text.
TRICKY_PROMPTS: tuple[str | None, ...] = (
    "İstanbul NIGHT, İSTANBUL, istanbul, Ärger über Öl, ÉCOLE École, ǅemal ǈudevit ǲ",
    "5\u212a resolution, \u212aelvin, KELVIN, kelvin",
    "score_9, score_8_up, __init__, _underscored_ Name_Like, _Name, 9_9, 1girl, 1Girl",
    "(Name:1.2), [Other Name], {Brace Word}, ((Double Weight:1.3)), (nude:1.3) nude Nude NUDE",
    "<lora:Some_Name:0.8> <LORA: Shouty :1> < lyco :foo> <hypernet:bar:1> <lora:> <lorax:keep:1>",
    "by Ångström, artist:Zoë, style of Müller-Lüdenscheidt; by by, baby, standby Gabby, Artist: Éva",
    "tabs\tand\nnewlines\r\nLine Start\tTab Name", "emoji 😀 👩‍🎤 Emoji😀Name ❤️Heart",
    "ß ẞ Straße STRASSE ﬁne ﬀ", "Σίσυφος ΣΊΣΥΦΟΣ σίσυφος Ωmega", "日本語 テスト ＡＢＣ Ａbc ａｂｃ",
    "١٢٣ ٤٥ Ⅻ Ⅻth ⅻ ½ ²³", "e\u0301cole E\u0301cole Cafe\u0301 éName 日本Name ٣Name ǅName",
    "word-with-hyphens Word-Hyphen", "nul\x00Byte \x1fUnit\x7fDel Name",
    "a, I, x, X, Xx, AB, Ab, aB, 12, 123, _1, __", "", " ", ",,,", "nude nude nude Nude",
    "Name Name Name by Name", "O'Brien d'Arcy McDonald MacBeth iPhone eBay", None,
)


@pytest.mark.parametrize("definition,sample_percent", [("r", None), ("x", None), ("platform", 50.0)])
def test_prompt_term_counts_equal_the_reference_formulation_on_tricky_prompts(tmp_path: Path, definition,
                                                                              sample_percent):
    levels = ("PG", "X", "R", "PG13", "XXX")
    recs = [{"level": levels[(i * 7 + j) % len(levels)], "prompt": p}
            for i, p in enumerate(TRICKY_PROMPTS) for j in range(1 + i % 4)] * 3
    recs += [{"level": "X", "prompt": TRICKY_PROMPTS[0], "is_nsfw_r": None, "is_nsfw_x": None,
              "is_nsfw_platform": None}] * 2
    path = write_images(tmp_path / "images.parquet", recs)
    for min_count in (1, 3):
        got = analyse.prompt_term_counts(path, definition, sample_percent, min_count)
        want = _prompt_term_counts_reference(path, definition, sample_percent, min_count)
        assert min_count > 1 or (len(got) > 20 and got["n_titlecase"].gt(0).sum() > 10
                                 and got["n_attributed"].gt(0).sum() > 3)
        pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_lower_keeps_every_code_point_in_its_token_class():
    """prompt_term_counts lower-cases whole prompts before splitting them into tokens: that gives
    the tokens of lower-casing each token only if lower() maps one code point to one and never
    moves one into or out of the token class (letters, digits, underscore)."""
    from helpers import db

    moved, widened = db.connection_or_default(None).execute(r"""
        WITH c AS (SELECT chr(i::INTEGER) AS ch FROM range(1, 1114112) t(i) WHERE i < 55296 OR i > 57343)
        SELECT count(*) FILTER (WHERE regexp_full_match(ch, '[\pL\pN_]') <> regexp_full_match(lower(ch), '[\pL\pN_]')),
               count(*) FILTER (WHERE length(lower(ch)) <> 1)
        FROM c""").fetchone()
    assert (moved, widened) == (0, 0)
    text = "".join(chr(i) for i in range(1, 0x3000) if not 0xD800 <= i <= 0xDFFF)
    same = db.connection_or_default(None).execute(
        "SELECT lower(?) = list_reduce(list_transform(split(?, ''), lambda ch: lower(ch)), lambda a, b: a || b)",
        [text, text]).fetchone()[0]
    assert same  # lower() of a text is lower() of each of its characters


def test_markers_by_month_and_nsfw_by_marker(tmp_path: Path):
    recs = ([{"month": "2023-05", "level": "X", "mk_pony": True, "mk_sexual": True}] * 4
            + [{"month": "2023-05", "level": "PG", "mk_booru": True}] * 6
            + [{"month": "2023-06", "level": "PG", "prompt": None}] * 3)
    path = write_images(tmp_path / "images.parquet", recs)
    out = analyse.markers_by_month(path).set_index(["marker", "month"])
    assert out.loc[("pony", "2023-05"), "k"] == 4 and out.loc[("pony", "2023-05"), "n"] == 10
    assert out.loc[("booru", "2023-05"), "share"] == pytest.approx(0.6)
    assert ("pony", "2023-06") not in out.index  # images without a prompt are not counted
    by = analyse.nsfw_share_by_marker(path).set_index(["marker", "has_marker"])
    assert by.loc[("sexual", True), "share"] == pytest.approx(1.0)
    assert by.loc[("sexual", False), "share"] == pytest.approx(0.0)
    # No prompt carries the minor or real-person markers: those are named, not compared.
    assert set(by.index.get_level_values("marker")) == {"booru", "pony", "sexual"}
    gaps = analyse.markers_not_compared(analyse.markers_by_month(path))
    assert gaps == {m: analyse.NotEstimable("no prompt carries this marker")
                    for m in ("minor", "real_person")}


def test_creator_concentration_known_distribution(tmp_path: Path):
    # 200 users: 198 post one image, two post 101 images each -> total 400 images.
    recs = [{"user_hash": f"a{i}"} for i in range(198)]
    recs += [{"user_hash": "big1"}] * 101 + [{"user_hash": "big2"}] * 101 + [{"user_hash": None}] * 5
    path = write_images(tmp_path / "images.parquet", recs)
    dist = analyse.images_per_user_distribution(path)
    assert dist.set_index("images")["users"].to_dict() == {1: 198, 101: 2}
    summary, lorenz = analyse.creator_concentration(path, min_users=2)
    values = np.r_[np.ones(198), 101.0, 101.0]
    assert summary["gini"] == pytest.approx(analyse.gini(values))
    assert summary["n_users"] == 200 and summary["n_images_with_user"] == 400
    assert summary["top1_share"] == pytest.approx(202 / 400)
    assert lorenz["image_share"].is_monotonic_increasing
    # Privacy floor: the top 1% (2 users) is below 10 users, so it is not reported.
    strict, strict_curve = analyse.creator_concentration(path)
    assert strict["top1_share"] == analyse.NotEstimable(
        "the top 1% of users are fewer than 10 (privacy floor)")
    assert not math.isnan(strict["gini"])
    kept = strict_curve["population_share"].to_numpy()
    inner = kept[(kept > 0) & (kept < 1)]
    assert ((inner * 200 >= 10) & ((1 - inner) * 200 >= 10)).all()


def test_creator_concentration_needs_min_users(tmp_path: Path):
    path = write_images(tmp_path / "images.parquet", [{"user_hash": f"u{i}"} for i in range(5)])
    summary, curve = analyse.creator_concentration(path)
    floor = analyse.NotEstimable("fewer than 10 users posted images (privacy floor)")
    assert summary == floor and curve == floor


def test_unknown_definition_is_refused(monthly_images: Path):
    with pytest.raises(ValueError, match="unknown NSFW definition"):
        analyse.nsfw_share_by_adapter_use(monthly_images, definition="soft")


# --------------------------------------------------------------------------- models
@pytest.fixture()
def models() -> pd.DataFrame:
    """40 models: 10 real-person (8 female, 1 male, 1 unknown), months Jan/Feb 2023."""
    recs = []
    for i in range(8):
        recs.append({"name": f"Valena Morcastle{i} celebrity", "tags": ["celebrity", "woman", f"morcastle{i}", "emma"],
                     "is_real_person": True, "depicted_gender": "female", "is_nsfw_r": i < 6,
                     "download_count": 1000 + i, "month": "2023-01", "trigger_words": ["valena"]})
    recs.append({"name": "Doran Keswick", "tags": ["celebrity", "man"], "is_real_person": True,
                 "depicted_gender": "male", "download_count": 900, "month": "2023-02"})
    recs.append({"name": "Someone", "tags": ["celebrity"], "is_real_person": True,
                 "depicted_gender": "unknown", "download_count": 950, "month": "2023-02"})
    for i in range(30):
        recs.append({"name": f"Anime style {i}", "tags": ["anime", "style"], "is_nsfw_r": i < 3,
                     "type": "Checkpoint" if i < 10 else "LORA", "is_adapter": i >= 10,
                     "base_model": "SDXL 1.0" if i % 2 else "SD 1.5",
                     "download_count": i, "month": "2023-01" if i < 15 else "2023-02"})
    return make_models(recs)


def test_model_overview_and_shares(models: pd.DataFrame):
    ov = analyse.model_overview(models)
    assert ov["n_models"] == 40 and ov["n_real_person"] == 10
    assert ov["real_person_share"] == pytest.approx(0.25)
    assert ov["adapter_share"] == pytest.approx(30 / 40)
    by_month = analyse.real_person_share_by_month(models).set_index("month")
    assert by_month.loc["2023-01", "k"] == 8 and by_month.loc["2023-01", "n"] == 23
    lo, hi = wilson_by_hand(8, 23)
    assert by_month.loc["2023-01", "ci_low"] == pytest.approx(lo)
    by_type = analyse.real_person_share_by_type(models).set_index("type")
    assert by_type.loc["Checkpoint", "k"] == 0 and by_type.loc["LORA", "k"] == 10


def test_types_and_base_models_by_month(models: pd.DataFrame):
    types = analyse.model_types_by_month(models, top_k=1)
    assert set(types["type"]) == {"LORA", "Other"}
    assert types.groupby("month")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    base = analyse.base_models_by_month(models)
    assert base["n"].sum() == 40
    adapters = analyse.adapter_share_by_month(models)
    assert adapters["k"].sum() == 30


def test_depicted_gender_split(models: pd.DataFrame):
    out = analyse.depicted_gender_split(models).set_index("depicted_gender")
    assert out.loc["female", "k"] == 8 and out.loc["female", "n"] == 10
    assert out.loc["female", "share_of_known"] == pytest.approx(8 / 9)
    lo, hi = wilson_by_hand(8, 9)
    assert out.loc["female", "known_ci_low"] == pytest.approx(lo)
    assert math.isnan(out.loc["unknown", "share_of_known"])


def test_nsfw_share_by_depicted_gender_and_real_person(models: pd.DataFrame):
    out = analyse.nsfw_share_by_depicted_gender(models).set_index("group")
    assert out.loc["real person: female", "share"] == pytest.approx(6 / 8)
    assert out.loc["not a real person", "share"] == pytest.approx(3 / 30)
    rp = analyse.nsfw_share_by_real_person(models).set_index("is_real_person")
    assert rp.loc[True, "k"] == 6 and rp.loc[True, "n"] == 10
    assert rp.loc[True, "odds_ratio"] == pytest.approx((6 * 27) / (4 * 3))


def test_model_nsfw_definition_falls_back_to_what_the_snapshot_has(models: pd.DataFrame):
    assert analyse.model_nsfw_definition(models, "r") == "r"
    no_levels = models.assign(is_nsfw_r=None, is_nsfw_x=None)
    assert analyse.model_nsfw_definition(no_levels, "r") == "platform"
    with pytest.raises(ValueError):
        analyse.model_nsfw_definition(models, "soft")


def test_engagement_real_person_vs_other(models: pd.DataFrame):
    out = analyse.engagement_real_person_vs_other(models, metrics=["download_count"]).iloc[0]
    assert out["rank_biserial"] == pytest.approx(1.0)  # every real-person model out-downloads
    nsfw = analyse.engagement_nsfw_vs_sfw_models(models, metrics=["download_count"]).iloc[0]
    assert nsfw["n_nsfw"] == 9
    dl = analyse.real_person_downloads(models)
    assert dl["real_person_downloads"] == sum(1000 + i for i in range(8)) + 900 + 950


def test_top_tags_exclude_personal_names(models: pd.DataFrame):
    name_filter = analyse.personal_name_filter(models)
    assert "Morcastle" not in repr(name_filter) and "valena" not in repr(name_filter)
    for name in ("morcastle3", "valena", "valena morcastle0 celebrity", "emma", "doran keswick"):
        assert name_filter(name), name
    for word in ("celebrity", "woman", "anime", "style", "1girl"):
        assert not name_filter(word), word
    rp = analyse.top_tags(models, "real_person", top_n=10)
    assert rp["tag"].tolist()[:2] == ["celebrity", "woman"]
    assert not any("morcastle" in t or t == "emma" for t in rp["tag"])
    assert rp["n_name_tags_removed"].iloc[0] == 9  # morcastle0..7 and emma
    everything = analyse.top_tags(models, "all", top_n=3)
    assert everything["tag"].tolist() == ["anime", "style", "celebrity"]
    assert everything.loc[0, "share"] == pytest.approx(30 / 40)
    with pytest.raises(ValueError):
        analyse.top_tags(models, "women")


# --------------------------------------------------------------------------- planted truth
@pytest.fixture(scope="module")
def planted_run(synthetic_run):
    """The synthetic snapshot through the real adapter, cleaning and labelling (conftest), with
    the per-month expectations given the users who posted its images: the naive intervals
    checked here treat images as independent, which they are given their users (the planted
    paths hold over users, checked with user-clustered intervals in test_planted_users)."""
    from helpers import synth

    truth = dict(synthetic_run.truth)
    given = synth.user_month_truth(synthetic_run.params).groupby("month").sum(numeric_only=True)
    nsfw = given["nsfw"] / given["n"]
    x_given_nsfw = pd.Series({m: sum(mix[x] for x in ("X", "XXX", "Blocked"))
                              for m, mix in truth["nsfw_level_mix_by_month"].items()})
    pg13 = pd.Series({m: mix["PG13"] for m, mix in truth["sfw_level_mix_by_month"].items()})
    truth["given_users"] = {
        "nsfw_share_by_month": nsfw.to_dict(),
        "x_share_by_month": (nsfw * x_given_nsfw).to_dict(),
        "platform_flag_share_by_month": (nsfw + truth["pg13_flagged_share"] * (1 - nsfw) * pg13).to_dict(),
        "lora_share_by_month": (given["adapter"] / given["prompted"]).to_dict()}
    return synthetic_run.paths, truth


@pytest.mark.parametrize("definition,truth_key", [("r", "nsfw_share_by_month"),
                                                  ("x", "x_share_by_month"),
                                                  ("platform", "platform_flag_share_by_month")])
def test_planted_monthly_nsfw_share_inside_intervals(planted_run, definition, truth_key):
    paths, truth = planted_run
    monthly = analyse.nsfw_share_by_month(paths.table("processed", "images"))
    got = monthly[monthly["definition"] == definition].set_index("month")
    planted = truth["given_users"][truth_key]
    assert set(got.index) == set(planted) == set(truth[truth_key])
    inside = [got.loc[m, "ci_low"] <= share <= got.loc[m, "ci_high"] for m, share in planted.items()]
    # 95% intervals over 26 months, given the users: a few misses are expected, and the three
    # definitions share their draws, so they miss together (the session's seed misses 3 to 5).
    assert sum(inside) / len(inside) >= 0.8, f"{sum(inside)} of {len(inside)} months cover the truth"


def test_planted_trend_and_adapter_effect(planted_run):
    paths, truth = planted_run
    images = paths.table("processed", "images")
    trend = analyse.trend_frame(analyse.nsfw_share_trend(analyse.nsfw_share_by_month(images)))
    trend = trend.set_index("definition")
    assert trend.loc["r", "ci_low"] > 1 and trend.loc["r", "mk_tau"] > 0.5  # planted rise
    lora = analyse.lora_use_by_month(images).set_index("month")
    inside = [lora.loc[m, "ci_low"] <= s <= lora.loc[m, "ci_high"]
              for m, s in truth["given_users"]["lora_share_by_month"].items()]
    assert sum(inside) / len(inside) >= 0.9
    by_use = analyse.nsfw_share_by_adapter_use(images).set_index("uses_adapter")
    assert by_use.loc[True, "share"] > by_use.loc[False, "share"] and by_use.loc[True, "or_ci_low"] > 1


def test_planted_real_person_share_and_gender(planted_run):
    paths, truth = planted_run
    models = pd.read_parquet(paths.table("processed", "models"))
    overview = analyse.model_overview(models)
    assert abs(overview["real_person_share"] - truth["real_person_share"]) <= 0.02
    gender = analyse.depicted_gender_split(models).set_index("depicted_gender")
    assert gender.loc["female", "share_of_known"] > gender.loc["male", "share_of_known"]
    tags = analyse.top_tags(models, "real_person", top_n=30)
    name_filter = analyse.personal_name_filter(models)
    assert not any(name_filter(t) for t in tags["tag"])
    real_names = {" ".join(analyse.word_tokens(n)) for n in models.loc[models["poi"], "name"]}
    assert not set(tags["tag"]) & real_names


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_top_tags_on_real_models_keep_vocabulary_and_drop_names(api_run):
    """On 5,394 real CivitAI models (697 flagged as real people): the published tag lists keep
    the platform's vocabulary and contain no tag that is (part of) a flagged model's name."""
    models = pd.read_parquet(api_run.table("interim", "models"))
    # Every record carries the platform's flag, which is what the label uses for them.
    models["is_real_person"] = models["poi"].fillna(False).astype(bool)
    name_filter = analyse.personal_name_filter(models)
    flagged = models[models["is_real_person"]]
    names = [" ".join(analyse.word_tokens(n)) for n in flagged["name"]]
    for subset in ("real_person", "all"):
        tags = analyse.top_tags(models, subset, top_n=40, name_filter=name_filter)
        assert len(tags) == 40 and tags["n_name_tags_removed"].iloc[0] > 0
        for tag in tags["tag"]:
            words = " ".join(analyse.word_tokens(tag))
            # A multi-word tag inside a flagged model's name is a name unless all its words are
            # common vocabulary (e.g. "textual inversion").
            generic = set(words.split()) <= name_filter.common_words
            assert generic or not any(f" {words} " in f" {n} " for n in names), tag
            assert not name_filter(tag)
    kept = set(analyse.top_tags(models, "real_person", top_n=40, name_filter=name_filter)["tag"])
    assert {"celebrity", "woman", "actress"} <= kept
