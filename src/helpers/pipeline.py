"""The runner: execute the numbered notebooks in order with papermill and write a manifest.

``python -m helpers run`` validates every parameter before any work, executes
``notebooks/NN_*.ipynb`` one after another (each reads only what earlier stages wrote), strips
run metadata from the executed notebooks so they are deterministic, skips stages whose inputs
and parameters are unchanged (``--force`` re-runs them), and records provenance, parameters,
package versions, row counts and file hashes in ``manifest.json``. A run holds a lock on its
folder, so a second run into the same folder refuses to start instead of mixing outputs.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import db, schema
from .db import atomic_path, sha256_file, temp_name, write_json_atomic
from .paths import RunPaths, repo_root, run_paths
from .sources import SALT_ENV, list_data_files

PACKAGE = "civitai-gendered-harm"


class StageError(RuntimeError):
    """A notebook failed; the message names the notebook and the cell."""


class RunInterrupted(StageError):
    """The run was stopped (Ctrl-C or SIGTERM) during a stage; completed stages are kept."""


class RunFolderLocked(StageError):
    """Another live run holds the run folder's lock; nothing was touched."""


# --------------------------------------------------------------------------- notebooks
def notebook_files(folder: Path | None = None) -> list[Path]:
    """The study's notebooks, ``NN_verb_object.ipynb``, in order.

    A run in the repository itself writes ``NN_*.running.ipynb`` / ``NN_*.failed.ipynb`` next to
    them; those are outputs, not stages (a dot in the stem tells them apart).
    """
    folder = folder or repo_root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if "." not in p.stem)


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Names and default values in a notebook's ``parameters`` cell (read with papermill)."""
    import papermill

    inspected = papermill.inspect_notebook(str(path))
    out = {}
    for name, info in inspected.items():
        try:
            import ast

            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = info["default"]
    return out


def coalesce_streams(outputs: list) -> list:
    """Consecutive stream outputs of one name (stdout, stderr) as one: how the kernel splits a
    cell's printing into messages depends on timing, so unmerged outputs would not be
    deterministic."""
    merged: list = []
    for out in outputs:
        if (merged and out.get("output_type") == "stream" and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == out.get("name")):
            merged[-1]["text"] = merged[-1]["text"] + out["text"]
        else:
            merged.append(out)
    return merged


