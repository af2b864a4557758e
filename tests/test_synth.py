"""Tests of the synthetic snapshot generator (:mod:`helpers.synth`).

Planted-truth tests compare the generated data with :func:`synth.expected_truth`. Shares are
binomial: a share ``p`` estimated from ``n`` independent rows has standard error
``sqrt(p (1 - p) / n)``, and each check allows ``Z = 4.5`` standard errors, so a correct
generator fails a single check with probability < 1e-5 and the ~100 checks here together
with probability < 1e-3 (the seed is fixed, so in practice a test either always passes or
exposes a real bias).

Shares that depend on who posts (NSFW and adapter use: users differ in propensity) are not
binomial around the planted path: a few heavy users move them. They are checked against their
expectation given the users who actually posted (:func:`synth.user_month_truth`), around which
they are binomial (or tighter); that the planted path holds over users is checked by the
calibration test in ``test_planted_users.py`` and by the user-respecting intervals there.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from helpers import db
from helpers import synth
from helpers.paths import RunPaths, repo_root

Z = 4.5

# The format contract of the brief, written out here (not taken from the module) on purpose.
IMAGE_COLUMNS = [
    ("id", pa.int64()), ("createdAt", pa.string()), ("url", pa.string()),
    ("positivePrompt", pa.string()), ("negativePrompt", pa.string()), ("nsfw", pa.bool_()),
    ("browsingLevel", pa.int64()), ("statsSummary", pa.string()), ("usernameHash", pa.string()),
    ("baseModel", pa.string()), ("modelId", pa.int64()),
]
MODEL_COLUMNS = [
    ("id", pa.int64()), ("name", pa.string()), ("description", pa.string()), ("type", pa.string()),
    ("nsfw", pa.bool_()), ("nsfwLevel", pa.int64()), ("poi", pa.bool_()),
    ("tags", pa.list_(pa.string())), ("usernameHash", pa.string()),
    ("stats", pa.struct([("downloadCount", pa.int64()), ("favoriteCount", pa.int64()),
                         ("commentCount", pa.int64()), ("ratingCount", pa.int64()),
                         ("rating", pa.float64())])),
    ("modelVersions", pa.list_(pa.struct([("id", pa.int64()), ("name", pa.string()),
                                          ("createdAt", pa.string()), ("baseModel", pa.string()),
                                          ("trainedWords", pa.list_(pa.string())),
                                          ("files", pa.list_(pa.struct([("name", pa.string()),
                                                                         ("type", pa.string())])))]))),
]
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
URL = re.compile(r"^https://image\.civitai\.invalid/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jpeg$")
CIVIVERSE_CARD = {"2023-10": 0.5519, "2023-11": 0.5829, "2023-12": 0.5597, "2024-01": 0.5859,
                  "2024-02": 0.6121, "2024-03": 0.6504, "2024-04": 0.7294}


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[synth.SynthParams, Path]:
    """One snapshot large enough for planted-truth checks, written in three chunks."""
    params = synth.default_params(n_images=60_000, n_models=3_000, chunk_rows=25_000)
    out = tmp_path_factory.mktemp("synth")
    synth.write_snapshot(out, params)
    return params, out


@pytest.fixture(scope="session")
def given_users(snapshot: tuple[synth.SynthParams, Path]) -> pd.DataFrame:
    """Per month: expected NSFW share and share of prompted images calling an adapter, given the
    users who posted the snapshot's images."""
    params, _ = snapshot
    return expected_given_users(params)


def expected_given_users(params: synth.SynthParams) -> pd.DataFrame:
    truth = synth.user_month_truth(params).groupby("month")[["n", "nsfw", "adapter"]].sum()
    return pd.DataFrame({"nsfw": truth["nsfw"] / truth["n"],
                         "lora": truth["adapter"] / truth["n"] / (1 - params.missing_prompt_share)})


@pytest.fixture(scope="session")
def raw_images(snapshot: tuple[synth.SynthParams, Path]) -> pa.Table:
    """Every image row of the snapshot, good and messy, in file order."""
    _, out = snapshot
    return pq.read_table(out / "images")


@pytest.fixture(scope="session")
def images(snapshot: tuple[synth.SynthParams, Path], raw_images: pa.Table) -> pd.DataFrame:
    """The good images (the first ``n_images`` rows) with parsed time, month, stats and LoRA."""
    params, _ = snapshot
    df = raw_images.slice(0, params.n_images).to_pandas()
    df["time"] = pd.to_datetime(df["createdAt"], utc=True, format="ISO8601")
    df["month"] = df["time"].dt.strftime("%Y-%m")
    df["has_prompt"] = df["positivePrompt"].notna()
    df["has_lora"] = df["positivePrompt"].str.contains("<lora:", regex=False, na=False).astype(bool)
    df["is_r"] = df["browsingLevel"] >= 4
    return df


