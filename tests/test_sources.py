"""Source adapters: aliases, encodings, formats, hashing, and clear errors."""
from __future__ import annotations

import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import db
from helpers import clean, schema, sources

HUB_IMAGES = [
    {"id": 11, "createdAt": "2023-10-02T10:00:00.000Z", "url": "https://x.invalid/1.jpeg",
     "positivePrompt": "score_9, 1girl <lora:abc:0.7>", "negativePrompt": "bad hands",
     "nsfw": True, "browsingLevel": 8,
     "statsSummary": json.dumps({"likeCount": 5, "heartCount": 2, "laughCount": 0, "cryCount": 1,
                                 "commentCount": 3}),
     "usernameHash": "u1", "baseModel": "Pony", "modelId": 7},
    {"id": 12, "createdAt": "2023-11-02T10:00:00.000Z", "url": None, "positivePrompt": "a cat",
     "negativePrompt": None, "nsfw": False, "browsingLevel": 1, "statsSummary": "not json",
     "usernameHash": "u2", "baseModel": "SDXL 1.0", "modelId": None},
]


def write_hub_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(HUB_IMAGES), folder / "part-00000.parquet")


def models_records():
    return [{"id": 7, "name": "Some <i>Style</i>", "description": "<p>A style</p>", "type": "LORA",
             "nsfw": False, "poi": False, "tags": ["Style", "anime"],
             "creator": {"username": "alice_clear_name"},
             "stats": {"downloadCount": 10, "favoriteCount": 1, "commentCount": 0, "ratingCount": 2,
                       "rating": 4.5},
             "modelVersions": [
                 {"id": 2, "name": "v2", "createdAt": "2023-03-01T00:00:00Z", "baseModel": "SDXL 1.0",
                  "trainedWords": ["stl", "sty2"],
                  "images": [{"id": 901, "url": "u", "nsfw": "Mature", "meta": {"prompt": "p1"}}]},
                 {"id": 1, "name": "v1", "createdAt": "2023-01-01T00:00:00Z", "baseModel": "SD 1.5",
                  "trainedWords": ["stl"],
                  "images": [{"id": 900, "url": "u", "nsfw": "None", "meta": None}]}]}]


def test_local_parquet_images_resolve_aliases_and_json_stats(run, tmp_path):
    write_hub_images(tmp_path / "snap" / "images")
    res = sources.acquire("local", run, path=str(tmp_path / "snap"))
    assert res.rows == {"images": 2}
    raw = db.read_table(run.table("raw", "images"))
    assert raw.schema.equals(schema.arrow_schema("images", "raw"))
    rows = {r["image_id"]: r for r in raw.to_pylist()}
    assert rows["11"]["prompt"].startswith("score_9") and rows["11"]["browsing_level"] == "8"
    assert rows["11"]["nsfw"] == "true" and rows["11"]["heart_count"] == "2"
    assert rows["11"]["user_hash"] == "u1" and rows["11"]["model_id"] == "7"
    assert rows["12"]["like_count"] is None  # invalid JSON stats → no counts, not a crash


def test_csv_and_jsonl_and_gzip_read_the_same(run, tmp_path):
    import pandas as pd

    folder = tmp_path / "csv" / "images"
    folder.mkdir(parents=True)
    pd.DataFrame(HUB_IMAGES).to_csv(folder / "images.csv", index=False)
    res = sources.acquire("local", run, path=str(tmp_path / "csv"))
    assert res.rows == {"images": 2}
    clean.clean_all(run)
    csv_clean = pq.read_table(run.table("interim", "images")).to_pylist()

    folder2 = tmp_path / "jsonl" / "images"
    folder2.mkdir(parents=True)
    with gzip.open(folder2 / "images.jsonl.gz", "wt") as fh:
        for rec in HUB_IMAGES:
            fh.write(json.dumps(rec) + "\n")
    sources.acquire("local", run, path=str(tmp_path / "jsonl"))
    clean.clean_all(run)
    json_clean = pq.read_table(run.table("interim", "images")).to_pylist()
    assert [r["image_id"] for r in csv_clean] == [r["image_id"] for r in json_clean] == [11, 12]
    for a, b in zip(csv_clean, json_clean):
        assert a["nsfw_level"] == b["nsfw_level"] and a["created_at"] == b["created_at"]


