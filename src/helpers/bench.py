"""Scale benchmark: the pipeline on a synthetic snapshot of N image rows, against a scan floor
and a naive pandas baseline, each measured in a fresh child process.

``python -m helpers bench --rows N [--baseline] [--out benchmarks/results]`` (``make bench``)

1. generates ``benchmarks/data/<N>/snapshot`` (Hub raw format, :mod:`helpers.synth`) if missing;
2. runs every pipeline stage (:data:`STAGES`: acquire → clean → label → analyses → figures) in
   its own ``python -c`` child, as the notebooks would, and measures for each
   *wall seconds* of the stage call (imports excluded, like notebook start-up),
   *rows per second*, and *peak resident memory* of the child's process tree: the larger of
   the kernel's high-water mark of the child (``os.wait4`` rusage) and the sum of RSS over the
   child and its descendants polled every 50 ms with ``psutil``;
3. measures the *scan floor*: one DuckDB ``SELECT`` of every raw column the pipeline reads,
   with a trivial aggregate that forces each value to be decoded; and the *labelling floor*:
   the image labels (prompt regexes) computed over the cleaned table and only counted, no
   table written, which is the least any design that labels every prompt must spend;
4. with ``baseline=True``, runs the *naive reference* a researcher writes first (the whole
   snapshot in one pandas frame, stats JSON parsed per row, the same labels applied row by row
   with the lexicon's Python regexes, grouped by month);
5. writes ``<out>/<N>.json`` (machine, stages, ratios) and ``<out>/<N>.md`` and prints the table.

:func:`extrapolate` fits ``seconds = a + b·rows`` per stage over several result files and
predicts a larger N (the README's 40M estimate).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .db import read_parquet_sql, sql_identifier, sql_literal, write_json_atomic, write_text_atomic
from .parameters import default
from .paths import RunPaths, repo_root

#: Pipeline stages in run order (each one a fresh child process).
STAGES: tuple[str, ...] = ("acquire", "clean", "label_images", "label_models", "link",
                           "analyse_images", "analyse_models", "figures")
#: Reference measurements besides the pipeline.
SCAN_FLOOR = "scan_floor"
LABEL_FLOOR = "label_floor"
#: The labelling floor with the reference markers (whole-text normalisation, then matching):
#: what the patterns for lightly normalised text save, on the same rows.
LABEL_FLOOR_REFERENCE = "label_floor_reference"
#: The labelling floor with each distinct prompt labelled once (one DuckDB ``DISTINCT`` over the
#: whole table): what labelling costs when repeated prompts are free.
LABEL_FLOOR_DISTINCT = "label_floor_distinct"
#: Writing the snapshot's image columns once as zstd Parquet (DuckDB's parallel ``COPY``), nothing
#: else: the least a design that writes the cleaned table once has to spend on that write.
WRITE_FLOOR = "write_floor"
NAIVE = "naive_baseline"
#: The analyses of notebook 03 that produce the peers' results, timed on their own (part of
#: ``analyse_images``, so not added to the pipeline's sum).
SAME_RESULTS = "same_results_analyses"
#: The pipeline stages that, with :data:`SAME_RESULTS`, produce what the peers produce.
SAME_RESULTS_STAGES: tuple[str, ...] = ("acquire", "clean", "label_images")
POLARS_PEER = "polars_peer"
DUCKDB_PEER = "duckdb_peer"
#: Starting one notebook as the runner does (papermill, a fresh kernel, the helpers imported).
NOTEBOOK_START = "notebook_start"
#: What a notebook's first cells import (the start-up every stage pays once).
NOTEBOOK_IMPORTS = "from helpers import analyse, clean, label, link, paper, plots, sources"
#: Seed of the synthetic snapshot and of every seeded pipeline step.
SEED = default("seed")  # the run parameters' seed
#: Interval of the psutil memory poll, seconds.
POLL_SECONDS = 0.05
#: Targets of the scale benchmark (checked in the report, never asserted in tests).
TARGET_NAIVE_OVER_PIPELINE = 5.0
TARGET_PEAK_SHARE_OF_NAIVE = 1 / 3
TARGET_SAME_RESULTS_OVER_POLARS = 1.0
TARGET_PIPELINE_OVER_POLARS = 4.0
TARGET_BYTES_OVER_SNAPSHOT = 1.5
TARGET_PEAK_MB = 1024
#: Load average (1 min) up to which the benchmark machine counts as quiet in the README text: the
#: benchmark machine's core count (its own previous child still shows in the average).
QUIET_LOAD = 2.0
MB = 1024 * 1024


@dataclass
class Measurement:
    """One child process: what it ran, how long the work took, and its peak memory."""

    name: str
    rows: int
    seconds: float  # wall time of the stage call inside the child (imports excluded)
    process_seconds: float  # wall time of the whole child process
    peak_rss_mb: float  # max(kernel high-water mark, polled tree sum)
    peak_rss_kernel_mb: float
    peak_rss_polled_mb: float
    bytes_written: int | None = None  # bytes the child passed to write() (``wchar``), files and spill

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


# --------------------------------------------------------------------------- locations
def default_models(rows: int) -> int:
    """Models generated alongside ``rows`` images (same rule as ``python -m helpers synth``)."""
    return max(200, rows // 100)


def data_folder(rows: int, data_dir: Path | None = None) -> Path:
    """``benchmarks/data/<rows>`` (git-ignored) or ``data_dir/<rows>``."""
    base = Path(data_dir) if data_dir is not None else repo_root() / "benchmarks" / "data"
    return base / str(rows)


def ensure_snapshot(folder: Path, rows: int) -> bool:
    """Write the synthetic snapshot into ``folder`` unless a complete one is there; True if written.

    Generated in a child process: a forked child's peak-RSS counter starts from its parent's
    resident memory, so the parent must stay small for the stage measurements to be fair.
    A hidden marker is written last, so an interrupted generation is redone, not reused.
    """
    marker = folder / ".complete.json"
    params = {"rows": rows, "models": default_models(rows), "seed": SEED}
    if marker.exists() and json.loads(marker.read_text(encoding="utf-8")) == params:
        return False
    subprocess.run([sys.executable, "-m", "helpers", "synth", "--rows", str(rows), "--models",
                    str(params["models"]), "--seed", str(SEED), "--out", str(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    write_json_atomic(params, marker)
    return True


# --------------------------------------------------------------------------- stages (child side)
def _image_rows(paths: RunPaths, stage: str) -> int:
    from . import db

    path = paths.table(stage, "images")
    return db.table_rows(path) if db.table_exists(path) else 0


def stage_acquire(paths: RunPaths, snapshot: Path) -> int:
    """Hub-format Parquet → raw canonical tables (the ``local`` adapter)."""
    from . import sources

    return sources.acquire_local(snapshot, paths).rows.get("images", 0)


def stage_clean(paths: RunPaths, snapshot: Path) -> int:
    """Raw → interim + quarantine."""
    from . import clean

    report = clean.clean_all(paths)
    return report["tables"]["images"]["raw"]


def stage_label_images(paths: RunPaths, snapshot: Path) -> int:
    """Interim images → processed images (NSFW definitions, n_lora, lexicon markers)."""
    from . import label

    return label.label_images(paths)["rows"]


def stage_label_models(paths: RunPaths, snapshot: Path) -> int:
    """Interim models → processed models (real-person score, gender, markers, evaluation)."""
    from . import label

    label.label_models(paths, seed=SEED)
    return _model_rows(paths)


def stage_link(paths: RunPaths, snapshot: Path) -> int:
    """Images linked to the models they name (the last step of notebook 02)."""
    from . import link

    return int(link.link_images(paths)["images"])


def _model_rows(paths: RunPaths) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(paths.table("processed", "models")).metadata.num_rows


def _results_folder(paths: RunPaths, part: str) -> Path:
    return paths.tmp / f"bench_{part}"


def study_parameters() -> dict[str, Any]:
    """The analysis parameters of ``params/full.yaml`` (checked and typed as the runner does):
    the benchmark analyses the snapshot as the full run does (e.g. its prompt-term sample)."""
    import yaml

    from .parameters import parse_parameters

    profile = yaml.safe_load((repo_root() / "params" / "full.yaml").read_text(encoding="utf-8")) or {}
    return parse_parameters(profile)


def full_profile_term_sample_percent() -> float | None:
    """``term_sample_percent`` of ``params/full.yaml`` (None when it tokenises every prompt)."""
    return study_parameters()["term_sample_percent"]


def stage_analyse_images(paths: RunPaths, snapshot: Path) -> int:
    """Notebook 03's analyses: :func:`helpers.analyse.image_results`, saved for the figures."""
    import pandas as pd

    from . import analyse

    params = study_parameters()
    con = analyse.connect(paths, memory_limit=params["memory_limit"])
    try:
        results = analyse.image_results(
            paths.table("processed", "images"), pd.read_parquet(paths.table("processed", "models")),
            definition=params["definition"], top_terms=params["top_terms"],
            term_sample_percent=params["term_sample_percent"], con=con, links=paths.links,
            models_file=paths.table("processed", "models"),
            boot_replicates=params["boot_replicates"], seed=params["seed"])
    finally:
        con.close()
    results.save(_results_folder(paths, "images"))
    return _image_rows(paths, "processed")