@pytest.fixture(scope="session")
def raw_models(snapshot: tuple[synth.SynthParams, Path]) -> pa.Table:
    """Every model row of the snapshot, good and messy, in file order."""
    _, out = snapshot
    return pq.read_table(out / "models")


@pytest.fixture(scope="session")
def models(snapshot: tuple[synth.SynthParams, Path], raw_models: pa.Table) -> pd.DataFrame:
    """The good models (the first ``n_models`` rows)."""
    params, _ = snapshot
    return raw_models.slice(0, params.n_models).to_pandas()


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_share(observed: pd.Series, expected: float, what: str) -> None:
    """A share of a boolean series lies within Z binomial standard errors of ``expected``."""
    n = len(observed)
    assert n > 0, f"no rows for {what}"
    se = math.sqrt(max(expected * (1 - expected), 1e-12) / n)
    share = float(observed.mean())
    assert abs(share - expected) <= Z * se + 1e-9, \
        f"{what}: observed {share:.4f} from {n} rows, planted {expected:.4f} (tolerance {Z * se:.4f})"


def assert_monthly_shares(df: pd.DataFrame, flag: str, truth: dict[str, float], what: str) -> None:
    for month, rows in df.groupby("month"):
        assert_share(rows[flag], truth[month], f"{what} in {month}")


# --------------------------------------------------------------------------- parameters
def test_civiverse_months_are_exact_in_defaults() -> None:
    params = synth.default_params()
    for month, share in CIVIVERSE_CARD.items():
        assert params.nsfw_share_by_month[month] == share
    assert synth.expected_truth(params)["civiverse_nsfw_share"] == CIVIVERSE_CARD


def test_default_nsfw_path_is_plausible() -> None:
    path = synth.default_params().nsfw_share_by_month
    months = synth.month_range("2022-11", "2024-12")
    assert list(path) == months
    assert path["2022-11"] == pytest.approx(0.35) and path["2024-12"] == pytest.approx(0.75)
    steps = np.diff([path[m] for m in months])
    assert np.all(np.abs(steps) < 0.09), "the path moves smoothly month to month"
    lora = synth.default_params().lora_share_by_month
    assert lora["2022-11"] == pytest.approx(0.15) and lora["2024-12"] == pytest.approx(0.60)


def test_window_override_rebuilds_paths_and_bad_params_fail(tmp_path: Path) -> None:
    params = synth.default_params(start_month="2022-11", end_month="2023-12", n_images=500, n_models=50)
    assert set(params.nsfw_share_by_month) == set(synth.month_range("2022-11", "2023-12"))
    assert params.nsfw_share_by_month["2023-10"] == CIVIVERSE_CARD["2023-10"]
    synth.write_snapshot(tmp_path, params)  # base models launching later simply never appear
    df = pq.read_table(tmp_path / "images").slice(0, params.n_images).to_pandas()
    assert set(df["baseModel"]) <= {"SD 1.5", "SDXL 1.0"} and df["createdAt"].max() < "2024"
    with pytest.raises(ValueError, match="n_models"):
        synth.default_params(n_models=5)
    with pytest.raises(ValueError, match="nsfw_share_by_month lacks"):
        synth.default_params(nsfw_share_by_month={"2022-11": 0.3})
    with pytest.raises(TypeError, match="unknown"):
        synth.default_params(n_rows=10)


@pytest.mark.parametrize("share,exposed,odds_ratio", [
    (0.35, 0.15, 2.5), (0.73, 0.6, 2.5), (0.5, 0.5, 1.0), (0.1, 0.9, 4.0), (0.9, 0.05, 0.5)])
def test_split_by_odds_ratio_keeps_marginal_and_odds_ratio(share: float, exposed: float,
                                                          odds_ratio: float) -> None:
    p0, p1 = synth.split_by_odds_ratio(np.array([share]), np.array([exposed]), odds_ratio)
    assert (1 - exposed) * p0[0] + exposed * p1[0] == pytest.approx(share, abs=1e-9)
    assert (p1[0] / (1 - p1[0])) / (p0[0] / (1 - p0[0])) == pytest.approx(odds_ratio, rel=1e-6)


def test_expected_truth_volume_grows_strongly() -> None:
    truth = synth.expected_truth(synth.default_params())
    counts = list(truth["images_per_month"].values())
    assert sum(counts) == 30_000
    assert all(b >= a for a, b in zip(counts, counts[1:]))
    assert counts[-1] > 10 * counts[0]