def strip_run_metadata(nb_path: Path) -> None:
    """Remove papermill/ExecuteTime metadata (timestamps, durations, paths) from a notebook and
    merge split stream outputs (:func:`coalesce_streams`)."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        for key in ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    with atomic_path(nb_path) as tmp:
        nbformat.write(nb, tmp)


def shown_path(paths: RunPaths, path: Path) -> str:
    """A path as printed to the user: relative inside the repository's own run, else absolute.

    A run folder given with ``--out`` may be anywhere; a path relative to it would not say where.
    """
    if paths.root.resolve() == repo_root().resolve():
        return paths.relative(path)
    return Path(path).resolve().as_posix()


def _failure_message(name: str, exc: Exception, output: Path, paths: RunPaths) -> str:
    """Which notebook and cell failed (1-based, as in the committed notebook), and how."""
    import nbformat

    index = getattr(exc, "cell_index", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    where = "a cell"
    if output.exists():
        cells = nbformat.read(output, as_version=4).cells
        # The cell holding the error output is the authority (papermill's index may be shifted).
        errored = [i for i, c in enumerate(cells) if c.cell_type == "code"
                   and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
        index = errored[0] if errored else index
    if index is not None and output.exists():
        added_by_runner = {"injected-parameters", "papermill-error-cell-tag"}
        injected = sum(1 for c in cells[:index]
                       if added_by_runner & set(c.metadata.get("tags", [])))
        first_line = next((ln for ln in cells[index].source.splitlines() if ln.strip()), "")
        where = f"cell {index - injected + 1} (`{first_line[:80]}`)"
    shown = shown_path(paths, output) if output.exists() else output.name
    return (f"stage {name} failed in {where}: {ename}: {evalue}\n"
            f"The partly executed notebook is {shown}; open it to see the traceback.")


# --------------------------------------------------------------------------- hashing / manifest
def output_files(paths: RunPaths) -> list[Path]:
    """Files a run wrote that the manifest hashes (data, reports, paper outputs)."""
    folders = [paths.data / s for s in ("raw", "interim", "processed")] + \
              [paths.quarantine, paths.reports, paths.figures, paths.tables]
    files: list[Path] = []
    for folder in folders:
        if folder.exists():
            files += [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]
    for extra in (paths.paper / "numbers.tex", paths.paper / "numbers.json"):
        if extra.exists():
            files.append(extra)
    return sorted(files)


def hash_outputs(paths: RunPaths) -> dict[str, str]:
    return {paths.relative(p): sha256_file(p) for p in output_files(paths)}


def code_fingerprint() -> str:
    """Hash of the helpers package source: a code change invalidates every stage."""
    digest = hashlib.sha256()
    pkg = Path(__file__).parent
    for p in sorted(pkg.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".json", ".yaml", ".csv", ".txt"):
            digest.update(p.relative_to(pkg).as_posix().encode())
            digest.update(p.read_bytes())
    return digest.hexdigest()


def source_fingerprint(params: dict[str, Any]) -> str:
    """Size and mtime of the snapshot's files: a changed snapshot re-runs acquisition."""
    if not params.get("path"):
        return ""
    entries = []
    for f in list_data_files(Path(params["path"])):
        st = f.stat()
        entries.append(f"{f.as_posix()}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


# --------------------------------------------------------------------------- environment
#: The committed constraints file: the resolved version of every dependency, used by installs.
LOCK_FILE = Path("requirements") / "lock.txt"
#: Extras whose dependencies the lock also pins.
LOCK_EXTRAS: tuple[str, ...] = ("dev", "lab", "bench")


def project_requirements(extras: tuple[str, ...] = ()) -> list[str]:
    """The project's requirement strings with those of ``extras``, from ``pyproject.toml``
    (from the installed metadata when the repository is not beside the package)."""
    pyproject = repo_root() / "pyproject.toml"
    if pyproject.exists():
        import tomllib

        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        optional = project.get("optional-dependencies", {})
        return list(project.get("dependencies", [])) + [r for e in extras for r in optional.get(e, [])]
    from packaging.requirements import Requirement

    try:
        reqs = importlib.metadata.requires(PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    chosen = []
    for raw in reqs:
        marker = Requirement(raw).marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in (*extras, "")):
            chosen.append(raw)
    return chosen


def resolved_dependencies(extras: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed version of every distribution the project needs, transitively, by name.

    Requirements whose markers do not apply here (another platform, an extra nobody asked
    for) are left out; so is a requirement that is not installed.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    versions: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[Requirement, tuple[str, ...]]] = [(Requirement(r), ())
                                                       for r in project_requirements(extras)]
    while todo:
        req, parent_extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e})
                                              for e in (*parent_extras, "")):
            continue
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        versions[dist.metadata["Name"]] = dist.version
        todo += [(Requirement(r), tuple(req.extras)) for r in dist.requires or []]
    return dict(sorted(versions.items(), key=lambda item: canonicalize_name(item[0])))


def lock_text() -> str:
    """The constraints file for this environment (``make lock`` writes it to ``LOCK_FILE``)."""
    header = ["# Resolved versions of every dependency of the project, transitively, with the",
              f"# extras {', '.join(LOCK_EXTRAS)}: pip constraints for `make install` and CI.",
              "# Generated from the working environment by `make lock`; do not edit by hand.",
              f"# python {platform.python_version()}"]
    pins = [f"{name}=={version}" for name, version in resolved_dependencies(LOCK_EXTRAS).items()]
    return "\n".join(header + pins) + "\n"


def package_versions() -> dict[str, str]:
    """Resolved versions of the interpreter and of every runtime dependency (transitively)."""
    return {"python": platform.python_version(), **resolved_dependencies()}


def environment_fingerprint() -> str:
    """Hash of :func:`package_versions`: an upgraded package, even a dependency of a
    dependency, invalidates every stage."""
    return hashlib.sha256(json.dumps(package_versions(), sort_keys=True).encode()).hexdigest()


#: Folder of the committed real-data validation report that notebook 02 shows.
VALIDATION_DIR = Path("docs") / "validation"