def stage_analyse_models(paths: RunPaths, snapshot: Path) -> int:
    """Notebook 04's analyses: :func:`helpers.analyse.model_results`, saved for the figures."""
    import pandas as pd

    from . import analyse, label

    params = study_parameters()
    models = pd.read_parquet(paths.table("processed", "models"))
    results = analyse.model_results(models, definition=params["definition"],
                                    top_types=params["top_types"], top_tags=params["top_tags"],
                                    validation=label.real_person_validation_counts())
    results.save(_results_folder(paths, "models"))
    return len(models)


def stage_figures(paths: RunPaths, snapshot: Path) -> int:
    """The ten figures, drawn from the saved results as notebooks 03 and 04 draw them."""
    from . import analyse, plots

    names = [*plots.save_figures(analyse.ImageResults.load(_results_folder(paths, "images")),
                                 paths, synthetic=True),
             *plots.save_figures(analyse.ModelResults.load(_results_folder(paths, "models")),
                                 paths, synthetic=True)]
    return len(names)


def stage_same_results_analyses(paths: RunPaths, snapshot: Path) -> int:
    """The analyses whose results the peers compute (monthly NSFW shares under the three
    definitions, LoRA use by month, NSFW share with vs without an adapter call, markers by
    month), from the processed images as notebook 03 runs them."""
    from . import analyse

    params = study_parameters()
    images = paths.table("processed", "images")
    con = analyse.connect(paths, memory_limit=params["memory_limit"])
    try:
        analyse.nsfw_share_by_month(images, con=con)
        analyse.lora_use_by_month(images, con=con)
        analyse.nsfw_share_by_adapter_use(images, definition=params["definition"], con=con)
        analyse.markers_by_month(images, con=con)
    finally:
        con.close()
    return _image_rows(paths, "processed")