# --------------------------------------------------------------------------- files
def test_same_params_give_identical_files_and_stale_parts_go(tmp_path: Path) -> None:
    params = synth.default_params(n_images=8_000, n_models=300, chunk_rows=3_000)
    first = synth.write_snapshot(tmp_path / "a", params)
    synth.write_snapshot(tmp_path / "b", params)
    hashes = file_hashes(tmp_path / "a")
    assert hashes == file_hashes(tmp_path / "b")
    assert sorted(hashes) == ["images/part-00000.parquet", "images/part-00001.parquet",
                              "images/part-00002.parquet", "models/part-00000.parquet"]
    assert params.messy_rows == 32 and params.messy_model_rows == 1
    assert first["rows"] == {"images": 8_032, "models": 301}
    assert first["files"]["images"] == ["images/part-00000.parquet", "images/part-00001.parquet",
                                        "images/part-00002.parquet"]
    # Another seed gives other data; a smaller rewrite leaves no stale chunk behind.
    synth.write_snapshot(tmp_path / "b", replace_params(params, seed=1, n_images=2_000))
    assert sorted(file_hashes(tmp_path / "b")) == ["images/part-00000.parquet", "models/part-00000.parquet"]
    assert file_hashes(tmp_path / "b")["models/part-00000.parquet"] != hashes["models/part-00000.parquet"]
    assert not list((tmp_path / "a").rglob("*.tmp"))


def replace_params(params: synth.SynthParams, **changes: object) -> synth.SynthParams:
    from dataclasses import replace
    return replace(params, **changes)


def test_image_schema_and_values(snapshot: tuple[synth.SynthParams, Path], images: pd.DataFrame,
                                 models: pd.DataFrame) -> None:
    params, out = snapshot
    for path in sorted((out / "images").glob("*.parquet")):
        got = pq.read_schema(path)
        assert [(f.name, f.type) for f in got] == IMAGE_COLUMNS, path.name
    assert images["createdAt"].str.match(ISO_MS.pattern).all()
    assert images["url"].str.match(URL.pattern).all()
    assert images["url"].is_unique
    assert set(images["browsingLevel"]) <= {1, 2, 4, 8, 16, 32}
    assert (images["browsingLevel"] == 32).mean() < 0.01
    assert images["usernameHash"].str.fullmatch(r"[0-9a-f]{16}").all()
    stats = images["statsSummary"].head(2_000).map(json.loads)
    assert all(set(s) == {"likeCount", "heartCount", "laughCount", "cryCount", "commentCount"}
               and all(isinstance(v, int) and v >= 0 for v in s.values()) for s in stats)
    assert set(images["modelId"]) <= set(models["id"])
    # Prompts: missing ones have no negative prompt either; present ones are comma-separated.
    assert_share(~images["has_prompt"], params.missing_prompt_share, "images without prompt")
    assert images.loc[~images["has_prompt"], "negativePrompt"].isna().all()
    assert images.loc[images["has_prompt"], "positivePrompt"].str.contains(", ").mean() > 0.95


def test_ids_unique_increasing_with_time_and_inside_window(snapshot: tuple[synth.SynthParams, Path],
                                                           images: pd.DataFrame) -> None:
    params, _ = snapshot
    assert images["id"].is_unique
    assert images["id"].is_monotonic_increasing  # files are read in chunk order
    assert images["time"].is_monotonic_increasing
    start = pd.Timestamp(f"{params.start_month}-01", tz="UTC")
    end = pd.Timestamp(f"{params.end_month}-01", tz="UTC") + pd.offsets.MonthBegin(1)
    assert images["time"].min() >= start and images["time"].max() < end
    counts = images.groupby("month").size()
    assert counts.to_dict() == synth.expected_truth(params)["images_per_month"]


def test_model_schema_and_values(snapshot: tuple[synth.SynthParams, Path], models: pd.DataFrame) -> None:
    params, out = snapshot
    assert [(f.name, f.type) for f in pq.read_schema(out / "models" / "part-00000.parquet")] == MODEL_COLUMNS
    assert len(models) == params.n_models
    assert models["id"].is_unique and models["id"].is_monotonic_increasing
    assert models["description"].str.startswith("<p>").all()
    assert models["nsfwLevel"].between(1, 63).all()
    assert (models["nsfw"] == (models["nsfwLevel"] >= 4)).all()  # highest level >= R
    assert set(models["type"]) <= {"LORA", "LoCon", "DoRA", "Checkpoint", "TextualInversion", "Hypernetwork"}
    start = f"{params.start_month}-01T00:00:00.000Z"
    end = f"{synth.month_range(params.end_month, params.end_month)[0]}-31T23:59:59.999Z"
    stems = []
    for versions in models["modelVersions"]:
        assert len(versions) >= 1
        files = [f["name"] for v in versions for f in v["files"]]
        assert len(files) == len(versions) and all(f.endswith(".safetensors") for f in files)
        stems.append(files[0].removesuffix(".safetensors"))
        dates = [v["createdAt"] for v in versions]
        assert dates == sorted(dates) and all(ISO_MS.match(d) for d in dates)
        assert start <= dates[0] and dates[-1] <= end
    assert not models.loc[models["poi"], "type"].eq("Checkpoint").any()
    assert len(set(stems)) >= 0.99 * len(stems)  # one model per file name, bar slugs like "x_2"


