"""Interrupted and repeated runs.

A run killed at any point leaves each output either complete or absent, never half-written (every
file is written under a temporary name and renamed). Re-running resumes: stages whose inputs and
parameters are unchanged are skipped, ``--force`` re-runs them, and the outputs of an interrupted
then resumed run equal those of an uninterrupted run (by SHA-256).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import psutil
import pytest

from helpers import pipeline
from helpers.paths import RunPaths
from test_determinism import (SALT, assert_all_files_readable, finish, hashes_on_disk, is_complete,
                              manifest, manifest_files, partial_files, reference_folder, reference_run,
                              start_run)

#: Runs only acquisition and cleaning, through the same runner, so a hard kill is cheap to repeat.
SUBSET_RUNNER = """
import sys
from pathlib import Path
from helpers import parameters, pipeline

params = parameters.parse_parameters({"sample_images": 2000, "sample_models": 200})
notebooks = [nb for nb in pipeline.notebook_files() if nb.name.startswith(("00_", "01_"))]
result = pipeline.run(params, out=Path(sys.argv[1]), force="--force" in sys.argv, progress=False,
                      notebooks=notebooks)
print("executed:" + ",".join(result.executed) + " skipped:" + ",".join(result.skipped))
"""


def start_subset(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HELPERS_USERNAME_SALT": SALT}
    return subprocess.Popen([sys.executable, "-c", SUBSET_RUNNER, str(out), *extra], text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll ``condition`` every 10 ms; fail if the run ends (or time runs out) before it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it could be interrupted: "
                        f"{proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the moment to interrupt the run")
        time.sleep(0.01)


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def assert_gone(processes: list[psutil.Process], timeout: float = 15) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"processes of the interrupted run still running: {[p.pid for p in alive]}"


# --------------------------------------------------------------------------- unit level
def test_partial_files_of_a_killed_run_are_removed_and_nothing_else(tmp_path):
    paths = RunPaths(tmp_path).ensure()
    keep = [paths.table("raw", "images"), paths.report("acquire"), paths.figures / "fig.png",
            paths.notebooks / "00_acquire_snapshot.ipynb"]
    partial = [paths.table("raw", "images").with_name("images.parquet.tmp"),
               paths.tables / "t.csv.tmp", paths.notebooks / "01_clean_tables.running.ipynb",
               tmp_path / "manifest.json.tmp"]
    for f in keep + partial:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    removed = pipeline.remove_partial_files(paths)
    assert removed == sorted(paths.relative(f) for f in partial)
    assert all(f.exists() for f in keep) and not any(f.exists() for f in partial)


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted sample run (shared with tests/test_determinism.py)."""
    return reference_run(tmp_path_factory.getbasetemp())


@pytest.mark.slow
def test_sigterm_mid_stage_then_rerun_equals_an_uninterrupted_run(tmp_path, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    # the reference, if no earlier test made it, runs alongside the interrupted run
    reference_proc = None if is_complete(reference_folder(base)) else start_run(reference_folder(base))
    out = tmp_path / "interrupted"
    proc = start_run(out)
    # mid-stage: cleaning has written the clean images but not yet the models
    wait_until(lambda: (out / "data" / "interim" / "images.parquet").exists(), proc)
    kernels = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    stopped = finish(proc, expect_ok=False)
    assert stopped.returncode != 0
    assert "run the same command again to resume" in stopped.stderr
    # normally 01_clean_tables; a loaded machine may let the runner reach the next stage first
    stage = re.search(r"interrupted during stage (\w+);", stopped.stderr).group(1)
    names = [nb.stem for nb in pipeline.notebook_files()]
    assert stage in names[1:3]
    done = names[:names.index(stage)]
    assert_gone(kernels)  # the notebook kernel was stopped with the runner
    assert partial_files(out) == []
    assert_all_files_readable(out)
    interrupted = manifest(out)
    assert interrupted["status"] == f"interrupted at {stage}"
    assert list(interrupted["stages"]) == done  # the checkpoints of the finished stages

    resumed = finish(start_run(out))
    for name in done:
        assert f"{name}: inputs and parameters unchanged, skipped" in resumed.stderr
    assert f"{len(names) - len(done)} stage(s) executed, {len(done)} skipped" in resumed.stdout
    assert partial_files(out) == []
    if reference_proc is not None:
        finish(reference_proc)
    expected = manifest_files(reference_run(base))
    got = manifest_files(out)
    assert sorted(got) == sorted(expected)
    differing = sorted(name for name in expected if expected[name] != got[name])
    assert not differing, f"the resumed run differs from an uninterrupted one in {differing}"
    assert hashes_on_disk(out, list(got)) == got

    # a repeated run skips every stage and changes nothing
    again = finish(start_run(out))
    assert f"0 stage(s) executed, {len(names)} skipped" in again.stdout
    assert hashes_on_disk(out, list(got)) == got


@pytest.mark.slow
def test_hard_kill_mid_write_leaves_only_complete_files(tmp_path, reference):
    """SIGKILL (no clean-up possible) of the runner and its kernel while a file is being written."""
    out = tmp_path / "killed"
    proc = start_subset(out)

    def writing() -> bool:
        data = out / "data"
        return any(data.rglob("*.tmp")) or (data / "raw" / "models.parquet").exists()

    wait_until(writing, proc)
    victims = [psutil.Process(proc.pid)] + descendants(proc.pid)
    for victim in victims:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
    assert_gone(victims)
    proc.communicate()
    # whatever was caught mid-write is only under a temporary name: final names are complete
    assert_all_files_readable(out)

    rerun = start_subset(out)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-3000:]
    assert "executed:" in stdout
    assert partial_files(out) == []
    produced = manifest_files(out)
    expected = manifest_files(reference)
    assert {"data/raw/images.view.json", "data/interim/models.parquet", "data/reports/clean.json"} <= set(produced)
    differing = sorted(name for name in produced if expected.get(name) != produced[name])
    assert not differing, f"the re-run after a hard kill differs from an uninterrupted run in {differing}"

    # resume skips both stages; --force runs them again with identical results
    skipped = start_subset(out)
    stdout, _ = skipped.communicate(timeout=300)
    assert "executed: skipped:00_acquire_snapshot,01_clean_tables" in stdout
    forced = start_subset(out, "--force")
    stdout, stderr = forced.communicate(timeout=300)
    assert forced.returncode == 0, stderr[-3000:]
    assert "executed:00_acquire_snapshot,01_clean_tables skipped:" in stdout
    assert manifest_files(out) == produced
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
