"""Images linked to the models they use: names, matching, planted truth and real records."""
from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers import db
from helpers import clean, label, link, schema, sources, synth
from helpers.analyse import links as link_analyses
from helpers.paths import RunPaths


@pytest.mark.parametrize("name,key", [
    ("Lucy-From_CP v1.safetensors", "lucyfromcpv1"),
    ("lucyFromCP_v1", "lucyfromcpv1"),
    ("  LUCY from cp V1.ckpt ", "lucyfromcpv1"),
    ("style.pt.bak", "styleptbak"),       # only a final known extension is a file extension
    ("小红_v2", "小红v2"),                  # letters of every script are kept
    ("___", None), ("", None), (None, None),
])
def test_name_key(name, key):
    assert link.name_key(name) == key


def _models(rows):
    return pd.DataFrame(rows, columns=["model_id", "name", "type", "file_names", "version_names"])


def test_resolution_prefers_file_names_and_never_guesses_between_models():
    models = _models([
        (1, "Lucy", "LORA", ["lucy_v1.safetensors"], ["v1.0"]),
        (2, "Lucy XL", "LORA", ["lucy_xl.safetensors"], ["v1.0"]),
        (3, "Dream Shaper", "Checkpoint", ["dreamshaper_8.safetensors"], ["8"]),
        (4, "Lucy V1", "LORA", [], []),          # its name also normalises to lucyv1
    ])
    got = link.resolve_names(pd.Series(["lucy_v1", "Lucy-XL", "v1.0", "DreamShaper", "nobody",
                                        "lucy_v1"]), link.name_index(models)).set_index("name")
    assert got.loc["lucy_v1", ["status", "model_id", "how"]].tolist() == ["resolved", 1, "file_name"]
    assert got.loc["Lucy-XL", ["status", "model_id", "how"]].tolist() == ["resolved", 2, "file_name"]
    assert got.loc["v1.0", "status"] == "ambiguous" and pd.isna(got.loc["v1.0", "model_id"])
    assert got.loc["DreamShaper", ["status", "model_id", "how"]].tolist() == ["resolved", 3, "model_name"]
    assert got.loc["nobody", "status"] == "unresolved"
    assert len(got) == 5  # each distinct name once


@pytest.fixture(scope="module")
def linked_sample(tmp_path_factory):
    """A small synthetic sample acquired, cleaned and linked."""
    paths = RunPaths(tmp_path_factory.mktemp("link")).ensure()
    params = synth.default_params(n_images=12_000, n_models=600, seed=7)
    sources.acquire("sample", paths, sample_images=params.n_images, sample_models=params.n_models,
                    seed=params.seed)
    clean.clean_all(paths)
    label.label_all(paths, seed=params.seed, n_boot=20)
    return paths, params, link.link_images(paths)


def test_the_link_recovers_the_planted_share_of_resolvable_calls(linked_sample):
    paths, params, report = linked_sample
    calls = report["calls"]
    resolved_share = calls["resolved"] / calls["found"]
    planted = 1 - synth.expected_truth(params)["adapter_call_unresolvable_share"]
    assert calls["found"] > 2_000
    assert abs(resolved_share - planted) < 0.02, (resolved_share, planted)
    assert calls["ambiguous"] / calls["found"] < 0.01