def test_planted_share_of_adapter_calls_by_a_name_no_file_has(snapshot, images, models) -> None:
    params, _ = snapshot
    stems = {f["name"].removesuffix(".safetensors") for versions in models["modelVersions"]
             for v in versions for f in v["files"]}
    calls = images["positivePrompt"].dropna().str.findall(r"<lora:([^:>]+):").explode().dropna()
    unresolvable = 1 - calls.isin(stems).mean()
    se = (params.unresolvable_call_share * (1 - params.unresolvable_call_share) / len(calls)) ** 0.5
    assert len(calls) > 10_000
    assert abs(unresolvable - synth.expected_truth(params)["adapter_call_unresolvable_share"]) < 4 * se


def test_chunking_keeps_marginals(tmp_path: Path) -> None:
    one = synth.default_params(n_images=20_000, n_models=400, chunk_rows=20_000)
    many = replace_params(one, chunk_rows=3_000)
    synth.write_snapshot(tmp_path / "one", one)
    summary = synth.write_snapshot(tmp_path / "many", many)
    assert len(summary["files"]["images"]) == 7
    truth = synth.expected_truth(one)
    shares = []
    for name in ("one", "many"):
        df = pq.read_table(tmp_path / name / "images", columns=["id", "createdAt", "browsingLevel"])
        assert df.num_rows == truth["raw_image_rows"]
        df = df.slice(0, one.n_images).to_pandas()  # the good rows; messy ones follow them
        assert df["id"].is_unique and df["id"].is_monotonic_increasing
        months = df["createdAt"].str[:7].value_counts().sort_index().to_dict()
        assert months == truth["images_per_month"]
        # Each chunking draws its images anew (users included): each matches its own users.
        given = expected_given_users(one if name == "one" else many)["nsfw"]
        expected = float((given * pd.Series(truth["images_per_month"])).sum() / one.n_images)
        assert_share(df["browsingLevel"] >= 4, expected, f"NSFW share given users ({name})")
        shares.append(float((df["browsingLevel"] >= 4).mean()))
    # Same population and plan, different draws: the shares differ by no more than users allow.
    assert abs(shares[0] - shares[1]) < 0.1


# --------------------------------------------------------------------------- planted truth
def test_monthly_nsfw_share_matches_planted(snapshot: tuple[synth.SynthParams, Path],
                                            images: pd.DataFrame, given_users: pd.DataFrame) -> None:
    truth = synth.expected_truth(snapshot[0])
    nsfw = given_users["nsfw"]
    assert_monthly_shares(images, "is_r", nsfw.to_dict(), "share of level >= R given users")
    # Given NSFW, the level and the flag do not depend on the user: the planted mixes apply.
    months = list(nsfw.index)
    x_given_nsfw = {m: sum(truth["nsfw_level_mix_by_month"][m][x] for x in ("X", "XXX", "Blocked"))
                    for m in months}
    pg13_given_sfw = {m: truth["sfw_level_mix_by_month"][m]["PG13"] for m in months}
    images = images.assign(is_x=images["browsingLevel"] >= 8)
    assert_monthly_shares(images, "is_x", {m: nsfw[m] * x_given_nsfw[m] for m in months},
                          "share of level >= X given users")
    flag = {m: nsfw[m] + truth["pg13_flagged_share"] * (1 - nsfw[m]) * pg13_given_sfw[m] for m in months}
    assert_monthly_shares(images, "nsfw", flag, "platform flag share given users")
    # Over users the expectation is the planted path (the calibration): the same mixes give it.
    for m in months:
        planted = truth["nsfw_share_by_month"][m]
        assert truth["x_share_by_month"][m] == pytest.approx(planted * x_given_nsfw[m])
        assert truth["platform_flag_share_by_month"][m] == pytest.approx(
            planted + truth["pg13_flagged_share"] * (1 - planted) * pg13_given_sfw[m])


def test_realised_users_move_the_shares_but_not_beyond_what_users_allow(
        snapshot: tuple[synth.SynthParams, Path], images: pd.DataFrame, given_users: pd.DataFrame) -> None:
    """The realised users' expectation differs from the planted path (heavy users move it) by
    about what the user-level spread predicts, and the two agree on average over months."""
    truth = synth.expected_truth(snapshot[0])
    planted = pd.Series(truth["nsfw_share_by_month"])
    gap = given_users["nsfw"] - planted
    assert gap.abs().max() > 0.01             # users matter
    assert gap.abs().max() < 0.2              # but do not overturn the path
    counts = pd.Series(truth["images_per_month"])
    assert abs(float((gap * counts).sum() / counts.sum())) < 0.06


def test_platform_flag_differs_from_levels(images: pd.DataFrame) -> None:
    truth_pg13 = 0.2
    assert images.loc[images["is_r"], "nsfw"].all()
    assert not images.loc[images["browsingLevel"] == 1, "nsfw"].any()
    assert_share(images.loc[images["browsingLevel"] == 2, "nsfw"], truth_pg13, "flagged PG13 images")