def stage_notebook_start(paths: RunPaths, snapshot: Path) -> int:
    """One notebook started the way the runner starts each stage: papermill, a fresh kernel,
    a parameters cell and the helpers imported, nothing else."""
    import nbformat
    import papermill

    from .pipeline import KERNEL_ARGUMENTS

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seed = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(NOTEBOOK_IMPORTS)]
    source = paths.tmp / "bench_notebook_start.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(str(source), str(source.with_suffix(".out.ipynb")), kernel_name="python3",
                               progress_bar=False, extra_arguments=KERNEL_ARGUMENTS)
    return 1


def notebook_count() -> int:
    """How many notebooks a run starts."""
    from .pipeline import notebook_files

    return len(notebook_files())


def _peer_folder(paths: RunPaths, peer: str) -> Path:
    return paths.tmp / f"bench_{peer}"


def _run_peer(paths: RunPaths, snapshot: Path, peer: str) -> int:
    from . import bench_peers, label

    params = study_parameters()
    run = bench_peers.polars_peer if peer == POLARS_PEER else bench_peers.duckdb_peer
    frames = run(image_files(snapshot), label.load_lexicon(), definition=params["definition"])
    bench_peers.save_frames(frames, _peer_folder(paths, peer))
    return int(frames["monthly"]["n_images"].sum())


def stage_polars_peer(paths: RunPaths, snapshot: Path) -> int:
    """The polars one-pass peer: raw snapshot to the study's image results, streamed."""
    return _run_peer(paths, snapshot, POLARS_PEER)


def stage_duckdb_peer(paths: RunPaths, snapshot: Path) -> int:
    """The DuckDB one-query peer: raw snapshot to the study's image results."""
    return _run_peer(paths, snapshot, DUCKDB_PEER)


def peer_differences(paths: RunPaths, peer: str) -> list[str]:
    """Where a peer's results differ from the pipeline's saved ``ImageResults`` (empty: equal)."""
    from . import analyse, bench_peers, label

    lexicon = label.load_lexicon()
    want = bench_peers.pipeline_frames(analyse.ImageResults.load(_results_folder(paths, "images")), lexicon)
    return bench_peers.compare_frames(bench_peers.load_frames(_peer_folder(paths, peer)), want)


def image_files(snapshot: Path) -> list[Path]:
    """The snapshot's image Parquet parts, sorted."""
    return sorted((snapshot / "images").glob("*.parquet"))


#: Raw snapshot columns the pipeline reads (everything the images adapter maps).
SCAN_COLUMNS: tuple[str, ...] = ("id", "createdAt", "url", "positivePrompt", "negativePrompt",
                                 "nsfw", "browsingLevel", "statsSummary", "usernameHash",
                                 "baseModel", "modelId")


def scan_floor_sql(files: Iterable[Path], columns: Iterable[str]) -> str:
    """One plain scan: every needed column decoded once, reduced to a trivial aggregate."""
    parts = [f"max(length(CAST({sql_identifier(c)} AS VARCHAR)))" for c in columns]
    return f"SELECT count(*), {', '.join(parts)} FROM {read_parquet_sql(list(files))}"


def stage_scan_floor(paths: RunPaths, snapshot: Path) -> int:
    """The scan floor: DuckDB decoding every column the pipeline needs, nothing else."""
    import pyarrow.parquet as pq

    from .db import connect

    files = image_files(snapshot)
    present = set(pq.ParquetFile(files[0]).schema_arrow.names)
    con = connect(paths.tmp)
    try:
        row = con.execute(scan_floor_sql(files, [c for c in SCAN_COLUMNS if c in present])).fetchone()
        models = sorted((snapshot / "models").glob("*.parquet"))
        if models:
            con.execute("SELECT count(*), max(length(CAST(COLUMNS(*) AS VARCHAR))) "
                        f"FROM {read_parquet_sql(models)}").fetchall()
    finally:
        con.close()
    return int(row[0])


def label_floor_sql(interim: Path) -> str:
    """The image labels of every cleaned row computed and counted, nothing written: the same
    ``SELECT`` that ``label.label_images`` streams into the processed table."""
    from . import label, schema

    select = label.image_labels_of_file_sql(interim, label.load_lexicon())
    columns = ["is_nsfw_platform", "is_nsfw_r", "n_lora",
               *schema.MARKERS.values()]
    return f"SELECT count(*), {', '.join(f'count({c})' for c in columns)} FROM ({select})"


def reference_label_floor_sql(interim: Path) -> str:
    """:func:`label_floor_sql` with the reference markers: every prompt normalised by
    ``label.NORMALISE_STEPS``, then each category's whole-word pattern."""
    from . import label

    lexicon = label.load_lexicon()
    markers = ", ".join(f"count_if(regexp_matches(_norm, {sql_literal(label.category_regex(t))}))"
                        for t in lexicon.categories.values())
    return (f"SELECT count(*), count({label.adapter_calls_sql('prompt')}), {markers} FROM "
            f"(SELECT prompt, {label.normalised_text_sql('prompt')} AS _norm FROM {read_parquet_sql(interim)})")