def test_the_link_table_agrees_with_an_independent_count(linked_sample):
    paths, _, report = linked_sample
    images = pq.read_table(paths.table("interim", "images")).to_pandas()
    models = pq.read_table(paths.table("interim", "models")).to_pandas()
    links = pq.read_table(paths.links).to_pandas()
    assert pq.read_schema(paths.links) == link.LINK_SCHEMA
    assert not links.duplicated().any()                  # every link once
    # The recorded model: every image whose model_id is a model of the table, and no other;
    # in the sample that is always the checkpoint.
    by_id = links[links["how"] == "model_id"]
    expected = images[images["model_id"].isin(models["model_id"])]
    assert sorted(by_id["image_id"]) == sorted(expected["image_id"])
    assert set(by_id["kind"]) == {"checkpoint"}
    assert report["checkpoints"]["resolved"] == len(expected)
    # Adapters: a call by a file stem that exactly one model has, written out by hand.
    stem_owner = {}
    for model_id, files in zip(models["model_id"], models["file_names"]):
        for f in files:
            stem_owner.setdefault(f.removesuffix(".safetensors"), set()).add(model_id)
    pairs = set()
    for image_id, prompt in zip(images["image_id"], images["prompt"]):
        for name in re.findall(r"<lora:([^:>]+):", prompt or ""):
            owners = stem_owner.get(name, set())
            if len(owners) == 1:
                pairs.add((image_id, next(iter(owners))))
    adapters = links[(links["kind"] == "adapter") & (links["how"] != "model_id")]
    assert set(zip(adapters["image_id"], adapters["model_id"])) == pairs
    by_month = link.linkage_by_month(report)
    assert by_month["found"].sum() == report["calls"]["found"]
    assert by_month[["resolved", "ambiguous", "unresolved"]].sum(axis=1).eq(by_month["found"]).all()


def test_without_a_models_table_every_call_is_unresolved(tmp_path):
    paths = RunPaths(tmp_path / "run").ensure()
    pq.write_table(pq.read_table(_one_image_table()), paths.table("interim", "images"))
    report = link.link_images(paths)
    assert report["calls"] == {"found": 2, "resolved": 0, "ambiguous": 0, "unresolved": 2}
    assert pq.read_table(paths.links).num_rows == 0


def _one_image_table():
    import io

    import pyarrow as pa

    row = {c.name: None for c in schema.IMAGES}
    row.update(image_id=1, created_at=pd.Timestamp("2023-05-01", tz="UTC"), browsing_level=1,
               nsfw_level="PG", prompt="a cat, <lora:cat_v1:0.7> <lyco:fur:1>", model_id=5)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=schema.arrow_schema("images", "interim")), buf)
    buf.seek(0)
    return buf


# --------------------------------------------------------------------------- real-person strata
# The formulation of real_person_adapter_strata_by_definition before its faster rewrite, kept
# here so the rewrite is proven to select and count the same images.
def _real_person_strata_reference(images, links, models) -> dict[str, pd.DataFrame]:
    from helpers.analyse.common import definition_counts_sql, month_sql, split_definitions

    pattern = db.sql_literal(schema.ADAPTER_CALL_NAME_PATTERN)
    sources = ", ".join(db.sql_literal(h) for h in link_analyses.CALL_LINK_SOURCES)
    flags = ", ".join(dict.fromkeys(schema.NSFW_DEFINITIONS.values()))
    person = ", ".join(f"count(c.{c}) FILTER (WHERE r.person) AS n_adapter_{d}, "
                       f"count(*) FILTER (WHERE c.{c} AND r.person) AS k_adapter_{d}"
                       for d, c in schema.NSFW_DEFINITIONS.items())
    wide = db.connection_or_default(None).execute(f"""
        WITH c AS (
            SELECT image_id, coalesce(user_hash, 'image:' || CAST(image_id AS VARCHAR)) AS user,
                   {month_sql()} AS month, {flags},
                   len(list_distinct(list_filter(list_transform(regexp_extract_all(prompt, {pattern}, 1),
                                                                lambda x: trim(x)), lambda x: x <> ''))) AS names
            FROM {db.table_sql(images)}
            WHERE coalesce(n_lora, 0) > 0 AND prompt IS NOT NULL),
        r AS (
            SELECT l.image_id, count(DISTINCT l.model_id) AS resolved,
                   bool_or(coalesce(m.is_real_person, false)) AS person
            FROM {db.table_sql(links)} l
            LEFT JOIN {db.table_sql(models)} m ON m.model_id = l.model_id
            WHERE l.kind = 'adapter' AND l.how IN ({sources}) GROUP BY l.image_id)
        SELECT c.user, c.month, {definition_counts_sql('c')}, {person}
        FROM c JOIN r ON r.image_id = c.image_id
        WHERE c.names > 0 AND r.resolved = c.names
        GROUP BY c.user, c.month ORDER BY c.user, c.month""").df()
    return split_definitions(wide, ["user", "month"], extra=("n_adapter", "k_adapter"))


