"""The runner: parameters refused before any work, failures named, manifest complete, resume."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import parameters, pipeline
from helpers.paths import RunPaths, repo_root


@pytest.mark.parametrize("raw,match", [
    ({"colour": "red"}, "unknown parameter"),
    ({"sample_images": "many"}, "not a valid int"),
    ({"sample_images": "5"}, "at least 100"),
    ({"window_start": "2023-13-01"}, "YYYY-MM-DD"),
    ({"window_start": "2024-01-01", "window_end": "2023-01-01"}, "after window_end"),
    ({"window_start": "2019-01-01"}, "before CivitAI"),
    ({"source": "ftp"}, "not one of sample, hf, local, api"),
    ({"source": "local"}, "needs --path"),
    ({"source": "local", "path": "/nonexistent/snapshot"}, "does not exist"),
    ({"source": "sample", "path": "/tmp"}, "takes no --path"),
    ({"memory_limit": "lots"}, "memory size"),
])
def test_bad_parameters_are_refused(raw, match):
    with pytest.raises(parameters.ParameterError, match=match):
        parameters.parse_parameters(raw)


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(parameters.ParameterError) as err:
        parameters.parse_parameters({"sampel_images": 10})
    for name in parameters.PARAMETERS:
        assert name in str(err.value)


def test_source_that_does_not_match_the_files_is_refused(tmp_path):
    (tmp_path / "images.parquet").write_bytes(b"x")
    with pytest.raises(parameters.ParameterError, match="use --source local"):
        parameters.parse_parameters({"source": "api", "path": str(tmp_path)})


def test_cli_refuses_before_running_anything(tmp_path):
    out = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "helpers", "run", "--out", str(out),
                           "-p", "colour", "red"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown parameter" in proc.stderr and "sample_images" in proc.stderr
    assert not out.exists()


def test_parameters_match_the_notebooks():
    """Every notebook parameter is a runner parameter with the same default (and vice versa)."""
    seen = set()
    for nb in pipeline.notebook_files():
        params = pipeline.notebook_parameters(nb)
        assert params.get("out_dir") == "", f"{nb.name}: out_dir must default to ''"
        for name, default in params.items():
            if name == "out_dir":
                continue
            assert name in parameters.PARAMETERS, f"{nb.name}: {name} is not a runner parameter"
            assert parameters.PARAMETERS[name].default == default, f"{nb.name}: default of {name}"
            seen.add(name)
    assert seen == set(parameters.PARAMETERS)


def _failing_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('out_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# boom"), params,
                nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('planted')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "00_fail_here.ipynb"
    nbformat.write(nb, path)
    return path


def test_failure_names_notebook_and_cell(tmp_path, capfd):
    nb = _failing_notebook(tmp_path)
    with pytest.raises(pipeline.StageError) as err:
        pipeline.run(parameters.parse_parameters({}), out=tmp_path / "out", progress=False,
                     notebooks=[nb], log=lambda m: None)
    msg = str(err.value)
    assert "00_fail_here" in msg and "cell 4 (`raise ValueError('planted')`)" in msg and "ValueError: planted" in msg
    failed = tmp_path / "out" / "notebooks" / "00_fail_here.failed.ipynb"
    assert failed.exists()
    # outside the repository the failed notebook is named by its absolute path
    assert f"The partly executed notebook is {failed.resolve()};" in msg
    # the kernel's own log (a transport warning at every start) does not reach the user
    assert "without encryption" not in capfd.readouterr().err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed at 00_fail_here"


def test_strip_run_metadata(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1")
    cell.metadata.update({"papermill": {"duration": 1.0}, "execution": {"iopub.status.busy": "t"},
                          "tags": ["parameters"]})
    nb.cells = [cell]
    nb.metadata["papermill"] = {"start_time": "now", "input_path": "/abs"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    pipeline.strip_run_metadata(path)
    again = nbformat.read(path, as_version=4)
    assert "papermill" not in again.metadata
    assert again.cells[0].metadata == {"tags": ["parameters"]}


@pytest.mark.slow
@pytest.mark.realdata
def test_api_run_end_to_end_then_resume(tmp_path, real_data):
    path = real_data
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "helpers", "run", "--quiet", "--source", "api", "--path", str(path),
           "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["source"]["name"] == "api"
    assert manifest["rows"]["models"]["raw"] == 5394
    rows = manifest["rows"]["models"]
    assert rows["raw"] == rows["clean"] + rows["quarantined"]
    assert "pandas" in manifest["packages"] and "duckdb" in manifest["packages"]
    assert "data/interim/models.parquet" in manifest["files"]
    assert all(len(h) == 64 for h in manifest["files"].values())
    for nb in pipeline.notebook_files():
        assert (out / "notebooks" / nb.name).exists()
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0
    assert "skipped" in second.stderr and f"0 stage(s) executed" in second.stdout
    third = subprocess.run(cmd + ["-p", "window_end", "2023-03-31"], capture_output=True, text=True)
    assert third.returncode == 0, third.stderr[-2000:]
    m3 = json.loads((out / "manifest.json").read_text())
    assert m3["rows"]["models"]["clean"] < rows["clean"]
    assert m3["rows"]["models"]["raw"] == m3["rows"]["models"]["clean"] + m3["rows"]["models"]["quarantined"]


# --------------------------------------------------------------------------- what a stage depends on
def _trivial_notebook(path: Path, code: str = "x = 1") -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('out_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def fake_papermill(monkeypatch):
    """papermill that copies the notebook instead of running it; records the salt it saw."""
    import papermill

    seen: list[str | None] = []

    def execute(input_path, output_path, **kwargs):
        import os

        seen.append(os.environ.get("HELPERS_USERNAME_SALT"))
        nbformat.write(nbformat.read(input_path, as_version=4), output_path)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return seen


@pytest.fixture
def outside_inputs(tmp_path, monkeypatch) -> dict[str, Path]:
    """A repository (via HELPERS_REPO_ROOT) with a validation report, the manuscript, the
    published figures and real records beside it in ../shared/data."""
    repo = tmp_path / "repo"
    files = {"validation": repo / "docs" / "validation" / "real_records.json",
             "main_tex": repo / "paper" / "main.tex",
             "reference": repo / "paper" / "reference.csv",
             "real": tmp_path / "shared" / "data" / "civitai-api-models-2023" / "models.jsonl.gz"}
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("version 1\n")
    monkeypatch.setenv("HELPERS_REPO_ROOT", str(repo))
    return files


def test_stage_key_covers_every_input_a_stage_reads(tmp_path, monkeypatch, fake_papermill,
                                                    outside_inputs):
    names = ("00_acquire_snapshot", "02_label_content", "06_write_paper")
    notebooks = [_trivial_notebook(tmp_path / "nbs" / f"{n}.ipynb") for n in names]
    params = parameters.parse_parameters({})

    def executed() -> list[str]:
        return pipeline.run(params, out=tmp_path / "out", progress=False, notebooks=notebooks,
                            log=lambda m: None).executed

    assert executed() == list(names)
    assert executed() == []
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert set(manifest["stages"]["02_label_content"]["inputs"]) == {
        "docs/validation/real_records.json", "../shared/data/civitai-api-models-2023/models.jsonl.gz"}
    assert set(manifest["stages"]["06_write_paper"]["inputs"]) == {"paper/main.tex", "paper/reference.csv"}
    for which, first in (("main_tex", "06_write_paper"), ("reference", "06_write_paper"),
                         ("validation", "02_label_content"), ("real", "02_label_content")):
        outside_inputs[which].write_text(f"changed {which}\n")
        assert executed() == list(names[names.index(first):]), which
        assert executed() == [], which
    # a new report file under docs/validation, and real records that disappear, count too
    (outside_inputs["validation"].parent / "real_records.md").write_text("# report\n")
    assert executed() == ["02_label_content", "06_write_paper"]
    outside_inputs["real"].unlink()
    assert executed() == ["02_label_content", "06_write_paper"]
    # an upgraded package (any installed distribution) re-runs every stage
    monkeypatch.setattr(pipeline, "environment_fingerprint", lambda: "another environment")
    assert executed() == list(names)
    assert executed() == []


def test_environment_fingerprint_includes_dependencies_of_dependencies(monkeypatch):
    import importlib.metadata

    first = pipeline.environment_fingerprint()
    assert first == pipeline.environment_fingerprint()
    versions = pipeline.package_versions()
    assert {"python", "pandas", "duckdb", "tzdata"} <= set(versions)  # tzdata: through pandas
    real = importlib.metadata.distribution

    class Upgraded:
        def __init__(self, dist):
            self.metadata, self.requires, self.version = dist.metadata, dist.requires, dist.version + ".post1"

    def upgraded(name):  # a transitive dependency (not in pyproject.toml) at another version
        dist = real(name)
        return Upgraded(dist) if name.lower() == "tzdata" else dist

    monkeypatch.setattr(importlib.metadata, "distribution", upgraded)
    assert pipeline.package_versions()["tzdata"] == versions["tzdata"] + ".post1"
    assert pipeline.environment_fingerprint() != first


@pytest.mark.parametrize("salt_set", [True, False])
def test_salt_env_is_recorded_in_the_manifest(tmp_path, monkeypatch, capsys, fake_papermill, salt_set):
    from helpers.__main__ import main

    monkeypatch.delenv("HELPERS_USERNAME_SALT", raising=False)
    if salt_set:
        monkeypatch.setenv("MY_PROJECT_SALT", "pepper-51")
    else:
        monkeypatch.delenv("MY_PROJECT_SALT", raising=False)
    out = tmp_path / "out"
    assert main(["run", "--quiet", "--out", str(out), "--salt-env", "MY_PROJECT_SALT"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["username_salt_set"] is salt_set
    assert manifest["username_salt_env"] == "MY_PROJECT_SALT"
    assert set(fake_papermill) == {"pepper-51" if salt_set else ""}  # what the notebooks saw
    assert "pepper" not in (out / "manifest.json").read_text()
    # a run outside the repository names its manifest by its absolute path
    assert f"manifest at {(out / 'manifest.json').resolve()}" in capsys.readouterr().out


# --------------------------------------------------------------------------- one run per folder
LOCK_HOLDER = """
import sys, time
from helpers import parameters, pipeline
from helpers.paths import RunPaths