def stage_label_floor_reference(paths: RunPaths, snapshot: Path) -> int:
    """The labelling floor of the reference markers (normalise, then match), counted."""
    from .db import connect

    con = connect(paths.tmp)
    try:
        sql = reference_label_floor_sql(paths.table("interim", "images"))
        return int(con.execute(sql).fetchall()[0][0])
    finally:
        con.close()


def stage_label_floor(paths: RunPaths, snapshot: Path) -> int:
    """The labelling floor: the regexes over every cleaned prompt, counted, no table written."""
    from .db import connect

    con = connect(paths.tmp)
    try:
        return int(con.execute(label_floor_sql(paths.table("interim", "images"))).fetchall()[0][0])
    finally:
        con.close()


def distinct_label_floor_sql(interim: Path) -> str:
    """The prompt labels of each distinct cleaned prompt, computed once and counted."""
    from . import label

    from . import schema

    lexicon = label.load_lexicon()
    distinct = f"(SELECT DISTINCT prompt FROM {read_parquet_sql(interim)} WHERE prompt IS NOT NULL)"
    select = label.prompt_labels_sql(distinct, lexicon)
    # every label counted, so that no pattern is optimised away
    counts = ", ".join(f"count_if({schema.marker_column(c)})" for c in lexicon.categories)
    return f"SELECT count(*), count(n_lora), {counts} FROM ({select})"


def stage_label_floor_distinct(paths: RunPaths, snapshot: Path) -> int:
    """The labelling floor with repeated prompts labelled once, counted, no table written."""
    from .db import connect

    con = connect(paths.tmp)
    try:
        con.execute(distinct_label_floor_sql(paths.table("interim", "images"))).fetchall()
        return _image_rows(paths, "interim")
    finally:
        con.close()


def stage_write_floor(paths: RunPaths, snapshot: Path) -> int:
    """The write floor: the snapshot's image columns read and written once as zstd Parquet by
    DuckDB's parallel ``COPY`` (then deleted), no parsing, no labels."""
    import pyarrow.parquet as pq

    from .db import connect

    files = image_files(snapshot)
    present = set(pq.ParquetFile(files[0]).schema_arrow.names)
    columns = ", ".join(sql_identifier(c) for c in SCAN_COLUMNS if c in present)
    dest = paths.tmp / "bench_write_floor.parquet"
    con = connect(paths.tmp)
    try:
        con.execute(f"COPY (SELECT {columns} FROM {read_parquet_sql(files)}) TO {sql_literal(dest)} "
                    f"(FORMAT parquet, COMPRESSION zstd)")
        return int(pq.ParquetFile(dest).metadata.num_rows)
    finally:
        con.close()
        dest.unlink(missing_ok=True)


def stage_naive_baseline(paths: RunPaths, snapshot: Path) -> int:
    """What a researcher writes first: one pandas frame, row-wise Python labels, monthly groupby."""
    import pandas as pd

    from . import label, schema

    lexicon = label.load_lexicon()
    df = pd.read_parquet(snapshot / "images")
    stats = df["statsSummary"].apply(lambda s: json.loads(s) if isinstance(s, str) else {})
    for key in ("likeCount", "heartCount", "laughCount", "cryCount", "commentCount"):
        df[key] = pd.to_numeric(stats.apply(lambda d: d.get(key)), errors="coerce")
    # Unparseable dates and levels become NaT / NaN (the snapshot carries a few bad rows).
    df["created_at"] = pd.to_datetime(df["createdAt"], utc=True, format="ISO8601", errors="coerce")
    df["month"] = df["created_at"].dt.strftime("%Y-%m")
    level = pd.to_numeric(df["browsingLevel"], errors="coerce")
    df["is_nsfw_platform"] = df["nsfw"].map({True: 1.0, False: 0.0})
    df["is_nsfw_r"] = level >= 4
    df["is_nsfw_x"] = level >= 8
    df["n_lora"] = df["positivePrompt"].apply(label.count_adapter_calls)
    markers = df.apply(lambda row: pd.Series(label.match_markers(row["positivePrompt"], lexicon)),
                       axis=1)
    df = pd.concat([df, markers.astype(float).add_prefix("mk_")], axis=1)
    monthly = df.groupby("month").agg(
        n_images=("id", "size"), nsfw_r=("is_nsfw_r", "mean"), nsfw_x=("is_nsfw_x", "mean"),
        nsfw_platform=("is_nsfw_platform", "mean"), lora=("n_lora", lambda s: (s > 0).mean()),
        likes=("likeCount", "mean"),
        **{f"mk_{c}": (f"mk_{c}", "mean") for c in schema.MARKER_CATEGORIES})
    monthly.to_csv(paths.tmp / "naive_monthly.csv")
    return len(df)