def test_real_person_adapter_strata_equal_the_reference_formulation_on_tricky_calls(tmp_path):
    import pyarrow as pa

    from test_analyse import make_models, write_images

    rng = np.random.default_rng(16)
    calls = ["<lora:Alpha:0.8>", "<LoRA:alpha:1>", "<lora: Alpha :0.5>", "<lora:\tBeta_v2>",
             "<lyco:Gamma:1:0.5>", "< hypernet :Delta>", "<lora::1>", "<lora: :1>", "<lora:>",
             "<lorax:Alpha:1>", "<lora:Alpha", "<lora:<lora:Eps:1>>", "<LOCON:İlk Ad:0.7>",
             "(<lora:Zeta:1.2>:1.1)", "<lokr:Alpha:0.3>", "<lora:Beta_v2 :0.9>"]
    heads = ["masterpiece", "İstanbul 日本😀 a<b, <3", "x <lora:Alpha"]  # text before the first call
    recs, link_rows = [], []
    for i in range(400):
        picked = list(rng.choice(calls, size=int(rng.integers(0, 4))))
        prompt = None if i % 37 == 0 else ("" if i % 41 == 0 else
                                           ", ".join([heads[i % 3], *picked, "Portrait"]))
        user = None if i % 9 == 0 else f"u{int(rng.integers(0, 15))}"
        when = pd.Timestamp("2023-01-31 20:00", tz="America/New_York") + pd.Timedelta(days=int(rng.integers(0, 70)))
        nsfw = [None if rng.random() < 0.1 else bool(rng.random() < 0.4) for _ in range(3)]
        recs.append({"prompt": prompt, "user_hash": user, "created_at": when.to_pydatetime(),
                     "n_lora": None if i % 23 == 0 else (len(picked) if i % 13 else 0),
                     "is_nsfw_platform": nsfw[0], "is_nsfw_r": nsfw[1], "is_nsfw_x": nsfw[2]})
        for _ in range(int(rng.integers(0, 4))):  # links need not agree with the prompt
            link_rows.append({"image_id": i + 1,
                              "model_id": None if rng.random() < 0.05 else int(rng.integers(1, 14)),
                              "kind": "adapter" if rng.random() < 0.9 else "checkpoint",
                              "how": str(rng.choice([*link_analyses.CALL_LINK_SOURCES, "hash", "other"]))})
    images = write_images(tmp_path / "images.parquet", recs)
    links = tmp_path / "links.parquet"
    pq.write_table(pa.Table.from_pylist(link_rows, schema=pa.schema(
        [("image_id", pa.int64()), ("model_id", pa.int64()), ("kind", pa.string()), ("how", pa.string())])), links)
    models = tmp_path / "models.parquet"
    frame = make_models([{"is_real_person": [True, False, None][j % 3]} for j in range(12)])
    pq.write_table(pa.Table.from_pandas(frame[["model_id", "is_real_person"]], preserve_index=False), models)

    got = link_analyses.real_person_adapter_strata_by_definition(images, links, models)
    want = _real_person_strata_reference(images, links, models)
    assert got.keys() == want.keys()
    for d in want:
        pd.testing.assert_frame_equal(got[d], want[d], check_exact=True)
    assert got["r"]["n"].sum() > 20 and got["r"]["n_adapter"].sum() > 5 and got["r"]["k_adapter"].sum() > 0