pipeline.acquire_run_lock(RunPaths(__import__("pathlib").Path(sys.argv[1])))
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_run_is_refused_while_the_first_holds_the_folder(tmp_path, fake_papermill):
    import socket

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        nb = _trivial_notebook(tmp_path / "nbs" / "00_acquire_snapshot.ipynb")
        with pytest.raises(pipeline.RunFolderLocked) as err:
            pipeline.run(parameters.parse_parameters({}), out=out, progress=False, notebooks=[nb],
                         log=lambda m: None)
        msg = str(err.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}, started 20" in msg
        assert str(out.resolve()) in msg and "in use by another run" in msg
        assert fake_papermill == [] and not (out / "manifest.json").exists()
        assert sorted(p.name for p in out.iterdir()) == [pipeline.LOCK_NAME]  # nothing touched
        # the CLI says the same and exits 1
        cli = subprocess.run([sys.executable, "-m", "helpers", "run", "--quiet", "--out", str(out)],
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 1 and f"pid {holder.pid}" in cli.stderr
        # killed without a chance to clean up: its lock is stale and the next run takes over
        holder.kill()
        holder.wait()
        messages: list[str] = []
        result = pipeline.run(parameters.parse_parameters({}), out=out, progress=False, notebooks=[nb],
                              log=messages.append)
        assert result.executed == ["00_acquire_snapshot"]
        assert any(m.startswith("taking over the lock of a run that is no longer running "
                                f"(pid {holder.pid} on host") for m in messages), messages
        assert not (out / pipeline.LOCK_NAME).exists()  # released at the end
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, fake_papermill):
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / pipeline.LOCK_NAME).write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00Z"}))
    messages: list[str] = []
    nb = _trivial_notebook(tmp_path / "nbs" / "00_acquire_snapshot.ipynb")
    result = pipeline.run(parameters.parse_parameters({}), out=out, progress=False, notebooks=[nb],
                          log=messages.append)
    assert result.executed == ["00_acquire_snapshot"]
    assert f"taking over the lock of a run that is no longer running (pid {dead.pid} on host " \
           f"{socket.gethostname()}, started 2026-01-01T00:00:00Z)" in messages
    assert not (out / pipeline.LOCK_NAME).exists()


