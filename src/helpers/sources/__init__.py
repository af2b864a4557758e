"""Source adapters: every input ends in the raw canonical tables ``data/raw/{images,models}.parquet``.

Four sources, one contract (:mod:`.contract`, applied by :func:`acquire` to every source):

``sample``  the embedded synthetic snapshot (:mod:`helpers.synth`), written in the Hub's raw
            column format and then read by the ``local`` adapter, so the real path runs.
``hf``      ``datasets.load_dataset`` of the ``pm-paper-datasets`` repositories, revision pinned,
            resolved commit recorded; Arrow-backed, read in batches.
``local``   a folder or file of Parquet, CSV or JSON Lines in the Hub's column format.
``api``     raw JSON / JSON Lines (optionally gzipped) as CivitAI's REST API returns them.

Images can be tens of millions of rows, so they are never held in Python objects: each
adapter exposes an Arrow ``RecordBatchReader`` and one SQL query maps its columns to the raw
canonical names (:func:`image_select_sql`), streamed into Parquet. Models (hundreds of thousands
at most) are flattened record by record (:func:`flatten_model`). Column aliases and encodings
come from :mod:`helpers.schema`; this package is the only code that touches the network.
"""
from .api import acquire_api
from .common import (DATA_SUFFIXES, DEFAULT_REVISION, HUB_IMAGES, HUB_IMAGES_SAMPLE, HUB_MODELS,
                     IMAGE_BATCH, MODEL_BATCH, SALT_ENV, SOURCES, AcquireResult, SourceError,
                     classify_file, file_format, hash_username,
                     iter_json_records, list_data_files, open_text, strip_html, username_salt)
from .contract import (REQUIRED_RAW, acquire, acquire_summary, enforce_contract, raw_coverage,
                       run_adapter, salt_advice)
from .hf import HF_HELP, acquire_hf, hf_dataset_reader, resolve_hub_revision
from .local import acquire_local
from .raw import iter_file_records
from .raw import (concat_readers, file_reader, flatten_api_image, flatten_model,
                  image_select_sql, missing_image_columns, model_images, write_raw_images,
                  write_raw_models)
from .sample import acquire_sample

__all__ = [
    "DATA_SUFFIXES", "DEFAULT_REVISION", "HF_HELP", "HUB_IMAGES", "HUB_IMAGES_SAMPLE", "HUB_MODELS",
    "IMAGE_BATCH", "MODEL_BATCH", "concat_readers", "file_reader", "REQUIRED_RAW", "SALT_ENV", "SOURCES", "AcquireResult",
    "SourceError", "acquire", "acquire_api", "acquire_hf", "acquire_local", "acquire_sample",
    "acquire_summary", "classify_file", "enforce_contract", "file_format", "flatten_api_image",
    "flatten_model", "hash_username", "hf_dataset_reader", "image_select_sql", "iter_file_records",
    "iter_json_records", "list_data_files", "missing_image_columns", "model_images", "open_text",
    "raw_coverage", "resolve_hub_revision", "run_adapter", "salt_advice", "strip_html", "username_salt",
    "write_raw_images", "write_raw_models",
]