# --------------------------------------------------------------------------- real records
@pytest.mark.realdata
def test_real_records_linkage_matches_a_straightforward_count(real_data, tmp_path):
    """The 2023 API dump: its showcase images' LoRA calls resolved to models of the same dump."""
    paths = RunPaths(tmp_path / "api").ensure()
    sources.acquire("api", paths, path=str(real_data), salt="test-salt")
    clean.clean_all(paths)
    report = link.link_images(paths)
    # the committed validation report (the paper's real-records section) holds these counts
    assert label.load_real_records_report()["linkage"]["calls"] == report["calls"]
    # Independent count, straight from the JSON: calls by a file stem (case, extension and
    # separators ignored) that exactly one model of the dump has.
    def key(text):
        return re.sub(r"[\W_]+", "", re.sub(r"\.(safetensors|ckpt|pt|pth|bin)$", "", text.strip(),
                                            flags=re.I).casefold())
    owners, prompts = {}, {}
    with gzip.open(real_data, "rt", encoding="utf-8") as handle:
        for line in handle:
            model = json.loads(line)
            for version in model.get("modelVersions") or []:
                for f in version.get("files") or []:
                    if f.get("name"):
                        owners.setdefault(key(f["name"]), set()).add(model["id"])
                for image in version.get("images") or []:
                    meta = image.get("meta") or {}
                    if isinstance(meta, dict) and isinstance(meta.get("prompt"), str):
                        prompts[image["id"]] = meta["prompt"]
    calls = [name for p in prompts.values()
             for name in re.findall(r"(?i)<\s*(?:lora|lyco|lycoris|locon|loha|lokr|hypernet)\s*:\s*([^:<>]*)", p)]
    by_file = sum(1 for n in calls if key(n) and len(owners.get(key(n), ())) == 1)
    assert report["calls"]["found"] == pytest.approx(len(calls), rel=0.02)
    share = report["calls"]["resolved"] / report["calls"]["found"]
    # At least what file names alone resolve (the link also tries version and model names).
    assert share >= by_file / len(calls) - 0.01
    assert 0.55 < by_file / len(calls) < 0.8  # "about two thirds" by file name alone


# --------------------------------------------------------------------------- analyses on the link
def _joined(paths):
    images = db.read_table(paths.table("processed", "images")).to_pandas()
    models = pq.read_table(paths.table("processed", "models")).to_pandas()
    links = pq.read_table(paths.links).to_pandas()
    real = set(models.loc[models["is_real_person"].fillna(False).astype(bool), "model_id"])
    rp_images = set(links.loc[(links["kind"] == "adapter") & links["model_id"].isin(real), "image_id"])
    images["uses_rp"] = images["image_id"].isin(rp_images)
    images["month"] = images["created_at"].dt.strftime("%Y-%m")
    images["family"] = [schema.base_model_family(b if isinstance(b, str) else None)
                        for b in images["base_model"]]
    return images, models, links, real


def test_real_person_adapter_analyses_agree_with_a_pandas_count(linked_sample):
    paths, _, _ = linked_sample
    images, models, links, real = _joined(paths)
    files = (paths.table("processed", "images"), paths.links, paths.table("processed", "models"))
    counts = link_analyses.link_counts(*files, definition="r")
    by_month = link_analyses.real_person_adapter_use_by_month(counts)
    want = images.groupby("month")["uses_rp"].agg(["size", "sum"])
    assert by_month["n"].tolist() == want["size"].tolist()
    assert by_month["k"].tolist() == want["sum"].tolist()
    assert images["uses_rp"].sum() > 50  # the sample's real-person LoRAs are called

    nsfw = link_analyses.nsfw_share_by_real_person_adapter(counts).set_index(
        "uses_real_person_adapter")
    for flag in (False, True):
        part = images[images["uses_rp"] == flag]
        assert nsfw.loc[flag, "n"] == part["is_nsfw_r"].notna().sum()
        assert nsfw.loc[flag, "k"] == part["is_nsfw_r"].fillna(False).sum()
    assert nsfw["ci_low"].le(nsfw["share"]).all() and nsfw["share"].le(nsfw["ci_high"]).all()

    share = link_analyses.real_person_share_of_adapter_links(paths.links, paths.table("processed", "models"))
    adapters = links[links["kind"] == "adapter"]
    assert (share.loc[0, "n"], share.loc[0, "k"]) == (len(adapters), adapters["model_id"].isin(real).sum())