def test_a_lock_whose_pid_was_reused_is_stale():
    import os
    import socket

    me = {"pid": os.getpid(), "host": socket.gethostname()}
    assert pipeline.lock_holder_alive({**me, "process_started": pipeline._process_started(os.getpid())})
    assert not pipeline.lock_holder_alive({**me, "process_started": 1.0})  # another process, long ago
    assert pipeline.lock_holder_alive({**me, "host": "another-host", "pid": 999_999_999})


# --------------------------------------------------------------------------- what the user sees
INTERRUPTED_RUNNER = """
import sys
from pathlib import Path
from helpers import parameters, pipeline

try:
    pipeline.run(parameters.parse_parameters({}), out=Path(sys.argv[1]), progress=False,
                 notebooks=[Path(sys.argv[2])])
except pipeline.StageError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
"""


def test_ctrl_c_shows_the_interrupt_message_alone(tmp_path):
    """No ipykernel transport warning, no zmq traceback from the stopped kernel."""
    import os
    import signal
    import time

    started = tmp_path / "cell-started"
    nb = _trivial_notebook(tmp_path / "nbs" / "00_sleep.ipynb",
                           f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(120)")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_RUNNER, str(out), str(nb)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the runner's group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: run interrupted during stage 00_sleep"), stderr


@pytest.mark.slow
def test_a_whole_sample_run_into_a_folder_whose_name_needs_quoting(tmp_path):
    """Every path that reaches SQL is quoted: an apostrophe, a space and a non-ASCII letter in the
    run folder's name carry through all six notebooks (DuckDB spill folder, Parquet reads, the
    benchmark-style scans of the analyses)."""
    out = tmp_path / "O'Brien's run ü"
    params = parameters.parse_parameters({"sample_images": 3000, "sample_models": 300})
    result = pipeline.run(params, out=out, progress=False, log=lambda m: None)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete", manifest["status"]
    assert len(result.executed) == len(pipeline.notebook_files())
    assert (out / "data" / "processed" / "links.parquet").exists()
    assert (out / "paper" / "numbers.json").exists()


def test_split_stream_outputs_are_merged_so_notebooks_are_deterministic():
    import nbformat

    from helpers.pipeline import coalesce_streams

    parts = [nbformat.v4.new_output("stream", name="stdout", text="a\n"),
             nbformat.v4.new_output("stream", name="stdout", text="b"),
             nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
             nbformat.v4.new_output("stream", name="stdout", text="c\n")]
    merged = coalesce_streams(parts)
    assert [(o["name"], o["text"]) for o in merged] == [("stdout", "a\nb"), ("stderr", "warn\n"),
                                                        ("stdout", "c\n")]
    whole = [nbformat.v4.new_output("stream", name="stdout", text="a\nb")]
    assert coalesce_streams(whole) == whole