STAGE_FUNCTIONS: dict[str, Callable[[RunPaths, Path], int]] = {
    "acquire": stage_acquire,
    "clean": stage_clean,
    "label_images": stage_label_images,
    "label_models": stage_label_models,
    "link": stage_link,
    "analyse_images": stage_analyse_images,
    "analyse_models": stage_analyse_models,
    "figures": stage_figures,
    SCAN_FLOOR: stage_scan_floor,
    LABEL_FLOOR: stage_label_floor,
    LABEL_FLOOR_REFERENCE: stage_label_floor_reference,
    LABEL_FLOOR_DISTINCT: stage_label_floor_distinct,
    WRITE_FLOOR: stage_write_floor,
    NAIVE: stage_naive_baseline,
    SAME_RESULTS: stage_same_results_analyses,
    NOTEBOOK_START: stage_notebook_start,
    POLARS_PEER: stage_polars_peer,
    DUCKDB_PEER: stage_duckdb_peer,
}


def child_main(argv: list[str] | None = None) -> None:
    """Entry point of a child: ``<stage> <run_dir> <snapshot> <result.json>``."""
    stage, run_dir, snapshot, result = argv if argv is not None else sys.argv[1:5]
    paths = RunPaths(Path(run_dir)).ensure()
    written = bytes_written_so_far()
    start = time.perf_counter()
    rows = STAGE_FUNCTIONS[stage](paths, Path(snapshot))
    seconds = time.perf_counter() - start
    after = bytes_written_so_far()
    write_json_atomic({"rows": int(rows), "seconds": seconds,
                       "bytes_written": None if after is None or written is None else after - written},
                      Path(result))


def bytes_written_so_far() -> int | None:
    """Bytes this process (all its threads) has passed to ``write()``, from ``/proc/self/io``;
    None where the kernel does not report it."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- measuring (parent side)
class TreeMemoryPoller(threading.Thread):
    """Polls the summed RSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = POLL_SECONDS) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass  # exited or zombie between listing and reading
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def measure(stage: str, run_dir: Path, snapshot: Path) -> Measurement:
    """Run one stage in a fresh ``python -c`` child and measure it; raise if it fails."""
    result = run_dir / "data" / "tmp" / f"bench_result_{stage}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)
    code = "from helpers.bench import child_main; child_main()"
    args = [sys.executable, "-c", code, stage, str(run_dir), str(snapshot), str(result)]
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    poller = TreeMemoryPoller(proc.pid)
    poller.start()
    # Drain the output in a thread: a full pipe would block the child.
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child alone (and its reaped children)
    proc.returncode = os.waitstatus_to_exitcode(status)
    process_seconds = time.perf_counter() - start
    poller.stop()
    reader.join()
    proc.stdout.close()
    if proc.returncode != 0 or not result.exists():
        text = b"".join(output).decode("utf-8", "replace")[-3000:]
        raise RuntimeError(f"benchmark stage {stage} failed (exit {proc.returncode}):\n{text}")
    done = json.loads(result.read_text(encoding="utf-8"))
    # ru_maxrss is in KiB on Linux.
    kernel_mb = usage.ru_maxrss * 1024 / MB
    polled_mb = poller.peak_bytes / MB
    return Measurement(name=stage, rows=done["rows"], seconds=round(done["seconds"], 3),
                       process_seconds=round(process_seconds, 3),
                       peak_rss_mb=round(max(kernel_mb, polled_mb), 1),
                       peak_rss_kernel_mb=round(kernel_mb, 1), peak_rss_polled_mb=round(polled_mb, 1),
                       bytes_written=done.get("bytes_written"))