def test_family_analyses_agree_with_a_pandas_count(linked_sample):
    paths, _, _ = linked_sample
    images, models, _, _ = _joined(paths)
    files = (paths.table("processed", "images"), paths.links, paths.table("processed", "models"))
    by_family = link_analyses.nsfw_share_by_family(link_analyses.link_counts(*files)).set_index("family")
    want = images.groupby("family").agg(n=("is_nsfw_r", "count"), k=("is_nsfw_r", "sum"),
                                        rp=("uses_rp", "sum"))
    assert set(by_family.index) == set(want.index) and len(want) >= 3
    for family, row in want.iterrows():
        assert (by_family.loc[family, "n"], by_family.loc[family, "k"]) == (row["n"], row["k"])
        assert by_family.loc[family, "real_person_adapter_images"] == row["rp"]
    order = [schema.BASE_MODEL_FAMILIES.index(f) for f in by_family.index]
    assert order == sorted(order)

    monthly = link_analyses.images_by_family_by_month(paths.table("processed", "images"))
    assert monthly.groupby("month")["k"].sum().tolist() == images.groupby("month").size().tolist()
    new = link_analyses.new_models_by_family_by_month(models)
    assert new["k"].sum() == len(models)
    assert (new.groupby("month")["share"].sum() - 1).abs().max() < 1e-9


@pytest.mark.realdata
def test_real_records_real_person_adapter_nsfw_matches_a_straightforward_count(real_data, tmp_path):
    """Showcase images that use a real-person adapter (their own model is a flagged adapter, or a
    call names a flagged model's file) are NSFW far less often on the 2023 records: the pipeline's
    shares against a count written out from the JSON."""
    from helpers.analyse import links as link_analyses

    paths = RunPaths(tmp_path / "api").ensure()
    sources.acquire("api", paths, path=str(real_data), salt="test-salt")
    clean.clean_all(paths)
    label.label_all(paths, seed=1, n_boot=20)
    link.link_images(paths)
    got = link_analyses.nsfw_share_by_real_person_adapter(link_analyses.link_counts(
        paths.table("processed", "images"), paths.links, paths.table("processed", "models")
    )).set_index("uses_real_person_adapter")

    def key(text):
        return re.sub(r"[\W_]+", "", re.sub(r"\.(safetensors|ckpt|pt|pth|bin)$", "", text.strip(),
                                            flags=re.I).casefold())
    owners, images = {}, []
    with gzip.open(real_data, "rt", encoding="utf-8") as handle:
        models = [json.loads(line) for line in handle]
    for model in models:
        for version in model.get("modelVersions") or []:
            for f in version.get("files") or []:
                if f.get("name"):
                    owners.setdefault(key(f["name"]), set()).add(model["id"])
    poi = {m["id"] for m in models if m.get("poi")}
    adapter = {m["id"] for m in models if m.get("type") != "Checkpoint"}
    for model in models:
        for version in model.get("modelVersions") or []:
            for image in version.get("images") or []:
                meta = image.get("meta") if isinstance(image.get("meta"), dict) else {}
                prompt = meta.get("prompt") if isinstance(meta.get("prompt"), str) else ""
                called = {next(iter(owners[key(n)])) for n in re.findall(
                    r"(?i)<\s*(?:lora|lyco|lycoris|locon|loha|lokr|hypernet)\s*:\s*([^:<>]*)", prompt)
                    if key(n) and len(owners.get(key(n), ())) == 1}
                uses = (model["id"] in poi and model["id"] in adapter) or bool(called & poi)
                images.append((uses, image.get("nsfw") in ("Mature", "X")))
    # the committed validation report (notebook 05, the paper) carries the same table
    committed = label.real_records_frames(label.load_real_records_report())["real_person_adapter_nsfw"]
    committed = committed.set_index("uses_real_person_adapter")
    for flag in (True, False):
        part = [nsfw for uses, nsfw in images if uses == flag]
        for table in (got, committed):
            assert abs(table.loc[flag, "share"] - sum(part) / len(part)) < 0.015, (flag, table.loc[flag, "share"])
            assert abs(table.loc[flag, "n"] - len(part)) <= 0.05 * len(part)
    # enforcement is visible: images made with a real-person adapter are NSFW far less often
    assert got.loc[True, "ci_high"] < got.loc[False, "ci_low"]


def test_candidate_ids_are_each_keys_sorted_distinct_models():
    rng = np.random.default_rng(3)
    index = pd.DataFrame({"key": rng.choice(list("abcdefg"), 300), "model_id": rng.integers(1, 40, 300),
                          "how": "file_name"})
    expected = index.groupby("key")["model_id"].agg(lambda s: sorted(set(int(v) for v in s))).to_dict()
    assert link.candidate_ids(index) == expected
    assert link.candidate_ids(index.iloc[:0]) == {}