def test_api_models_flatten_versions_images_and_hash_usernames(run, tmp_path):
    path = tmp_path / "scrape.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in models_records()) + "\n")
    res = sources.acquire("api", run, path=str(path), salt="pepper")
    assert res.rows == {"images": 2, "models": 1}
    assert res.repairs["image_created_at_from_version"] == 2
    model = pq.read_table(run.table("raw", "models")).to_pylist()[0]
    assert model["created_at"] == "2023-01-01T00:00:00Z"  # the first version, not the list order
    assert model["base_model"] == "SD 1.5" and model["n_versions"] == "2"
    assert model["trigger_words"] == ["stl", "sty2"] and model["download_count"] == "10"
    assert model["creator_hash"] == sources.hash_username("alice_clear_name", "pepper")
    text = run.table("raw", "models").read_bytes() + run.table("raw", "images").read_bytes()
    assert b"alice_clear_name" not in text and b"pepper" not in text
    clean.clean_all(run)
    imgs = pq.read_table(run.table("interim", "images")).to_pandas().set_index("image_id")
    assert imgs.loc[901, "nsfw_level"] == "R" and imgs.loc[900, "nsfw_level"] == "PG"
    assert imgs.loc[901, "prompt"] == "p1" and imgs.loc[901, "model_id"] == 7


def test_api_image_items_and_page_files(run, tmp_path):
    page = {"items": [{"id": 5, "url": "u", "nsfwLevel": "X", "createdAt": "2024-02-01T00:00:00Z",
                       "stats": {"likeCount": 1, "heartCount": 0, "cryCount": 0, "laughCount": 0,
                                 "commentCount": 0},
                       "meta": {"prompt": "hello", "negativePrompt": "bye", "Model": "ponyXL"},
                       "username": "bob_clear"}], "metadata": {"nextCursor": None}}
    (tmp_path / "page.json").write_text(json.dumps(page))
    res = sources.acquire("api", run, path=str(tmp_path / "page.json"))
    assert res.rows == {"images": 1}
    assert not run.table("raw", "models").exists()
    row = db.read_table(run.table("raw", "images")).to_pylist()[0]
    assert row["browsing_level"] == "X" and row["prompt"] == "hello" and row["base_model"] == "ponyXL"
    assert row["user_hash"] == sources.hash_username("bob_clear", "") and row["like_count"] == "1"


def test_civiverse_columns(run, tmp_path):
    folder = tmp_path / "civ" / "images"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([
        {"id": 1, "createdAt": "2023-10-05T00:00:00Z", "prompt": "x", "nsfwLevel": "Mature",
         "likeCount": 4, "username": "hashedalready", "Model": "SD 1.5", "Resource1": "a",
         "Resource2": None, "Resource3": "c"}]), folder / "civ.parquet")
    sources.acquire("local", run, path=str(tmp_path / "civ"), salt="s")
    row = db.read_table(run.table("raw", "images")).to_pylist()[0]
    assert row["browsing_level"] == "Mature" and row["like_count"] == "4"
    assert row["resources"] == ["a", "c"] and row["base_model"] == "SD 1.5"
    assert row["user_hash"] == sources.hash_username("hashedalready", "s")


def test_hf_adapter_reads_a_local_hub_layout_offline(run, tmp_path):
    hub = tmp_path / "hub"
    write_hub_images(hub / "images" / "data")
    (hub / "models" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(models_records()), hub / "models" / "data" / "train-00000-of-00001.parquet")
    res = sources.acquire("hf", run, path=str(hub))
    assert res.rows == {"images": 2, "models": 1}
    assert "local:" in res.revision
    model = pq.read_table(run.table("raw", "models")).to_pylist()[0]
    assert model["name"] == "Some <i>Style</i>" and model["n_versions"] == "2"