# --------------------------------------------------------------------------- report
def machine_description() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and the versions of the engines that do the work."""
    import duckdb
    import pandas as pd
    import psutil
    import pyarrow as pa

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1024 ** 3, 1),
            "cpu": cpu, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "duckdb": duckdb.__version__,
            "pyarrow": pa.__version__, "pandas": pd.__version__, "polars": _polars_version()}


def _polars_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polars")
    except PackageNotFoundError:
        return None


def summarise(rows: int, stages: list[Measurement], scan: Measurement,
              naive: Measurement | None, label_floor: Measurement | None = None,
              peers: dict[str, Measurement | None] | None = None,
              same_results: Measurement | None = None, snapshot_bytes: int | None = None,
              notebook_start: Measurement | None = None, notebooks: int = 0,
              label_reference: Measurement | None = None, label_distinct: Measurement | None = None,
              write_floor: Measurement | None = None) -> dict[str, Any]:
    """Totals of the pipeline and its ratios to the peers, the scan floor, the labelling floor
    and the naive baseline.

    The whole run is the stages' own seconds plus one notebook start per notebook (a fresh
    kernel importing the helpers), as ``python -m helpers run`` pays them; the peers are
    timed as whole processes (interpreter start and imports included).
    """
    peers = peers or {}
    seconds = sum(m.seconds for m in stages)
    start_seconds = notebook_start.process_seconds if notebook_start is not None else None
    process_seconds = sum(m.process_seconds for m in stages)
    whole = seconds + notebooks * start_seconds if start_seconds is not None else process_seconds
    peak = max(m.peak_rss_mb for m in stages)
    polars = peers.get(POLARS_PEER)
    duck = peers.get(DUCKDB_PEER)
    by_name = {m.name: m for m in stages}
    same = (sum(by_name[s].seconds for s in SAME_RESULTS_STAGES) + same_results.seconds
            if same_results is not None and all(s in by_name for s in SAME_RESULTS_STAGES) else None)
    written = [m.bytes_written for m in stages]
    bytes_written = sum(written) if written and None not in written else None
    out: dict[str, Any] = {
        "pipeline_seconds": round(seconds, 3),
        "pipeline_process_seconds": round(process_seconds, 3),
        "pipeline_whole_seconds": round(whole, 3),
        "notebook_start_seconds": start_seconds,
        "notebooks": notebooks if start_seconds is not None else None,
        "pipeline_rows_per_second": round(rows / seconds, 1) if seconds else None,
        "pipeline_peak_rss_mb": peak,
        "same_results_seconds": round(same, 3) if same is not None else None,
        "polars_peer_seconds": polars.seconds if polars else None,
        "polars_peer_process_seconds": polars.process_seconds if polars else None,
        "polars_peer_peak_rss_mb": polars.peak_rss_mb if polars else None,
        "duckdb_peer_seconds": duck.seconds if duck else None,
        "duckdb_peer_peak_rss_mb": duck.peak_rss_mb if duck else None,
        "pipeline_over_polars_peer": _ratio(whole, polars.process_seconds if polars else None),
        "same_results_over_polars_peer": _ratio(same, polars.seconds if polars else None),
        "pipeline_over_duckdb_peer": _ratio(whole, duck.process_seconds if duck else None),
        "same_results_over_duckdb_peer": _ratio(same, duck.seconds if duck else None),
        "snapshot_bytes": snapshot_bytes,
        "bytes_written": bytes_written,
        "bytes_written_over_snapshot": _ratio(bytes_written, snapshot_bytes),
        "scan_floor_seconds": scan.seconds,
        "pipeline_over_scan": _ratio(seconds, scan.seconds),
        "label_floor_seconds": label_floor.seconds if label_floor else None,
        "label_floor_over_scan": _ratio(label_floor.seconds if label_floor else None, scan.seconds),
        "pipeline_over_label_floor": _ratio(seconds, label_floor.seconds if label_floor else None),
        "label_floor_reference_seconds": label_reference.seconds if label_reference else None,
        "label_floor_reference_over_light":
            _ratio(label_reference.seconds if label_reference else None, label_floor.seconds if label_floor else None),
        "label_floor_distinct_seconds": label_distinct.seconds if label_distinct else None,
        "write_floor_seconds": write_floor.seconds if write_floor else None,
        # What any design that writes the cleaned table once and labels it has to spend at
        # least: the write floor plus the cheaper labelling floor (set against the peers).
        "write_and_label_floor_seconds": (round(write_floor.seconds + min(
            m.seconds for m in (label_floor, label_distinct) if m is not None), 3)
            if write_floor and (label_floor or label_distinct) else None),
        "naive_seconds": naive.seconds if naive else None,
        "naive_peak_rss_mb": naive.peak_rss_mb if naive else None,
        "naive_over_pipeline": _ratio(naive.seconds if naive else None, seconds),
        "peak_share_of_naive": round(peak / naive.peak_rss_mb, 3) if naive else None,
    }
    out["write_and_label_floor_over_polars_peer"] = _ratio(out["write_and_label_floor_seconds"],
                                                           polars.seconds if polars else None)
    out["targets"] = {
        "same_results_over_polars_peer<=1": _check(out["same_results_over_polars_peer"],
                                                   TARGET_SAME_RESULTS_OVER_POLARS, "<="),
        "pipeline_over_polars_peer<=4": _check(out["pipeline_over_polars_peer"], TARGET_PIPELINE_OVER_POLARS, "<="),
        "bytes_written_over_snapshot<=1.5": _check(out["bytes_written_over_snapshot"],
                                                   TARGET_BYTES_OVER_SNAPSHOT, "<="),
        "peak_rss<=1GB": _check(peak, TARGET_PEAK_MB, "<="),
        "naive_over_pipeline>=5": _check(out["naive_over_pipeline"], TARGET_NAIVE_OVER_PIPELINE, ">="),
        "peak_share_of_naive<=1/3": _check(out["peak_share_of_naive"], TARGET_PEAK_SHARE_OF_NAIVE, "<="),
    }
    return out


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


def _check(value: float | None, target: float, op: str) -> bool | None:
    if value is None:
        return None
    return bool(value <= target) if op == "<=" else bool(value >= target)


def markdown_table(result: dict[str, Any]) -> str:
    """The per-stage table with the peers beside the pipeline, and the ratios, as Markdown."""
    rows = result["rows"]
    lines = [f"### {rows:,} image rows, {result['models']:,} models", "",
             "| stage | seconds | rows/s | peak RSS (MB) | process s | MB written |",
             "|---|---:|---:|---:|---:|---:|"]

    def row(m: dict[str, Any], bold: bool = False) -> str:
        b = "**" if bold else ""
        written = "" if m.get("bytes_written") is None else f"{m['bytes_written'] / MB:,.0f}"
        return (f"| {b}{m['name']}{b} | {m['seconds']:.1f} | {m['rows_per_second']:,.0f} | "
                f"{m['peak_rss_mb']:,.0f} | {m['process_seconds']:.1f} | {written} |")

    for m in result["stages"]:
        lines.append(row(m))
    s = result["summary"]
    written = "" if s.get("bytes_written") is None else f"**{s['bytes_written'] / MB:,.0f}**"
    lines.append(f"| **pipeline (sum of stages)** | **{s['pipeline_seconds']:.1f}** | "
                 f"**{s['pipeline_rows_per_second']:,.0f}** | **{s['pipeline_peak_rss_mb']:,.0f}** | "
                 f"{s['pipeline_process_seconds']:.1f} | {written} |")
    if s.get("notebook_start_seconds") is not None:
        lines.append(f"| **whole run (stages + {s['notebooks']} notebook starts)** | "
                     f"**{s['pipeline_whole_seconds']:.1f}** | | | | |")
    if s.get("same_results_seconds") is not None:
        lines.append(f"| same results (acquire + clean + label_images + {SAME_RESULTS}) | "
                     f"{s['same_results_seconds']:.1f} | | | | |")
    for key in (SAME_RESULTS, POLARS_PEER, DUCKDB_PEER, NOTEBOOK_START, SCAN_FLOOR, LABEL_FLOOR,
                LABEL_FLOOR_REFERENCE, LABEL_FLOOR_DISTINCT, WRITE_FLOOR, NAIVE):
        if result.get(key):
            lines.append(row(result[key]))
    lines.append("")
    peers = result.get("peers") or {}
    for peer in (POLARS_PEER, DUCKDB_PEER):
        info = peers.get(peer)
        if info is None:
            continue
        if info.get("skipped"):
            lines.append(f"- {peer}: skipped ({info['skipped']})")
        else:
            lines.append(f"- {peer}: results {'equal to' if info['equal'] else 'DIFFERENT from'} the pipeline's"
                         + ("" if info["equal"] else f" ({'; '.join(info['differences'])})"))
    if s.get("same_results_over_polars_peer") is not None:
        lines += [f"- same results / polars peer: {s['same_results_over_polars_peer']} "
                  f"(target ≤ {TARGET_SAME_RESULTS_OVER_POLARS:g})",
                  f"- whole pipeline (stages + {s.get('notebooks')} notebook starts of "
                  f"{s.get('notebook_start_seconds')} s) / polars peer: "
                  f"{s['pipeline_over_polars_peer']} (target ≤ {TARGET_PIPELINE_OVER_POLARS:g})"]
    if s.get("same_results_over_duckdb_peer") is not None:
        lines.append(f"- same results / DuckDB peer: {s['same_results_over_duckdb_peer']}; whole pipeline / "
                     f"DuckDB peer: {s['pipeline_over_duckdb_peer']}")
    if s.get("write_and_label_floor_over_polars_peer") is not None:
        lines.append(f"- write floor + cheaper labelling floor / polars peer: "
                     f"{s['write_and_label_floor_over_polars_peer']} (the least a design that writes the "
                     f"cleaned table once and labels its prompts spends, against the peer that writes nothing)")
    if s.get("bytes_written_over_snapshot") is not None:
        lines.append(f"- bytes written by the pipeline / snapshot bytes: {s['bytes_written_over_snapshot']} "
                     f"(target ≤ {TARGET_BYTES_OVER_SNAPSHOT:g})")
    lines.append(f"- pipeline / scan floor: {s['pipeline_over_scan']}")
    if s.get("label_floor_seconds") is not None:
        lines += [f"- labelling floor / scan floor: {s['label_floor_over_scan']} (computing the prompt "
                  f"labels alone, nothing written); pipeline / labelling floor: {s['pipeline_over_label_floor']}"]
    if s.get("label_floor_reference_over_light") is not None:
        lines.append(f"- reference labelling (normalise, then match) / labelling floor: "
                     f"{s['label_floor_reference_over_light']} (same labels, same rows)")
    if s["naive_seconds"] is not None:
        lines += [f"- naive / pipeline time: {s['naive_over_pipeline']} (target ≥ {TARGET_NAIVE_OVER_PIPELINE:g})",
                  f"- pipeline peak / naive peak: {s['peak_share_of_naive']} (target ≤ 0.333)"]
    lines.append(f"- pipeline peak RSS: {s['pipeline_peak_rss_mb']:,.0f} MB (target ≤ {TARGET_PEAK_MB:,} MB)")
    sample = result.get("term_sample_percent")
    lines.append(f"- prompt terms tokenised: {'all prompts' if sample is None else f'{sample:g}% hash sample'} "
                 f"(as params/full.yaml)")
    m = result["machine"]
    load = result.get("load_average")
    if load:
        lines.append(f"- load average (1, 5, 15 min) at start: {load['start']}, at end: {load['end']}")
    lines += ["", f"Machine: {m['cores']} cores, {m['memory_gb']} GB, {m['cpu']}; Python {m['python']}, "
              f"DuckDB {m['duckdb']}, pyarrow {m['pyarrow']}, pandas {m['pandas']}"
              + (f", polars {m['polars']}" if m.get("polars") else "") + "."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- scaling
def extrapolate(results: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """Predict seconds and peak memory at ``rows`` from results at several sizes.

    Time: per stage, a least-squares line ``seconds = a + b·rows`` through the measured sizes
    (the stages are single passes, so cost is linear); the prediction is the sum over stages.
    Memory: per stage, the peak at the largest measured size plus its growth per added row
    between the two largest sizes (a straight line, which overestimates a peak that has
    levelled off); the prediction is the largest stage. Per stage, because a stage whose
    memory grows (model labelling holds the models table) can overtake one that is bounded.
    """
    import numpy as np

    ordered = sorted(results, key=lambda r: r["rows"])
    if len(ordered) < 2:
        raise ValueError("extrapolation needs results at two or more sizes")
    sizes = np.array([r["rows"] for r in ordered], dtype=float)
    per_stage: dict[str, float] = {}
    peak_per_stage: dict[str, float] = {}
    measured = [{m["name"]: m for m in r["stages"]} for r in ordered]
    for stage in STAGES:
        if any(stage not in m for m in measured):
            continue  # a stage the older result files did not measure
        secs = np.array([m[stage]["seconds"] for m in measured], dtype=float)
        slope, intercept = np.polyfit(sizes, secs, 1)
        per_stage[stage] = round(float(max(intercept + slope * rows, secs.max())), 1)
        last, before = measured[-1][stage]["peak_rss_mb"], measured[-2][stage]["peak_rss_mb"]
        growth = max(0.0, (last - before) / (sizes[-1] - sizes[-2]))
        peak_per_stage[stage] = round(float(last + growth * (rows - sizes[-1])), 1)
    return {"rows": rows, "from_sizes": [int(s) for s in sizes], "stage_seconds": per_stage,
            "pipeline_seconds": round(sum(per_stage.values()), 1), "stage_peak_rss_mb": peak_per_stage,
            "pipeline_peak_rss_mb": max(peak_per_stage.values())}


# --------------------------------------------------------------------------- entry point
def snapshot_bytes(snapshot: Path) -> int:
    """Size on disk of the snapshot's data files (images and models)."""
    return sum(p.stat().st_size for p in snapshot.rglob("*.parquet"))


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _report(m: Measurement) -> None:
    print(f"  {m.name:22} {m.seconds:8.1f} s  {m.peak_rss_mb:8.0f} MB", flush=True)