def stage_inputs(stage: str) -> list[Path]:
    """Files outside the run folder that a stage reads (besides its notebook and the code).

    02_label_content reads the real records in ``../shared/data`` when present and the committed
    validation report, which 04_analyse_models and 05_simulate_interventions read too (the
    real-person label's error rates; enforcement on the real records);
    06_write_paper checks the manuscript and compares with the published figures.
    """
    root = repo_root()
    files: list[Path] = []
    if stage in ("02_label_content", "04_analyse_models", "05_simulate_interventions"):
        folder = root / VALIDATION_DIR
        if folder.exists():
            files += sorted(p for p in folder.rglob("*") if p.is_file())
    if stage == "02_label_content":
        from .label import shared_real_data_file

        real = shared_real_data_file()
        if real is not None:
            files.append(real)
    elif stage == "06_write_paper":
        files += [root / "paper" / "main.tex", root / "paper" / "reference.csv"]
    return files


def input_hashes(files: list[Path]) -> dict[str, str]:
    """SHA-256 of each input, named relative to the repository (absent files marked so)."""
    root = repo_root()
    return {Path(os.path.relpath(f, root)).as_posix(): sha256_file(f) if f.exists() else "absent"
            for f in files}


def read_reports(paths: RunPaths) -> dict[str, Any]:
    reports = {}
    if paths.reports.exists():
        for p in sorted(paths.reports.glob("*.json")):
            reports[p.stem] = json.loads(p.read_text(encoding="utf-8"))
    return reports


def row_counts(reports: dict[str, Any]) -> dict[str, dict[str, int | None]]:
    """Rows per table and stage (raw, clean, quarantined, processed) from the stage reports."""
    counts: dict[str, dict[str, int | None]] = {}
    cleaning = reports.get("clean", {}).get("tables", {})
    label = reports.get("label", {}).get("rows", {})
    for table in schema.CANONICAL:
        rep = cleaning.get(table)
        counts[table] = {
            "raw": rep["raw"] if rep else reports.get("acquire", {}).get("rows", {}).get(table),
            "clean": rep["clean"] if rep else None,
            "quarantined": rep["quarantined"] if rep else None,
            "processed": label.get(table),
        }
    return counts


# --------------------------------------------------------------------------- interruption
#: Names of files a write or a stage leaves only when killed part-way: never a finished output.
PARTIAL_PATTERNS: tuple[str, ...] = ("*.tmp", "*.running.ipynb")


def remove_partial_files(paths: RunPaths) -> list[str]:
    """Delete what a killed run left half-written in the run folder; return it (relative).

    Every output is written to a temporary name and renamed when complete, so these files are
    never results; removing them keeps a resumed run's folder identical to an uninterrupted one.
    """
    removed: list[str] = []
    for folder in (paths.data, paths.paper, paths.notebooks):
        if not folder.exists():
            continue
        for pattern in PARTIAL_PATTERNS:
            for f in sorted(folder.rglob(pattern)):
                if f.is_file():
                    f.unlink(missing_ok=True)
                    removed.append(paths.relative(f))
    manifest_tmps = [paths.manifest.with_name(paths.manifest.name + ".tmp"),
                     *paths.root.glob(f".{paths.manifest.name}.*.tmp")]
    for manifest_tmp in manifest_tmps:
        if manifest_tmp.is_file():
            manifest_tmp.unlink()
            removed.append(paths.relative(manifest_tmp))
    return sorted(removed)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM stop the run like Ctrl-C does, so it cleans up; return the undo function.

    Without it a scheduler's SIGTERM ends the runner at once, leaving its notebook kernel
    running on alone for a moment. Signal handlers can only be set from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def child_pids() -> set[int]:
    """Process ids of every process this one started (directly or not)."""
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


def stop_processes_started_since(before: set[int], timeout: float = 10.0) -> None:
    """Terminate the processes started since ``before`` (the stage's notebook kernel) and wait."""
    import psutil

    started = []
    for child in psutil.Process().children(recursive=True):
        if child.pid not in before:
            started.append(child)
    for child in started:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(started, timeout=timeout)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)


# --------------------------------------------------------------------------- run-folder lock
#: The lock file in a run folder while a run writes into it.
LOCK_NAME = ".run.lock"