def test_hf_without_access_explains_login_and_local(run, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(sources.SourceError) as err:
        sources.acquire_hf(run, revision="main")
    msg = str(err.value)
    assert "hf auth login" in msg and "huggingface-cli" not in msg and "HF_TOKEN" in msg and "--source local" in msg


@pytest.mark.parametrize("setup,match", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "no Parquet, CSV or JSON Lines"),
    (lambda p: (p.mkdir(), (p / "images.jsonl.gz").write_text("plain text")), "not gzip"),
    (lambda p: (p.mkdir(), (p / "images.parquet").write_bytes(b"PAR1 truncated")), "truncated"),
])
def test_bad_snapshots_give_clear_errors(run, tmp_path, setup, match):
    target = tmp_path / "bad"
    setup(target)
    with pytest.raises(sources.SourceError, match=match):
        sources.acquire("local", run, path=str(target))


def test_missing_required_image_column_is_named(run, tmp_path):
    folder = tmp_path / "snap" / "images"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1], "positivePrompt": ["x"], "browsingLevel": [1]}),
                   folder / "a.parquet")
    with pytest.raises(sources.SourceError, match="created_at"):
        sources.acquire("local", run, path=str(tmp_path / "snap"))


def test_tags_given_as_a_string_become_a_list_and_are_counted():
    repairs = Counter()
    rec = {"id": 1, "name": "n", "type": "LORA", "tags": '["a", "b"]', "createdAt": "2023-01-01"}
    assert sources.flatten_model(rec, "", repairs)["tags"] == ["a", "b"]
    rec["tags"] = "a, b ,c"
    assert sources.flatten_model(rec, "", repairs)["tags"] == ["a", "b", "c"]
    assert repairs["tags_string_to_list"] == 2


def test_strip_html():
    assert sources.strip_html("<p>Hello&nbsp;<b>world</b> &amp; co</p>") == "Hello world & co"
    assert sources.strip_html(None) is None


def test_the_hub_source_passes_the_same_contract_an_empty_required_column_fails_in_acquire(run, tmp_path):
    # A local folder in the Hub's layout, read through the real `datasets` loading code: the
    # column is there but holds nothing (a broken export), so no image row has `created_at`.
    images = tmp_path / "hub" / "images"
    images.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1, 2], "createdAt": pa.array([None, None], pa.string()),
                             "browsingLevel": [1, 4]}), images / "train-00000.parquet")
    with pytest.raises(sources.SourceError, match=r"required column\(s\) \['created_at'\].*createdAt"):
        sources.acquire("hf", run, path=str(tmp_path / "hub"))
    assert not run.table("raw", "images").exists()


def test_a_bad_hub_layout_folder_says_what_is_wrong_not_how_to_log_in(run, tmp_path):
    images = tmp_path / "hub" / "images"
    images.mkdir(parents=True)
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "createdAt": pa.array([], pa.string())}),
                   images / "train-00000.parquet")  # `datasets` cannot read a file without rows
    with pytest.raises(sources.SourceError, match="Hub-layout folder .*hub.*--source local") as err:
        sources.acquire("hf", run, path=str(tmp_path / "hub"))
    assert "log in" not in str(err.value)


def test_the_sample_takes_its_sizes_from_the_run_parameters(run):
    with pytest.raises(sources.SourceError, match="sample_images, sample_models and seed"):
        sources.acquire("sample", run)


def test_salt_advice_only_for_real_data_without_a_salt():
    assert sources.salt_advice("sample", "") is None
    assert sources.salt_advice("api", "secret") is None
    advice = sources.salt_advice("api", "")
    assert sources.SALT_ENV in advice and "reverse" in advice