def main(rows: int, baseline: bool, out: Path, data_dir: Path | None = None,
         keep_run: bool = False, peers: bool = True) -> int:
    """Benchmark the pipeline at ``rows`` image rows beside its peers; write ``out/<rows>.json`` and ``.md``."""
    from .bench_peers import polars_available

    folder = data_folder(rows, data_dir)
    snapshot = folder / "snapshot"
    run_dir = folder / "run"
    start = time.perf_counter()
    generated = ensure_snapshot(snapshot, rows)
    synth_seconds = time.perf_counter() - start
    print(f"snapshot: {rows:,} image rows ({'generated in %.0f s' % synth_seconds if generated else 'reused'})",
          flush=True)
    load_start = _load()
    stages: list[Measurement] = []
    for stage in STAGES:
        stages.append(measure(stage, run_dir, snapshot))
        _report(stages[-1])
    extra: dict[str, Measurement | None] = {}
    for name in (SAME_RESULTS, NOTEBOOK_START, SCAN_FLOOR, LABEL_FLOOR, LABEL_FLOOR_REFERENCE,
                 LABEL_FLOOR_DISTINCT, WRITE_FLOOR):
        extra[name] = measure(name, run_dir, snapshot)
        _report(extra[name])
    peer_info: dict[str, dict[str, Any]] = {}
    for peer in (POLARS_PEER, DUCKDB_PEER):
        if not peers:
            extra[peer] = None
            continue
        if peer == POLARS_PEER and not polars_available():
            print("  polars is not installed: the polars peer is skipped "
                  "(pip install -c requirements/lock.txt -e '.[bench]')", flush=True)
            extra[peer] = None
            peer_info[peer] = {"skipped": "polars is not installed"}
            continue
        extra[peer] = measure(peer, run_dir, snapshot)
        _report(extra[peer])
    naive = measure(NAIVE, run_dir, snapshot) if baseline else None
    if naive:
        _report(naive)
    load_end = _load()
    for peer in (POLARS_PEER, DUCKDB_PEER):
        if extra.get(peer) is not None:
            differences = peer_differences(RunPaths(run_dir), peer)
            peer_info[peer] = {"equal": not differences, "differences": differences}
            print(f"  {peer}: results {'equal to' if not differences else 'DIFFERENT from'} the pipeline's",
                  flush=True)
    peer_measurements = {p: extra.get(p) for p in (POLARS_PEER, DUCKDB_PEER)}
    result: dict[str, Any] = {
        "rows": rows, "models": default_models(rows), "seed": SEED,
        "term_sample_percent": full_profile_term_sample_percent(), "machine": machine_description(),
        "load_average": {"start": load_start, "end": load_end},
        "stages": [m.as_dict() for m in stages],
        **{name: (m.as_dict() if m is not None else None) for name, m in extra.items()},
        NAIVE: naive.as_dict() if naive else None,
        "peers": peer_info,
        "summary": summarise(rows, stages, extra[SCAN_FLOOR], naive, extra[LABEL_FLOOR],
                             peers=peer_measurements, same_results=extra[SAME_RESULTS],
                             snapshot_bytes=snapshot_bytes(snapshot),
                             notebook_start=extra[NOTEBOOK_START], notebooks=notebook_count(),
                             label_reference=extra[LABEL_FLOOR_REFERENCE],
                             label_distinct=extra[LABEL_FLOOR_DISTINCT], write_floor=extra[WRITE_FLOOR]),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result, out / f"{rows}.json")
    table = markdown_table(result)
    write_text_atomic(table, out / f"{rows}.md")
    print(table)
    if not keep_run:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)  # the run's tables are as large as the snapshot
    return 0 if all(info.get("equal", True) for info in peer_info.values()) else 1


# The report texts (comparison table, README paragraphs) live in their own module.
from .bench_report import (benchmark_readme_results, committed_results, comparison_table,  # noqa: E402
                           readme_scale_paragraph,
                           update_readmes)