def test_level_mix_hardens_over_time(snapshot: tuple[synth.SynthParams, Path], images: pd.DataFrame) -> None:
    truth = synth.expected_truth(snapshot[0])
    nsfw = images[images["is_r"]]
    late = nsfw[nsfw["month"] >= "2024-07"]
    early = nsfw[nsfw["month"] <= "2023-12"]
    assert (late["browsingLevel"] >= 16).mean() > (early["browsingLevel"] >= 16).mean()
    dec = truth["nsfw_level_mix_by_month"]["2024-12"]
    assert_share(nsfw.loc[nsfw["month"] == "2024-12", "browsingLevel"] == 16, dec["XXX"], "XXX within NSFW, 2024-12")


def test_lora_share_and_odds_ratio_match_planted(snapshot: tuple[synth.SynthParams, Path],
                                                 images: pd.DataFrame, given_users: pd.DataFrame) -> None:
    truth = synth.expected_truth(snapshot[0])
    prompted = images[images["has_prompt"]]
    assert_monthly_shares(prompted, "has_lora", given_users["lora"].to_dict(), "LoRA share given users")
    # Mantel–Haenszel odds ratio over user × month strata (NSFW and LoRA both rise with time
    # and NSFW-prone users call adapters more, so a pooled odds ratio would be confounded);
    # variance by Robins, Breslow & Greenland (1986).
    num = den = sum_pr = sum_ps_qr = sum_qs = 0.0
    for _, g in prompted.groupby(["month", "usernameHash"]):
        a = float((g.has_lora & g.is_r).sum()); b = float((g.has_lora & ~g.is_r).sum())
        c = float((~g.has_lora & g.is_r).sum()); d = float((~g.has_lora & ~g.is_r).sum())
        n = a + b + c + d
        r, s = a * d / n, b * c / n
        p, q = (a + d) / n, (b + c) / n
        num, den = num + r, den + s
        sum_pr, sum_ps_qr, sum_qs = sum_pr + p * r, sum_ps_qr + p * s + q * r, sum_qs + q * s
    log_or = math.log(num / den)
    se = math.sqrt(sum_pr / (2 * num ** 2) + sum_ps_qr / (2 * num * den) + sum_qs / (2 * den ** 2))
    planted = math.log(truth["lora_nsfw_odds_ratio"])
    assert abs(log_or - planted) <= Z * se, f"MH odds ratio {math.exp(log_or):.2f}, planted {math.exp(planted):.2f}"


def test_real_person_share_and_gender_match_planted(snapshot: tuple[synth.SynthParams, Path],
                                                    models: pd.DataFrame) -> None:
    truth = synth.expected_truth(snapshot[0])
    assert_share(models["poi"], truth["real_person_share"], "real-person models")
    people = models[models["poi"]]
    tags = people["tags"].map(set)
    female = tags.map(lambda t: "woman" in t and "man" not in t)
    male = tags.map(lambda t: "man" in t and "woman" not in t)
    mixed = tags.map(lambda t: "woman" in t and "man" in t)
    assert (female | male | mixed).all()
    assert_share(female, truth["real_person_female_share"], "female real-person models")
    assert_share(mixed, truth["real_person_mixed_share"], "mixed real-person models")
    cues = {"celebrity", "actress", "actor", "real person", "influencer", "instagram model", "singer",
            "tiktoker", "cosplayer", "fashion model", "streamer", "athlete"}
    assert tags.map(lambda t: bool(t & cues)).all()
    trained = people["modelVersions"].map(lambda v: list(v[0]["trainedWords"]))
    assert trained.map(len).gt(0).all()
    # Real-person models are downloaded more (planted median ratio), others are not people.
    downloads = models["stats"].map(lambda s: s["downloadCount"])
    assert downloads[models["poi"]].median() > downloads[~models["poi"]].median()


def test_base_models_and_types_follow_the_timeline(images: pd.DataFrame, models: pd.DataFrame) -> None:
    first_month = images.groupby("baseModel")["month"].min().to_dict()
    assert first_month == {"SD 1.5": "2022-11", "SDXL 1.0": "2023-07", "Pony": "2024-01", "Flux.1 D": "2024-08"}
    # The checkpoint an image names has the image's base model and existed by its month.
    ckpt = models.set_index("id")
    used = ckpt.loc[images["modelId"]]
    assert (used["type"].to_numpy() == "Checkpoint").all()
    assert (used["modelVersions"].map(lambda v: v[0]["baseModel"]).to_numpy() == images["baseModel"].to_numpy()).all()
    created = used["modelVersions"].map(lambda v: v[0]["createdAt"][:7]).to_numpy()
    assert (created <= images["month"].to_numpy()).all()
    # Pony tokens concentrate in Pony images; NSFW images favour Pony.
    pony_tokens = images["positivePrompt"].str.contains("score_9", regex=False, na=False)
    assert pony_tokens[images["baseModel"] == "Pony"].mean() > 0.9
    assert pony_tokens[images["baseModel"] == "SD 1.5"].mean() == 0
    created_model = models["modelVersions"].map(lambda v: v[0]["createdAt"][:4])
    lora_share = models.groupby(created_model)["type"].apply(lambda t: (t == "LORA").mean())
    assert lora_share["2024"] > lora_share["2022"]