def _process_started(pid: int) -> float | None:
    """Start time of a live process (to tell it from a later one that reused the pid), or None."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0  # alive, owned by someone else


def lock_holder_alive(holder: dict[str, Any]) -> bool:
    """True unless the lock's process is known to be gone (same host, pid dead or reused).

    A lock taken on another host (a shared file system) cannot be checked and counts as live.
    """
    if holder.get("host") != socket.gethostname():
        return True
    try:
        started = _process_started(int(holder["pid"]))
    except (KeyError, TypeError, ValueError):
        return False  # unreadable lock: left half-written by a killed run
    if started is None:
        return False
    recorded = holder.get("process_started")
    return started < 0 or recorded is None or abs(started - float(recorded)) < 1.0


def _read_lock(lock: Path) -> dict[str, Any]:
    try:
        data = json.loads(lock.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe_holder(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')}")


def acquire_run_lock(paths: RunPaths, say: Callable[[str], None] = print) -> Path:
    """Take the run folder's lock or raise :class:`RunFolderLocked` naming the run holding it.

    The lock is a file created exclusively (one process wins a race); it records pid, host and
    start time. A lock whose process is dead (a killed run) is stale: it is taken over, saying so.
    """
    lock = paths.root / LOCK_NAME
    paths.root.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "process_started": _process_started(os.getpid())}
    mine = temp_name(lock)
    mine.write_text(json.dumps(me), encoding="utf-8")
    try:
        for _ in range(3):
            try:
                # A hard link appears with its content complete, and fails if the lock exists.
                os.link(mine, lock)
                return lock
            except FileExistsError:
                pass
            holder = _read_lock(lock)
            if lock_holder_alive(holder):
                raise RunFolderLocked(
                    f"run folder {shown_path(paths, paths.root)} is in use by another run "
                    f"({_describe_holder(holder)}); wait for it to finish or choose another "
                    f"--out. If that run is gone, delete {shown_path(paths, lock)}.")
            # Move the stale lock aside before deleting it, so a run that took it over a moment
            # ago (and whose lock this would be) is never removed by mistake.
            aside = temp_name(lock)
            try:
                os.replace(lock, aside)
            except FileNotFoundError:
                continue
            if _read_lock(aside) != holder:
                os.replace(aside, lock)  # a live run's fresh lock: put it back and look again
                continue
            aside.unlink()
            say(f"taking over the lock of a run that is no longer running "
                f"({_describe_holder(holder)})")
    finally:
        mine.unlink(missing_ok=True)
    raise RunFolderLocked(f"could not take the lock of run folder {shown_path(paths, paths.root)}")


def release_run_lock(lock: Path) -> None:
    """Remove the lock if this process holds it."""
    if _read_lock(lock).get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


# --------------------------------------------------------------------------- running
#: Kernel options: ipykernel's own log (a transport warning at every start, a traceback when
#: the runner stops it on Ctrl-C) is not for the reader; notebook errors reach the notebook.
KERNEL_ARGUMENTS: list[str] = ["--IPKernelApp.log_level=CRITICAL"]


@dataclass
class RunResult:
    paths: RunPaths
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


def _out_dir_param(paths: RunPaths) -> str:
    """How the notebooks are told where the run lives: '' for the repo, else a path."""
    root = repo_root().resolve()
    if paths.root.resolve() == root:
        return ""
    try:
        return paths.root.resolve().relative_to(root).as_posix()
    except ValueError:
        return paths.root.resolve().as_posix()


def stage_key(nb: Path, nb_params: dict[str, Any], code: str, upstream: dict[str, str],
              source_fp: str, inputs: dict[str, str] | None = None, environment: str = "") -> str:
    """Identity of a stage's work: notebook, its parameters, the code, the installed packages,
    and what it reads (the files the previous stages produced, by hash; for acquisition, the
    snapshot files; ``inputs``: files outside the run, see :func:`stage_inputs`)."""
    blob = json.dumps({"notebook": sha256_file(nb), "params": nb_params, "code": code,
                       "upstream": upstream, "source": source_fp, "inputs": inputs or {},
                       "environment": environment}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def files_written_since(paths: RunPaths, started_ns: int) -> dict[str, str]:
    """Hashes of the run's output files modified at or after ``started_ns``."""
    return {paths.relative(p): sha256_file(p) for p in output_files(paths)
            if p.stat().st_mtime_ns >= started_ns}


