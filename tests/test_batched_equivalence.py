"""Batched / out-of-core code paths give exactly the results of whole-frame paths on small data.

The full snapshot is streamed (Arrow batches, DuckDB spilling to disk under a memory limit);
these tests check that streaming changes nothing: tiny batches vs one batch in the images
adapter, a tiny DuckDB memory limit vs the default in cleaning and labelling, the SQL labels vs
the pure-pandas label function, and SQL aggregates vs a pandas ``groupby`` of the whole frame.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers import analyse, clean, db, label, schema, sources, synth
from helpers.paths import RunPaths

N_IMAGES = 2_500
N_MODELS = 200


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("snapshot")
    synth.write_snapshot(folder, synth.default_params(n_images=N_IMAGES, n_models=N_MODELS, seed=11))
    return folder


def _run(tmp_path: Path, name: str) -> RunPaths:
    return RunPaths(tmp_path / name).ensure()


def _image_files(snapshot: Path) -> list[Path]:
    return sorted((snapshot / "images").glob("*.parquet"))


def _raw_images(snapshot: Path, paths: RunPaths, batch_size: int) -> pd.DataFrame:
    readers = [sources.file_reader(f, batch_size) for f in _image_files(snapshot)]
    reader = readers[0] if len(readers) == 1 else sources.concat_readers(readers)
    dest = paths.table("raw", "images")
    n = sources.write_raw_images(reader, dest, salt="s", where="test", paths=paths)
    assert n == sum(pq.ParquetFile(f).metadata.num_rows for f in _image_files(snapshot)) >= N_IMAGES
    return pq.read_table(dest).to_pandas()


def _assert_same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        left = a[col].astype(object).where(a[col].notna(), None).map(_plain).tolist()
        right = b[col].astype(object).where(b[col].notna(), None).map(_plain).tolist()
        assert left == right, col


def _plain(value):
    """Lists (numpy arrays after to_pandas) as tuples, so rows compare by value."""
    if value is None:
        return None
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return tuple(value.tolist()) if hasattr(value, "__len__") else value.tolist()
    return value


def test_image_adapter_batch_of_7_equals_one_batch(snapshot, tmp_path):
    small = _raw_images(snapshot, _run(tmp_path, "b7"), batch_size=7)
    whole = _raw_images(snapshot, _run(tmp_path, "b100k"), batch_size=100_000)
    _assert_same_frame(small, whole)  # same rows in the same order


def test_acquire_local_equals_a_tiny_batch_adapter(snapshot, tmp_path):
    paths = _run(tmp_path, "local")
    sources.acquire_local(snapshot, paths, salt="s")
    small = _raw_images(snapshot, _run(tmp_path, "b7"), batch_size=7)
    _assert_same_frame(db.read_table(paths.table("raw", "images")).to_pandas(), small)


@pytest.fixture(scope="module")
def cleaned_pair(snapshot, tmp_path_factory) -> tuple[RunPaths, RunPaths, dict, dict]:
    """The same raw tables cleaned with a tiny memory limit (forces spilling) and the default."""
    out = []
    for name, limit in (("tight", "64MB"), ("default", "3GB")):
        paths = RunPaths(tmp_path_factory.mktemp(name)).ensure()
        sources.acquire_local(snapshot, paths, salt="s")
        out.append((paths, clean.clean_all(paths, memory_limit=limit)))
    (tight, tight_report), (default, default_report) = out
    return tight, default, tight_report, default_report


def test_cleaning_with_small_memory_limit_equals_default(cleaned_pair):
    tight, default, tight_report, default_report = cleaned_pair
    assert tight_report == default_report
    for table in schema.CANONICAL:
        a = pq.read_table(tight.table("interim", table))
        b = pq.read_table(default.table("interim", table))
        assert a.equals(b), table
        assert pq.read_table(tight.quarantined(table)).equals(pq.read_table(default.quarantined(table)))


def test_labelling_with_small_memory_limit_equals_default(cleaned_pair):
    tight, default, _, _ = cleaned_pair
    counts_tight = label.label_images(tight, memory_limit="64MB")
    counts_default = label.label_images(default)
    assert counts_tight == counts_default
    assert db.read_table(tight.table("processed", "images")).equals(
        db.read_table(default.table("processed", "images")))


def test_sql_labels_equal_the_whole_frame_label_function(cleaned_pair):
    _, default, _, _ = cleaned_pair
    label.label_images(default)
    sql = db.read_table(default.table("processed", "images")).to_pandas()
    interim = pq.read_table(default.table("interim", "images")).to_pandas()
    frame = label.label_image_frame(interim)
    assert len(sql) == len(frame) == len(interim)
    for col in frame.columns:
        got = sql[col].astype(object).where(sql[col].notna(), None).tolist()
        want = frame[col].astype(object).where(frame[col].notna(), None).tolist()
        assert got == want, col


def test_sql_aggregates_equal_a_pandas_groupby_of_the_whole_frame(cleaned_pair):
    _, default, _, _ = cleaned_pair
    label.label_images(default)
    images = default.table("processed", "images")
    frame = db.read_table(images).to_pandas()
    frame["month"] = frame["created_at"].dt.strftime("%Y-%m")
    monthly = analyse.nsfw_share_by_month(images)
    r = monthly[monthly["definition"] == "r"].set_index("month")
    expected = frame.groupby("month").agg(n_images=("image_id", "size"),
                                          k=("is_nsfw_r", "sum"))
    assert r["n_images"].tolist() == expected["n_images"].tolist()
    assert r["k"].tolist() == expected["k"].astype(int).tolist()
    markers = analyse.markers_by_month(images).set_index(["marker", "month"])
    with_prompt = frame[frame["prompt"].notna()]
    for marker, col in analyse.MARKERS.items():
        want = with_prompt.groupby("month")[col].sum().astype(int)
        got = markers.loc[marker, "k"]
        assert got.tolist() == want.tolist(), marker


def _clean_streamed_and_sorted(snapshot: Path, tmp_path: Path, monkeypatch):
    """Clean ``snapshot`` twice, trusting file order and forcing the sort; assert equal
    reports and tables (with some exact duplicates found); return the interim images."""
    outputs = []
    for name, trust in (("filtered", True), ("sorted", False)):
        paths = _run(tmp_path, name)
        sources.acquire_local(snapshot, paths, salt="s")
        report = clean.clean_all(paths, trust_file_order=trust)  # False forces GROUP BY and sort
        outputs.append((report, pq.read_table(paths.table("interim", "images")),
                        pq.read_table(paths.quarantined("images"))))
    (report_a, interim_a, quarantine_a), (report_b, interim_b, quarantine_b) = outputs
    assert report_a == report_b
    assert report_a["tables"]["images"]["quarantine_reasons"].get("duplicate_id_exact", 0) > 0
    assert interim_a.equals(interim_b) and quarantine_a.equals(quarantine_b)
    return interim_a


def test_cleaning_without_the_sort_equals_the_sorted_path(snapshot, tmp_path, monkeypatch):
    """Kept rows written in file order (no sort) are the rows ``ORDER BY id`` gives."""
    _clean_streamed_and_sorted(snapshot, tmp_path, monkeypatch)


def test_streamed_parquet_reads_back_like_a_duckdb_copy(tmp_path):
    """The streaming writer's file has the schema DuckDB's own COPY gives (list<element>, UTC)."""
    con = db.connect()
    sql = ("SELECT range AS n, 'x' || range AS s, [CAST(range AS VARCHAR)] AS l, "
           "TIMESTAMPTZ '2023-01-01 00:00:00+00' + INTERVAL (range) SECOND AS t, "
           "CAST(range AS SMALLINT) AS small FROM range(2500)")
    rows = db.stream_query_to_parquet(con, sql, tmp_path / "streamed.parquet", batch_rows=1000)
    con.execute(f"COPY ({sql}) TO '{(tmp_path / 'copied.parquet').as_posix()}' (FORMAT parquet)")
    streamed, copied = pq.read_table(tmp_path / "streamed.parquet"), pq.read_table(tmp_path / "copied.parquet")
    assert rows == 2500 and streamed.column_names == copied.column_names
    assert [f.type for f in streamed.schema] == [f.type for f in copied.schema]  # nullability may differ
    assert streamed.to_pylist() == copied.to_pylist()


def test_streamed_parquet_transform_drops_rows_and_keeps_order(tmp_path):
    import pyarrow as pa

    con = db.connect()
    drop = pa.array([3, 1500, 2499], type=pa.int64())
    db.stream_query_to_parquet(con, "SELECT range AS v, range AS _row FROM range(2500)",
                                    tmp_path / "kept.parquet", batch_rows=700,
                                    transform=clean.without_rows(drop))
    kept = pq.read_table(tmp_path / "kept.parquet")
    assert kept.column_names == ["v"]
    assert kept.column("v").to_pylist() == [i for i in range(2500) if i not in {3, 1500, 2499}]


def test_streamed_parquet_failure_leaves_no_file(tmp_path):
    import duckdb

    con = db.connect()
    dest = tmp_path / "out.parquet"
    with pytest.raises(duckdb.Error):
        db.stream_query_to_parquet(con, "SELECT CAST('x' || range AS INTEGER) AS bad FROM range(10)", dest)
    assert list(tmp_path.iterdir()) == []


def test_out_of_order_ids_carry_the_running_maximum_across_batches():
    con = db.connect()
    keys = ("(SELECT * FROM (VALUES (0, 5, NULL), (1, 7, NULL), (2, 6, NULL), (3, 9, 'invalid_id'), "
            "(4, 8, NULL), (5, 7, NULL), (6, 10, NULL), (7, 10, NULL), (8, 11, NULL)) "
            "t(_row, p_id, pre_reason))")
    # 6 and 7 are below the 7 and 8 before them (7 in the previous batch), 10 repeats 10;
    # the 9 of a row with a problem does not count.
    for batch_rows in (1, 2, 3, 100):
        late = clean.out_of_order_ids(con, keys, batch_rows=batch_rows)
        assert late.to_pylist() == [6, 7, 10], batch_rows
    assert clean.out_of_order_ids(con, keys, max_rows=2, batch_rows=2) is None
    assert con.execute("SELECT 1").fetchall() == [(1,)]  # the abandoned result was released


@pytest.mark.parametrize("max_out_of_order", [10_000, 5])
def test_cleaning_a_shuffled_snapshot_equals_the_sorted_path(snapshot, tmp_path, monkeypatch,
                                                             max_out_of_order):
    """Rows out of id order (first copies too) are sorted, with duplicates found among the
    listed out-of-order ids (limit 10,000) or, above the limit (5), by a GROUP BY over every id."""
    import pyarrow as pa
    import numpy as np

    shuffled = tmp_path / "shuffled"
    (shuffled / "images").mkdir(parents=True)
    (shuffled / "models").mkdir()
    images = pa.concat_tables([pq.read_table(f) for f in _image_files(snapshot)])
    order = np.random.default_rng(3).permutation(images.num_rows)
    pq.write_table(images.take(order), shuffled / "images" / "part-0.parquet")
    for f in (snapshot / "models").glob("*.parquet"):
        pq.write_table(pq.read_table(f), shuffled / "models" / f.name)
    monkeypatch.setattr(clean, "MAX_OUT_OF_ORDER_ROWS", max_out_of_order)
    ids = _clean_streamed_and_sorted(shuffled, tmp_path, monkeypatch).column("image_id").to_pylist()
    assert ids == sorted(set(ids))


@pytest.mark.parametrize("prefetch", [0, 2])
def test_split_stream_feeds_each_file_in_order(tmp_path, prefetch):
    """One pass, two files: each gets its rows in query order, batch after batch."""
    import pyarrow.compute as pc

    con = db.connect()

    def split(batch):
        even = pc.equal(pc.bit_wise_and(batch.column("v"), 1), 0)
        return [batch.filter(even).select(["v"]), batch.filter(pc.invert(even))]

    rows = db.stream_query_split_to_parquet(
        con, "SELECT range AS v, 'x' || range AS s FROM range(2500)",
        [tmp_path / "even.parquet", tmp_path / "odd.parquet"], split, batch_rows=300,
        prefetch=prefetch)
    assert rows == [1250, 1250]
    assert pq.read_table(tmp_path / "even.parquet").column("v").to_pylist() == list(range(0, 2500, 2))
    odd = pq.read_table(tmp_path / "odd.parquet")
    assert odd.column_names == ["v", "s"] and odd.column("v").to_pylist() == list(range(1, 2500, 2))


@pytest.mark.parametrize("prefetch", [0, 2])
def test_split_stream_failure_leaves_no_file_and_frees_the_connection(tmp_path, prefetch):
    """A split that raises midway (as the sorted path's order check does) leaves neither file."""
    con = db.connect()
    seen = []

    def split(batch):
        seen.append(batch.num_rows)
        if len(seen) == 3:
            raise RuntimeError("stop here")
        return [batch, batch]

    with pytest.raises(RuntimeError, match="stop here"):
        db.stream_query_split_to_parquet(con, "SELECT range AS v FROM range(100000)",
                                         [tmp_path / "a.parquet", tmp_path / "b.parquet"], split,
                                         batch_rows=1000, prefetch=prefetch)
    assert list(tmp_path.iterdir()) == []
    assert con.execute("SELECT 1").fetchall() == [(1,)]
    with pytest.raises(Exception):  # a failing query is raised in the caller, not lost in the thread
        db.stream_query_split_to_parquet(con, "SELECT CAST('x' || range AS INTEGER) AS bad FROM range(10)",
                                         [tmp_path / "c.parquet"], lambda b: [b], prefetch=prefetch)
    assert list(tmp_path.iterdir()) == []


def test_rows_out_of_file_order_fall_back_to_the_sorted_path(snapshot, tmp_path, monkeypatch):
    """If the one wide pass ever saw rows out of file order, cleaning falls back to the sort
    path and its results are those of an undisturbed run."""
    import pyarrow as pa

    reference = _run(tmp_path, "reference")
    sources.acquire_local(snapshot, reference, salt="s")
    expected = clean.clean_all(reference)
    splitter = clean.one_pass_splitter

    def disordered(*args, **kwargs):
        split = splitter(*args, **kwargs)

        def reversed_split(batch):
            return split(batch.take(pa.array(range(batch.num_rows - 1, -1, -1), pa.int64())))
        return reversed_split

    monkeypatch.setattr(clean, "one_pass_splitter", disordered)
    fallback = _run(tmp_path, "fallback")
    sources.acquire_local(snapshot, fallback, salt="s")
    assert clean.clean_all(fallback) == expected
    for table in ("images", "models"):
        assert db.read_table(fallback.table("interim", table)).equals(
            db.read_table(reference.table("interim", table)))
        assert db.read_table(fallback.quarantined(table)).equals(db.read_table(reference.quarantined(table)))