def test_engagement_and_creators_are_heavy_tailed(images: pd.DataFrame, models: pd.DataFrame) -> None:
    likes = images["statsSummary"].map(lambda s: json.loads(s)["likeCount"])
    assert likes[images["is_r"]].mean() > likes[~images["is_r"]].mean()
    downloads = models["stats"].map(lambda s: s["downloadCount"]).sort_values(ascending=False)
    assert downloads.head(len(downloads) // 100).sum() > 0.2 * downloads.sum()
    per_user = images["usernameHash"].value_counts()
    assert per_user.head(max(1, len(per_user) // 100)).sum() > 0.2 * len(images)
    assert len(per_user) <= len(images) // 15


def test_no_minor_coded_terms_anywhere(images: pd.DataFrame, models: pd.DataFrame) -> None:
    lexicon = json.loads((repo_root() / "src" / "helpers" / "resources" / "lexicon_v1.json").read_text())
    terms = sorted(lexicon["categories"]["minor"], key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\b")
    texts = set(images["positivePrompt"].dropna()) | set(images["negativePrompt"].dropna())
    texts |= set(models["name"]) | set(models["description"])
    texts |= {t for tags in models["tags"] for t in tags}
    hits = [t for t in texts if pattern.search(re.sub(r"[_()]", " ", t.lower()))]
    assert not hits, hits[:3]


def test_sample_source_reads_the_snapshot(tmp_path: Path) -> None:
    """The adapter's ``sample`` source maps every contract column (format ↔ adapter)."""
    from helpers import sources

    paths = RunPaths(tmp_path / "run").ensure()
    result = sources.acquire("sample", paths, sample_images=3_000, sample_models=200, seed=7)
    truth = synth.expected_truth(synth.default_params(n_images=3_000, n_models=200, seed=7))
    assert result.rows == {"images": truth["raw_image_rows"], "models": truth["raw_model_rows"]}
    assert truth["raw_image_rows"] == 3_012 and truth["raw_model_rows"] == 200  # 200 // 300 = 0
    # The good rows (first in file order) carry a value in every contract column.
    raw = db.read_table(paths.table("raw", "images")).slice(0, 3_000).to_pandas()
    for col in ("image_id", "created_at", "browsing_level", "nsfw", "like_count", "comment_count",
                "user_hash", "base_model", "model_id", "url"):
        assert raw[col].notna().all(), col
    raw_models = pq.read_table(paths.table("raw", "models")).slice(0, 200).to_pandas()
    for col in ("model_id", "name", "type", "poi", "nsfw_level", "created_at", "download_count"):
        assert raw_models[col].notna().all(), col


# --------------------------------------------------------------------------- messy rows
def test_messy_row_counts_default_and_switch_off(tmp_path: Path) -> None:
    params = synth.default_params()
    assert (params.messy_rows, params.messy_model_rows) == (120, 10)  # 0.4 % of 30,000; 3,000 // 300
    assert synth.SynthParams(n_images=1_000, n_models=100).messy_rows == 4  # direct construction too
    assert synth.default_params(n_images=10_000, chunk_rows=10).messy_rows == 10  # at most a chunk
    truth = synth.expected_truth(params)
    by_reason = truth["messy_rows_by_reason"]
    assert sum(by_reason.values()) == 120 and truth["raw_image_rows"] == 30_120
    assert len(by_reason) == len(synth.MESSY_IMAGE_KINDS)  # every kind planted
    assert max(by_reason.values()) - min(by_reason.values()) <= 1  # dealt out evenly
    outcome = truth["messy_rows_by_outcome"]
    assert {**outcome["quarantined"], **outcome["repaired"]} == by_reason
    assert truth["clean_image_rows"] == 30_000 + sum(outcome["repaired"].values())
    assert sum(truth["clean_images_per_month"].values()) == truth["clean_image_rows"]
    assert sum(truth["messy_models_by_reason"].values()) == 10 and truth["raw_model_rows"] == 3_010

    off = synth.default_params(n_images=2_000, n_models=300, messy_rows=0, messy_model_rows=0)
    summary = synth.write_snapshot(tmp_path, off)
    assert summary["rows"] == {"images": 2_000, "models": 300}
    assert pq.read_table(tmp_path / "images").num_rows == 2_000
    truth_off = synth.expected_truth(off)
    assert truth_off["messy_rows_by_reason"] == {} and truth_off["messy_models_by_reason"] == {}
    assert truth_off["clean_images_per_month"] == truth_off["images_per_month"]
    with pytest.raises(ValueError, match="messy_rows"):
        synth.default_params(messy_rows=-5)
    with pytest.raises(ValueError, match="messy_rows"):
        synth.default_params(n_images=10_000, chunk_rows=100, messy_rows=101)


def test_messy_rows_sit_after_the_good_rows_of_the_last_part(snapshot: tuple[synth.SynthParams, Path]) -> None:
    params, out = snapshot
    truth = synth.expected_truth(params)
    files = sorted((out / "images").glob("part-*.parquet"))
    sizes = [pq.ParquetFile(f).metadata.num_rows for f in files]
    last_good = params.n_images - (len(files) - 1) * params.chunk_rows
    assert sizes == [params.chunk_rows] * (len(files) - 1) + [last_good + params.messy_rows]
    assert sum(sizes) == truth["raw_image_rows"]
    assert pq.ParquetFile(out / "models" / "part-00000.parquet").metadata.num_rows == truth["raw_model_rows"]


#: Columns a messy image row of each kind changes relative to the good row it copies (every
#: non-duplicate row is a new image: new id and URL, except where the id itself is the defect).
IMAGE_DEFECT_COLUMNS = {
    "unparseable_created_at": {"id", "url", "createdAt"},
    "created_at_after_window": {"id", "url", "createdAt"},
    "created_at_before_window": {"id", "url", "createdAt"},
    "missing_created_at": {"id", "url", "createdAt"},
    "invalid_level": {"id", "url", "browsingLevel"},
    "missing_level": {"id", "url", "browsingLevel"},
    "like_count_negative_set_null": {"id", "url", "statsSummary"},
    "like_count_non_numeric_set_null": {"id", "url", "statsSummary"},
    "empty_prompt_set_null": {"id", "url", "positivePrompt"},
    "duplicate_id_exact": set(),
    "duplicate_id_conflict": {"positivePrompt"},
    "missing_id": {"id", "url"},
    "invalid_id": {"id", "url"},
}


def test_each_messy_image_row_has_exactly_its_planted_defect(snapshot: tuple[synth.SynthParams, Path],
                                                             raw_images: pa.Table) -> None:
    params, _ = snapshot
    plan = synth.messy_image_plan(params)
    kinds = [synth.MESSY_IMAGE_KINDS[k][0] for k in plan.kinds]
    assert set(kinds) == set(IMAGE_DEFECT_COLUMNS)
    assert (plan.templates >= synth.last_chunk_first_row(params)).all()
    messy = raw_images.slice(params.n_images).to_pylist()
    good_ids = raw_images.column("id").slice(0, params.n_images)
    max_good_id = pc.max(good_ids).as_py()
    new_ids = []
    for kind, template, row in zip(kinds, plan.templates, messy):
        original = raw_images.slice(int(template), 1).to_pylist()[0]
        changed = {c for c in row if row[c] != original[c]}
        assert changed == IMAGE_DEFECT_COLUMNS[kind], kind
        if kind == "unparseable_created_at":
            assert row["createdAt"] == "not a date"
        elif kind == "created_at_after_window":
            assert row["createdAt"] > "2026"
        elif kind == "created_at_before_window":
            assert row["createdAt"] < "2022-11"
        elif kind == "invalid_level":
            assert row["browsingLevel"] in (0, 128)
        elif kind.startswith("like_count"):
            likes = json.loads(row["statsSummary"])["likeCount"]
            assert likes == (-1 if "negative" in kind else "many")
        elif kind == "empty_prompt_set_null":
            assert row["positivePrompt"] == ""
        elif kind == "invalid_id":
            assert row["id"] < 0
        if row["id"] is not None and row["id"] > 0 and not kind.startswith("duplicate"):
            new_ids.append(row["id"])
    assert len(set(new_ids)) == len(new_ids) and min(new_ids) > max_good_id
    assert pd.Series(new_ids).is_monotonic_increasing


def test_each_messy_model_row_has_exactly_its_planted_defect(snapshot: tuple[synth.SynthParams, Path],
                                                             raw_models: pa.Table) -> None:
    params, _ = snapshot
    plan = synth.messy_model_plan(params)
    kinds = [synth.MESSY_MODEL_KINDS[k][0] for k in plan.kinds]
    assert len(kinds) == params.messy_model_rows == 10 and set(kinds) == {
        "duplicate_id_conflict", "duplicate_id_exact", "html_in_name_stripped", "download_count_negative_set_null"}
    messy = raw_models.slice(params.n_models).to_pylist()
    max_good_id = pc.max(raw_models.column("id").slice(0, params.n_models)).as_py()
    for kind, template, row in zip(kinds, plan.templates, messy):
        original = raw_models.slice(int(template), 1).to_pylist()[0]
        changed = {c for c in row if row[c] != original[c]}
        if kind == "duplicate_id_exact":
            assert changed == set()
        elif kind == "duplicate_id_conflict":
            assert changed == {"name"}
        elif kind == "html_in_name_stripped":
            assert changed == {"id", "name"} and row["name"] == f"<b>{original['name']}</b>"
        else:
            assert changed == {"id", "stats"} and row["stats"]["downloadCount"] < 0
            assert {k: v for k, v in row["stats"].items() if k != "downloadCount"} == \
                {k: v for k, v in original["stats"].items() if k != "downloadCount"}
        if not kind.startswith("duplicate"):
            assert row["id"] > max_good_id


def test_cleaning_reports_exactly_the_planted_messy_rows(tmp_path: Path) -> None:
    """Adapter + cleaning on a small multi-chunk snapshot report every planted bad row by name."""
    from helpers import clean, sources

    params = synth.default_params(n_images=5_000, n_models=600, chunk_rows=2_000, seed=3)
    truth = synth.expected_truth(params)
    synth.write_snapshot(tmp_path / "snap", params)
    paths = RunPaths(tmp_path / "run").ensure()
    sources.acquire_local(tmp_path / "snap", paths)
    report = clean.clean_all(paths)["tables"]
    for table, prefix in (("images", "messy_rows"), ("models", "messy_models")):
        rep, outcome = report[table], truth[f"{prefix}_by_outcome"]
        assert rep["quarantine_reasons"] == outcome["quarantined"], table
        # prompt_missing is images without metadata (planted by missing_prompt_share), not a bad row.
        assert {k: v for k, v in rep["repairs"].items() if k != "prompt_missing"} == outcome["repaired"], table
    assert report["images"]["raw"] == truth["raw_image_rows"]
    assert report["images"]["clean"] == truth["clean_image_rows"]
    assert report["models"]["clean"] == truth["clean_model_rows"]
    assert clean.rows_by_month(paths, "images").set_index("month")["rows"].to_dict() == \
        truth["clean_images_per_month"]


def test_real_person_calls_follow_the_planted_share_and_break(snapshot: tuple[synth.SynthParams, Path],
                                                              images: pd.DataFrame, models: pd.DataFrame) -> None:
    """An image drawn to use a real-person adapter names one in its first call (by its file name
    or a renamed one) and in no other call; per month, such images are the planted share of the
    images, given the users who posted them (their adapter use depends on the user)."""
    params, _ = snapshot
    stems = {f["name"].removesuffix(".safetensors"): (mid, poi) for mid, poi, versions in
             zip(models["id"], models["poi"], models["modelVersions"]) for f in versions[0]["files"]}
    person_names = {s for s, (_, poi) in stems.items() if poi}
    person_names |= {f"{s}_{mid:x}" for s, (mid, poi) in stems.items() if poi}  # renamed files
    calls = images["positivePrompt"].fillna("").str.findall(r"<lora:([^:>]+):")
    person = calls.map(lambda names: [n in person_names for n in names])
    assert person.map(lambda flags: sum(flags) <= 1 and not any(flags[1:])).all()
    uses = person.map(any)
    expected = synth.user_month_truth(params).groupby("month")[["n", "person"]].sum()
    at = params.real_person_break_month
    for name, rows in (("before the break", images["month"] < at), ("from the break on", images["month"] >= at)):
        months = expected.index < at if name == "before the break" else expected.index >= at
        share = expected.loc[months, "person"].sum() / expected.loc[months, "n"].sum()
        assert_share(uses[rows], share, f"real-person adapter images {name}")
    for month, rows in uses.groupby(images["month"]):  # months with enough of them for a normal check
        if expected.loc[month, "person"] >= 30:
            assert_share(rows, expected.loc[month, "person"] / expected.loc[month, "n"],
                         f"real-person adapter images in {month}")
    truth = synth.expected_truth(params)
    before = synth.month_range(params.start_month, at)[-2]
    planted = truth["real_person_adapter_share_of_adapter_images_by_month"]
    assert planted[at] < 0.5 * planted[before]  # the planted break (factor 0.4 on a rising path)
    assert uses[images["month"] == at].mean() < 0.7 * uses[images["month"] == before].mean()


def test_forced_real_person_adapters_and_their_creators(models: pd.DataFrame, snapshot) -> None:
    params, _ = snapshot
    people = models[models["poi"]]
    first = models.sort_values("id").head(len(models) // 50)
    assert first["poi"].any()  # real-person LoRAs exist from the first month
    creators = people["usernameHash"].value_counts()
    assert len(creators) <= synth.real_person_creator_pool(params, synth.n_users(params))
    assert creators.iloc[0] > 5 * creators.median()  # a few creators make many of them


def test_user_and_real_person_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="real_person_break_month"):
        synth.default_params(real_person_break_month="June")
    with pytest.raises(ValueError, match="user_propensity_sd"):
        synth.default_params(user_propensity_sd=-1.0)
    with pytest.raises(ValueError, match="times real_person_break_factor"):
        synth.default_params(real_person_adapter_share_end=0.6, real_person_break_factor=2.0)
    # Without real people there are no real-person adapters and no forced real-person models.
    params = synth.default_params(real_person_share=0.0, n_images=2_000, n_models=100)
    truth = synth.expected_truth(params)
    assert truth["real_person_share"] == 0 and max(truth["real_person_adapter_image_share_by_month"].values()) == 0