def _still_there(paths: RunPaths, produced: dict[str, str]) -> bool:
    """True if every file a stage produced exists with the hash recorded for it."""
    for rel, digest in produced.items():
        f = paths.root / rel
        if not f.exists() or sha256_file(f) != digest:
            return False
    return True


def run(params: dict[str, Any], out: Path | None = None, force: bool = False,
        salt: str | None = None, progress: bool = True,
        notebooks: list[Path] | None = None, log: Callable[[str], None] | None = None,
        salt_env: str = SALT_ENV) -> RunResult:
    """Execute the notebooks in order; return what ran and the manifest written.

    ``params`` must come from :func:`parse_parameters`. ``salt`` (default: the environment
    variable ``salt_env``) is handed to the notebooks as ``HELPERS_USERNAME_SALT``. A stage
    whose key (notebook, parameters, code, packages, upstream outputs, outside inputs) matches
    the previous run's and whose outputs are intact is skipped unless ``force``. Raises
    :class:`RunFolderLocked` at once when another run writes into the same folder,
    :class:`StageError` naming the notebook and cell when a notebook fails, and
    :class:`RunInterrupted` on Ctrl-C or SIGTERM (after stopping the kernel and removing partial
    files). The manifest is updated after every completed stage, so a killed run resumes from
    the first stage that had not finished.
    """
    from tqdm import tqdm

    paths = run_paths(out or "")
    say = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    lock = acquire_run_lock(paths, say)
    try:
        return _run_locked(paths, params, force, salt, salt_env, progress, notebooks, say)
    finally:
        release_run_lock(lock)


def _run_locked(paths: RunPaths, params: dict[str, Any], force: bool, salt: str | None,
                salt_env: str, progress: bool, notebooks: list[Path] | None,
                say: Callable[[str], None]) -> RunResult:
    """:func:`run` once the run folder's lock is held."""
    import papermill
    from tqdm import tqdm

    paths.ensure()
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    notebooks = notebooks or notebook_files()
    leftovers = remove_partial_files(paths)
    if leftovers:
        say(f"removed {len(leftovers)} partial file(s) left by an interrupted run")
    previous = json.loads(paths.manifest.read_text()) if paths.manifest.exists() else {}
    prev_stages = previous.get("stages", {}) if previous.get("parameters") == params else {}
    code = code_fingerprint()
    environment = environment_fingerprint()
    source_fp = source_fingerprint(params)
    env_salt = salt if salt is not None else os.environ.get(salt_env, "")
    salt_info = {"username_salt_set": bool(env_salt), "username_salt_env": salt_env}
    result = RunResult(paths=paths)
    stages: dict[str, Any] = {}
    out_dir = _out_dir_param(paths)
    upstream: dict[str, str] = {}
    bar = tqdm(notebooks, desc="pipeline", unit="stage", disable=not progress, file=sys.stderr)
    kernels_before = child_pids()
    restore_sigterm = interrupt_on_sigterm()
    name = ""
    try:
        for nb in bar:
            name = nb.stem
            bar.set_postfix_str(name)
            defaults = notebook_parameters(nb)
            nb_params = {k: v for k, v in params.items() if k in defaults}
            injected = {k: v for k, v in nb_params.items() if v != defaults.get(k)}
            if "out_dir" in defaults and out_dir != defaults["out_dir"]:
                injected["out_dir"] = out_dir
            inputs = input_hashes(stage_inputs(name))
            key = stage_key(nb, nb_params, code, upstream, source_fp if name.startswith("00") else "",
                            inputs, environment)
            output = paths.notebooks / nb.name
            prev = prev_stages.get(name, {})
            if not force and prev.get("key") == key and output.exists() \
                    and _still_there(paths, prev.get("produced", {})):
                result.skipped.append(name)
                stages[name] = prev
                upstream = {**upstream, **prev.get("produced", {})}
                say(f"{name}: inputs and parameters unchanged, skipped (use --force to re-run)")
                continue
            force = True  # a re-run stage may change what every later stage reads
            started = time.perf_counter()
            started_ns = time.time_ns()
            tmp_out = output.with_name(output.stem + ".running.ipynb")
            env_backup = os.environ.get(SALT_ENV)
            os.environ[SALT_ENV] = env_salt
            try:
                papermill.execute_notebook(str(nb), str(tmp_out), parameters=injected or None,
                                           kernel_name="python3", progress_bar=False,
                                           cwd=str(nb.parent), extra_arguments=KERNEL_ARGUMENTS)
            except Exception as exc:
                failed = paths.notebooks / f"{nb.stem}.failed.ipynb"
                if tmp_out.exists():
                    os.replace(tmp_out, failed)
                _write_manifest(paths, params, stages, status=f"failed at {name}", salt=salt_info)
                raise StageError(_failure_message(name, exc, failed, paths)) from exc
            finally:
                if env_backup is None:
                    os.environ.pop(SALT_ENV, None)
                else:
                    os.environ[SALT_ENV] = env_backup
            strip_run_metadata(tmp_out)
            os.replace(tmp_out, output)
            (paths.notebooks / f"{nb.stem}.failed.ipynb").unlink(missing_ok=True)
            seconds = time.perf_counter() - started
            produced = files_written_since(paths, started_ns)
            upstream = {**upstream, **produced}
            result.executed.append(name)
            result.seconds[name] = round(seconds, 2)
            stages[name] = {"key": key, "seconds": round(seconds, 2), "produced": produced}
            if inputs:
                stages[name]["inputs"] = inputs
            say(f"{name}: done in {seconds:.1f} s")
            # A checkpoint: if the run is killed later, the next one resumes after this stage.
            _write_manifest(paths, params, stages, status=f"incomplete: {name} done",
                            files=_produced_files(stages), salt=salt_info)
        result.manifest = _write_manifest(paths, params, stages, status="complete", salt=salt_info)
    except KeyboardInterrupt:
        stop_processes_started_since(kernels_before)
        remove_partial_files(paths)
        _write_manifest(paths, params, stages, status=f"interrupted at {name}",
                        files=_produced_files(stages), salt=salt_info)
        raise RunInterrupted(f"run interrupted during stage {name}; the stages completed before "
                             f"it are kept ({', '.join(stages) or 'none'}): run the same command "
                             f"again to resume") from None
    finally:
        restore_sigterm()
    return result


