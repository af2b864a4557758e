"""Determinism and privacy of whole runs.

Two runs of the pipeline with the same inputs and parameters, in two folders and on different
linear-algebra kernels (as on two CPUs), must produce byte-identical tables, reports, numbers
and figures: every file the manifest lists under
``files`` is compared by SHA-256. Neither the username salt nor a clear username from a
snapshot may appear in any file a run writes.

The uninterrupted sample run made here is also the reference of ``tests/test_resume.py``
(:func:`reference_run`), so the full pipeline runs as few times as possible.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import parameters, pipeline, sources, stats
from helpers.paths import RunPaths

#: A small sample so a whole run takes about a minute.
SAMPLE_ARGS = ("-p", "sample_images", "2000", "-p", "sample_models", "200")
#: A distinctive salt: it must never be written anywhere.
SALT = "robust-salt-5e1f0c9a"
RUN_TIMEOUT = 600


# --------------------------------------------------------------------------- running the CLI
def run_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "helpers", "run", "--quiet", "--out", str(out), *SAMPLE_ARGS, *extra]


def start_run(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m helpers run`` on the small sample, in its own session, with the salt set
    (and ``env`` added to the environment)."""
    env = {**os.environ, sources.SALT_ENV: SALT, **(env or {})}
    return subprocess.Popen(run_command(out, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def finish(proc: subprocess.Popen, expect_ok: bool = True) -> subprocess.CompletedProcess:
    """Wait for a run; by default it must succeed (the error tail is shown if not)."""
    stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if expect_ok:
        assert done.returncode == 0, stderr[-3000:]
    return done


def is_complete(out: Path) -> bool:
    manifest = out / "manifest.json"
    return manifest.exists() and json.loads(manifest.read_text())["status"] == "complete"


def reference_folder(base: Path) -> Path:
    return base / "robust_reference_run"


def reference_run(base: Path) -> Path:
    """The uninterrupted reference run, made once per test session under ``base``."""
    out = reference_folder(base)
    if not is_complete(out):
        finish(start_run(out))
    return out


# --------------------------------------------------------------------------- files and hashes
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def manifest_files(out: Path) -> dict[str, str]:
    """The files a run's manifest lists, with the SHA-256 it recorded."""
    return manifest(out)["files"]


def hashes_on_disk(out: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256(out / name) for name in names}


def partial_files(out: Path) -> list[str]:
    """Files a killed write or stage leaves (temporary names), relative to the run folder."""
    return sorted(p.relative_to(out).as_posix() for pattern in pipeline.PARTIAL_PATTERNS
                  for p in out.rglob(pattern))


def all_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


def searchable_bytes(path: Path) -> bytes:
    """A file's content as it can be searched: Parquet decompressed (values and metadata)."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        values = {c: table.column(c).to_pylist() for c in table.column_names}
        return (json.dumps(values, default=str) + str(table.schema.metadata)).encode("utf-8", "replace")
    return path.read_bytes()


def assert_all_files_readable(out: Path) -> None:
    """Every Parquet file parses in full, every JSON file parses (nothing half-written)."""
    for path in all_files(out):
        if path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- two runs
#: The second run uses other linear-algebra kernels than the machine would pick (OpenBLAS on x86-64
#: chooses them by CPU, and their sums differ in the last bits): a run's files must not depend on
#: the CPU it ran on, or a clone re-run elsewhere would not reproduce the committed outputs.
OTHER_KERNELS = {"OPENBLAS_CORETYPE": "Sandybridge"} if platform.machine() in ("x86_64", "AMD64") else {}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The reference run and a second run in another folder on other BLAS kernels
    (:data:`OTHER_KERNELS`), made side by side when both are new."""
    base = tmp_path_factory.getbasetemp()
    first, second = reference_folder(base), base / "robust_second_run"
    procs = [start_run(out, env=OTHER_KERNELS if out == second else None)
             for out in (first, second) if not is_complete(out)]
    for proc in procs:
        finish(proc)
    return first, second


@pytest.mark.slow
def test_two_runs_write_byte_identical_outputs(two_runs):
    first, second = two_runs
    files_first, files_second = manifest_files(first), manifest_files(second)
    assert sorted(files_first) == sorted(files_second)
    kinds = {name.rsplit(".", 1)[-1] for name in files_first}
    assert {"parquet", "json", "png", "pdf", "csv", "tex"} <= kinds
    for table in ("images", "models"):
        for stage in ("raw", "interim", "processed"):
            # the sample's raw images are read in place and the processed images are a view
            stored = "view.json" if table == "images" and stage != "interim" else "parquet"
            assert f"data/{stage}/{table}.{stored}" in files_first
    assert "data/processed/image_labels.parquet" in files_first
    assert "paper/numbers.tex" in files_first and "data/reports/clean.json" in files_first
    differing = sorted(name for name in files_first if files_first[name] != files_second[name])
    assert not differing, f"files that differ between two identical runs: {differing}"


@pytest.mark.slow
def test_manifest_hashes_are_the_files_on_disk(two_runs):
    for out in two_runs:
        recorded = manifest_files(out)
        assert hashes_on_disk(out, list(recorded)) == recorded
        assert partial_files(out) == []


@pytest.mark.slow
def test_manifest_records_that_no_row_was_lost(two_runs):
    for out in two_runs:
        m = manifest(out)
        assert m["status"] == "complete"
        for table, rows in m["rows"].items():
            assert rows["raw"] == rows["clean"] + rows["quarantined"] > 0, table
            assert rows["processed"] == rows["clean"]


@pytest.mark.slow
def test_salt_is_never_written(two_runs):
    first, _ = two_runs
    assert manifest(first)["username_salt_set"] is True
    leaked = [p.relative_to(first).as_posix() for p in all_files(first)
              if SALT.encode() in searchable_bytes(p)]
    assert not leaked, f"the username salt appears in {leaked}"


# --------------------------------------------------------------------------- clear usernames
CLEAR_NAMES = ("alice_clear_username_4471", "bob_clear_username_9023", "carol_clear_username_1187")


def api_snapshot_with_clear_usernames(path: Path) -> Path:
    """API JSON Lines whose models, nested images and image items name their users in clear."""
    models, images = [], []
    for i in range(1, 31):
        creator = CLEAR_NAMES[i % 3]
        models.append({
            "id": i, "name": f"Model {i}", "type": "LORA", "nsfw": i % 4 == 0, "poi": False,
            "tags": ["style"], "description": "<p>A style</p>",
            "creator": {"username": creator, "image": None},
            "stats": {"downloadCount": i, "favoriteCount": 0, "commentCount": 0, "ratingCount": 0, "rating": 0},
            "modelVersions": [{"id": 1000 + i, "createdAt": f"2023-0{1 + i % 6}-01T00:00:00Z",
                               "baseModel": "SD 1.5", "trainedWords": ["trg"],
                               "images": [{"id": 5000 + i, "url": "u", "nsfw": "Soft",
                                           "meta": {"prompt": "a cat"}, "username": creator}]}]})
        images.append({"id": 9000 + i, "createdAt": f"2023-0{1 + i % 6}-02T00:00:00Z", "nsfwLevel": "R",
                       "url": "u", "username": CLEAR_NAMES[(i + 1) % 3], "stats": {"likeCount": i},
                       "meta": {"prompt": "a dog", "negativePrompt": "blurry"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in models + images), encoding="utf-8")
    return path


@pytest.mark.slow
def test_clear_usernames_and_salt_never_reach_the_outputs(tmp_path):
    """Acquisition and cleaning through the runner (notebooks, reports, manifest), then labelling."""
    from helpers import label

    snapshot = api_snapshot_with_clear_usernames(tmp_path / "scrape.jsonl")
    out = tmp_path / "run"
    params = parameters.parse_parameters({"source": "api", "path": str(snapshot)})
    notebooks = [nb for nb in pipeline.notebook_files() if nb.name.startswith(("00_", "01_"))]
    pipeline.run(params, out=out, salt=SALT, progress=False, notebooks=notebooks, log=lambda m: None)
    paths = RunPaths(out)
    label.label_all(paths, seed=1, n_boot=10)
    users = pq.read_table(paths.table("interim", "images"), columns=["user_hash"]).column("user_hash")
    assert set(users.to_pylist()) == {sources.hash_username(n, SALT) for n in CLEAR_NAMES}
    creators = pq.read_table(paths.table("processed", "models"), columns=["creator_hash"])
    assert set(creators.column("creator_hash").to_pylist()) == {sources.hash_username(n, SALT) for n in CLEAR_NAMES}
    for path in all_files(out):
        content = searchable_bytes(path)
        assert SALT.encode() not in content, path
        assert not any(name.encode() in content for name in CLEAR_NAMES), path


# --------------------------------------------------------------------------- stored precision
@given(st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False))
def test_stored_float_keeps_ten_significant_digits_and_is_idempotent(x: float):
    kept = stats.stored_float(x)
    assert abs(kept - x) <= 5.01 * 10.0 ** -stats.STORED_DIGITS * abs(x)
    assert stats.stored_float(kept) == kept


def test_stored_float_hides_last_bit_differences():
    # Sums on two CPUs differ in the last bits: stored, they are the same number.
    rng = np.random.default_rng(3)
    values = rng.normal(size=2000) * 10.0 ** rng.integers(-12, 12, size=2000)
    nudged = np.nextafter(values, np.inf)
    same = [stats.stored_float(a) == stats.stored_float(b) for a, b in zip(values, nudged)]
    assert np.mean(same) > 0.99
    assert [stats.stored_float(v) for v in (np.nan, np.inf, -np.inf)][1:] == [np.inf, -np.inf]
    assert np.isnan(stats.stored_float(np.nan))


def test_results_and_numbers_store_floats_at_stored_precision(tmp_path):
    from helpers import paper
    from helpers.analyse import stored_frame, stored_value

    frame = pd.DataFrame({"share": [1 / 3, np.nan], "n": [3, 4], "label": ["a", "b"]})
    stored = stored_frame(frame)
    assert stored["share"].iloc[0] == 0.3333333333 and np.isnan(stored["share"].iloc[1])
    assert stored[["n", "label"]].equals(frame[["n", "label"]]) and frame["share"].iloc[0] == 1 / 3
    assert stored_value({"a": [np.float64(2 / 3)], "b": "text", "c": np.int64(5)}) == \
        {"a": [0.6666666667], "b": "text", "c": 5}
    assert paper.entry(2 / 3, "float")["value"] == 0.6666666667
