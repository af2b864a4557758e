"""The embedded synthetic snapshot: seeded CivitAI-like images and models in the Hub's raw format.

The default source of the pipeline is this generator. It writes what a Hub snapshot looks like
*before* the adapter (:mod:`helpers.sources`) maps it, so the real path runs on it: camelCase
columns, ``browsingLevel`` bits, the platform's boolean ``nsfw`` flag, reaction counts as JSON
text in ``statsSummary``, and models in the nested shape of CivitAI's ``/api/v1/models``.

Layout written by :func:`write_snapshot`::

    out_dir/images/part-00000.parquet, part-00001.parquet, ...   (``chunk_rows`` rows each)
    out_dir/models/part-00000.parquet

Every planted quantity is a field of :class:`SynthParams` (the one place for parameters), and
:func:`expected_truth` returns the values the generated data must reproduce, for tests and for
the narrative ("the pipeline recovers what was planted"). The package's modules follow the
generation: ``params`` → ``plan`` → ``people`` (users) → ``vocabulary``/``text`` →
``models``/``images``/``messy`` → ``write`` (snapshot files) and ``truth`` (the planted truth);
word lists live in ``resources/synth_vocabulary.json``.

Design choices, and why:

* **Streaming.** Images are generated and written chunk by chunk; only per-month tables, a
  pool of prompts and a pool of hashed users live across chunks, so memory does not grow
  with ``n_images``.
* **Vectorised.** No Python loop per image row: prompts are drawn from a seeded pool of
  distinct prompts per (level, base model) class with ``pyarrow.compute.take``; LoRA calls
  are appended with one element-wise join; dates, URLs and hashes are formatted by writing
  ASCII bytes into fixed-width numpy buffers.
* **Deterministic.** Chunk ``k`` draws from ``SeedSequence(seed, spawn_key=(IMAGES, k))``;
  row positions, months, timestamps and ids are functions of the global row index, so the
  same parameters give byte-identical files.
* **Realistically messy.** ``messy_rows`` bad image rows (and ``messy_model_rows`` bad model
  rows) are appended after the good rows of the last part file: unparseable or out-of-window
  dates, unknown level bits, negative or non-numeric likes, empty prompts, exact and
  conflicting duplicates, missing ids… Each kind is named exactly as :mod:`helpers.clean`
  reports it, kinds are dealt out in turn, and :func:`expected_truth` gives the planted count
  per reason, so the cleaning report can be checked to the row. ``n_images`` / ``n_models``
  stay the counts of *good* rows.
* **Users matter.** Images come from users who join month by month, each with an NSFW and an
  adapter propensity (a random effect, plus a cohort effect: later users are more NSFW-prone), so
  the rise is part within users and part who posts, NSFW-prone users call adapters more, and a
  few heavy users move a snapshot's shares: naive intervals are too narrow. Planted shares hold
  in expectation over users; odds ratios named by a parameter hold within a user and month.
  Truths that depend on who actually posted are replayed from the users' stream
  (:func:`shift_share_truth`, :func:`user_month_truth`).
* **Ethical.** Real-person models carry fictional names (a common or invented given name and
  an invented surname); no content involving minors is generated (no minor-coded terms at all).

Known simplifications: a LoRA call may name a model of another base model than the image's;
a model's ``nsfwLevel`` is drawn for the model, not derived from the images that use it; a
model used in month ``m`` may have been created later in that same month.
"""
# The package's public names, importable as ``helpers.synth.NAME``.
from .params import (ADAPTER_KINDS, AUTO_MESSY, CIVIVERSE_NSFW_SHARE, DEFAULT_END, DEFAULT_START, GENDERS, IMAGES_PER_MESSY_ROW, IMAGES_SCHEMA, IMAGE_ID_BASE, IMAGE_ID_STRIDE,
    LORA_CALLABLE_TYPES, MODELS_PER_MESSY_ROW, MODELS_SCHEMA, MODEL_ID_BASE, MODEL_STATS_TYPE,
    MODEL_VERSION_TYPE, MS_PER_DAY, NSFW_LEVELS, NSFW_PATH_END, NSFW_PATH_START, PERSON_TYPES,
    PROMPT_LEVELS, SFW_LEVELS, STREAM_CREATORS, STREAM_IMAGE_DRAWS, STREAM_IMAGES, STREAM_LINK,
    STREAM_MESSY, STREAM_MODELS, STREAM_POOLS, STREAM_USER_TRAITS, STREAM_USERS, SynthParams, URL_PREFIX, URL_SUFFIX, VERSION_ID_BASE, default_params,
    interpolate_anchors, linear_share_path, lora_share_path, month_bounds_ms, month_range,
    nsfw_share_path, validate_params)
from .plan import (SnapshotPlan, UserGrid, WeightedPool, active_base_models, allocate_counts,
    base_model_weights, calibrate_users, cohort_mix, cohort_sizes, cohort_years, growth_weights,
    interpolate_mix, make_plan, n_forced_models, n_forced_person_models, n_users, normal_quadrature,
    real_person_adapter_share, sample_rows, seeded_python_random, seeded_rng, solve_increasing,
    split_by_odds_ratio, user_nsfw_share)
from .text import (fake_image_urls, fixed_width_strings, hex_bytes, iso_utc_ms, sample_zipf,
    user_hash_pool, zipf_cdf)
from .vocabulary import (BOORU_FEMALE, BOORU_MALE, BOORU_SOLO, CLOTHING, EMPTY_NEGATIVE_SHARE,
    EXPLICIT_X, EXPLICIT_XXX, FEMALE_SUBJECT_P, MATURE, ModelText, NEGATIVE, NEGATIVE_PONY,
    NEGATIVE_SFW, PG_PERSON_P, PONY_BASE, PONY_RATING, PONY_SCORES, PONY_SOURCES, PromptPools,
    QUALITY, REALISTIC, SCENES, SENTENCE_DETAILS, SENTENCE_SUBJECTS, SETTING, STYLE, SUGGESTIVE,
    WORDS, adapter_model_text, base_suffix, build_prompt_pools, checkpoint_text, compose_negative,
    compose_prompt, fictional_person_name, load_vocabulary, person_model_text,
    prompt_pool_per_class, slugify)
from .models import (ModelCatalog, ModelDraws, build_models, draw_models, lora_call_suffix,
    model_text, model_versions, models_table, real_person_creator_pool, real_person_creators,
    version_dates)
from .people import (ImageDraws, Population, build_population, chunk_bounds, image_draws, row_months,
    shift_share_parts, shift_share_truth, user_month_truth)
from .images import (ImageContext, decimal_strings, image_chunk)
from .messy import (AFTER_WINDOW_CREATED_AT, BEFORE_WINDOW_CREATED_AT, CONFLICT_NAME_SUFFIX,
    CONFLICT_PROMPT_IF_NONE, CONFLICT_PROMPT_SUFFIX, INVALID_LEVELS, MESSY_IMAGE_KINDS,
    MESSY_MODEL_KINDS, MessyPlan, NEGATIVE_LIKES, NON_NUMERIC_LIKES, UNPARSEABLE_CREATED_AT,
    deal_kinds, last_chunk_first_row, messy_counts, messy_image_plan, messy_image_rows,
    messy_model_plan, messy_model_rows, messy_truth)
from .write import (DICTIONARY_COLUMNS, part_name, write_part, write_snapshot)
from .truth import (CREATOR_REPLICATES, adapter_truth, concentration, creator_truth, expected_truth,
    family_truth, real_person_adapter_truth)