def _produced_files(stages: dict[str, Any]) -> dict[str, str]:
    """Hashes of the files the given stages produced (recorded already: no re-hashing)."""
    files: dict[str, str] = {}
    for stage in stages.values():
        files.update(stage.get("produced", {}))
    return dict(sorted(files.items()))


def _write_manifest(paths: RunPaths, params: dict[str, Any], stages: dict[str, Any],
                    status: str, salt: dict[str, Any],
                    files: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``manifest.json``; ``files`` defaults to hashing every output file now.

    ``salt`` says whether the notebooks ran with a username salt and from which variable; it is
    decided when the run starts (the variable is restored after each stage).
    """
    reports = read_reports(paths)
    acquire = reports.get("acquire", {})
    counts = row_counts(reports)
    for table, c in counts.items():
        if c["raw"] is not None and c["clean"] is not None and c["raw"] != c["clean"] + c["quarantined"]:
            raise StageError(f"{table}: raw {c['raw']} ≠ clean {c['clean']} + quarantined "
                             f"{c['quarantined']}; rows were lost")
    manifest = {
        "status": status,
        "source": {"name": params["source"], "location": acquire.get("location"),
                   "revision": acquire.get("revision"), "path": params.get("path") or None},
        "parameters": params,
        **salt,
        "packages": package_versions(),
        "platform": {"python": sys.version.split()[0], "system": platform.system(),
                     "machine": platform.machine()},
        "rows": counts,
        "stages": stages,
        "files": hash_outputs(paths) if files is None else files,
    }
    write_json_atomic(manifest, paths.manifest)
    return manifest


# --------------------------------------------------------------------------- in one process
@dataclass(frozen=True)
class StudyOutputs:
    """What :func:`run_study_in_process` produced: each notebook's results (None when the
    snapshot lacks that table), the paper's numbers and the figures drawn."""

    paths: RunPaths
    images: Any  # analyse.ImageResults | None
    models: Any  # analyse.ModelResults | None
    interventions: Any  # analyse.InterventionResults | None
    numbers: dict[str, dict]
    figures: list[str]


def run_study_in_process(paths: RunPaths, source: str = "local", path: str = "", seed: int = 1,
                         n_boot: int = 1000, memory_limit: str = "3GB", definition: str = "r",
                         top_terms: int = 20, top_types: int = 6, top_tags: int = 15,
                         salt: str = "", boot_replicates: int = 200) -> StudyOutputs:
    """Every stage of notebooks 00–06, in their order, calling the same functions, in this
    process: for tests that run many snapshots end to end without starting kernels.

    Notebook 00 acquires, 01 cleans, 02 labels and links, 03/04/05 compute and save the results
    objects and their tables and figures (a missing table discards that notebook's results;
    05 simulates the default moderation rules and policy events), 06 writes the numbers and
    the comparison and checks the manuscript's inputs.
    """
    import pandas as pd

    from . import (analyse, clean, comparison, db, interventions_report, label, link, paper,
                   parameters, plots, sources)

    paths.ensure()
    synthetic = source == "sample"
    acquired = sources.acquire(source, paths, path=path, seed=seed, salt=salt)
    db.write_json_atomic(acquired.as_dict(), paths.report("acquire"))
    db.write_json_atomic(clean.clean_all(paths, clean.Window(), memory_limit=memory_limit),
                         paths.report("clean"))
    db.write_json_atomic(label.label_all(paths, seed=seed, memory_limit=memory_limit, n_boot=n_boot),
                         paths.report("label"))
    db.write_json_atomic(link.link_images(paths, memory_limit=memory_limit), paths.report("link"))
    images_path = paths.table("processed", "images")
    models_path = paths.table("processed", "models")
    models = pd.read_parquet(models_path) if models_path.exists() else None
    image_results = model_results = None
    if db.table_exists(images_path):
        con = analyse.connect(paths, memory_limit=memory_limit)
        try:
            image_results = analyse.image_results(
                images_path, models, definition=definition, top_terms=top_terms, con=con,
                links=paths.links, models_file=models_path, boot_replicates=boot_replicates,
                seed=seed)
        finally:
            con.close()
        image_results.save_to_run(paths)
        paper.write_paper_tables(paths, paper.image_tables(image_results))
    else:
        analyse.ImageResults.discard(paths)
    if models is not None:
        model_results = analyse.model_results(models, definition=definition, top_types=top_types,
                                              top_tags=top_tags,
                                              validation=label.real_person_validation_counts())
        model_results.save_to_run(paths)
        paper.write_paper_tables(paths, paper.model_tables(model_results))
    else:
        analyse.ModelResults.discard(paths)
    shown = [(name, results) for results, names in ((image_results, plots.IMAGE_FIGURES),
                                                    (model_results, plots.MODEL_FIGURES))
             if results is not None for name in names]
    for name, results in shown:  # as notebooks 03 and 04 show each figure
        plots.show(name, results, paths, synthetic)
    figures = [name for name, _ in shown]
    if db.table_exists(images_path):  # as notebook 05
        interventions = analyse.intervention_results(
            images_path, paths.links, models_path if models is not None else None,
            parameters.default("moderation_rules"), parameters.default("policy_events"),
            definition=definition, synthetic_run=synthetic,
            validation=label.real_person_validation_counts(), report=label.load_real_records_report(),
            n_boot=boot_replicates, seed=seed)
        interventions.save_to_run(paths)
        paper.write_paper_tables(paths, interventions_report.intervention_tables(interventions))
        plots.show("fig14_interventions", interventions, paths, synthetic)
    else:
        analyse.InterventionResults.discard(paths)
    # Notebook 06 reads the results back from the run folder, as here.
    numbers = paper.study_numbers(analyse.ImageResults.load_from_run(paths),
                                  analyse.ModelResults.load_from_run(paths), source, synthetic,
                                  analyse.InterventionResults.load_from_run(paths))
    paper.write_numbers(paths, numbers, synthetic=synthetic, source=source)
    comparison.write_comparison(paths, numbers, synthetic)
    paper.manuscript_check(paths)
    paper.readme_findings(paper.read_numbers(paths))
    return StudyOutputs(paths, image_results, model_results,
                        analyse.InterventionResults.load_from_run(paths), numbers, figures)
