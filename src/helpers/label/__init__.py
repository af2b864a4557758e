"""Labels the study's claims rest on: NSFW definitions, markers, real-person models, depicted gender.

Reads the canonical interim tables and writes ``data/processed/{images,models}.parquet`` =
interim columns + the label columns named in ``schema.IMAGE_LABEL_FIELDS`` /
``schema.MODEL_LABEL_FIELDS``. Three rooms:

* :mod:`.images`: the NSFW definitions, the marker lexicon and its normaliser (one regex set for
  Python and DuckDB SQL), adapter-call counts, and the one-pass image labelling;
* :mod:`.models`: model labels: real-person rules + classifier, depicted gender (and the
  package's one first-name gender detector), and the model labelling;
* :mod:`.validation`: how well the labels work: metrics with intervals, errors, the
  platform-miss check, the gold gender set, the real-data report and the notebook's tables.

Everything public is re-exported here, so ``from helpers import label; label.label_all(...)``
works as before. The study's vocabulary (marker categories, genders, label fields) lives in
:mod:`helpers.schema`; the few names re-exported from there serve older callers.
"""
from __future__ import annotations

from typing import Any

from ..paths import RunPaths
from ..schema import (ADAPTER_CALL_PATTERN, GENDERS, IMAGE_LABEL_FIELDS, MARKER_CATEGORIES,
                      MARKERS_DROPPED_ON_PROMPTS, MODEL_LABEL_FIELDS, marker_column)
from .images import (LEXICON_VERSION, Lexicon, load_lexicon, lexicon_summary, NORMALISE_STEPS,
                     normalise_text, normalised_text_sql, term_regex, category_regex,
                     match_markers, match_markers_reference, LIGHT_STEPS, light_text,
                     light_text_sql, light_term_regex, light_category_regex,
                     light_category_patterns, image_label_items_sql, count_adapter_calls, adapter_calls_sql, nsfw_bit,
                     image_nsfw_sql, image_labels_select_sql, image_labels_of_file_sql,
                     label_image_frame, image_label_counts, label_images, label_batch,
                     prompt_labels_sql, LABEL_BATCH_ROWS)
from .models import (NON_ADAPTER_TYPES, NON_ADAPTER_TOOL_TYPES, model_nsfw_labels, is_adapter_type,
                     tag_markers, PHOTO_TAGS, PERSON_TAGS, FICTION_TAGS, STYLE_TAGS,
                     DESCRIPTION_CUE_TERMS, RULE_WEIGHTS, RULE_BIAS, RULE_THRESHOLD, CLASSIFIER_C,
                     CLASSIFIER_THRESHOLD, CLASSIFIER_FOLDS, HASHED_FEATURES, MIN_POI_PER_CLASS,
                     DESCRIPTION_CHARS, gender_detector, first_name_gender, is_first_name,
                     name_tokens, looks_like_personal_name, real_person_rule_features,
                     real_person_rule_score, real_person_documents, can_train_classifier,
                     classifier_scores, score_real_person, real_person_labels, FEMALE_WORDS,
                     MALE_WORDS, MIXED_WORDS, GENDER_WEIGHTS, GENDER_MIN_EVIDENCE,
                     GENDER_DOMINANCE, gender_evidence, gender_from_evidence, depicted_gender,
                     ModelLabelling, label_model_frame, write_processed_models, model_label_counts,
                     label_models)
from .validation import (binary_metrics, bootstrap_metrics, confusion_table, evaluate_real_person,
                         calibrate_rule_threshold, error_categories, PLATFORM_MISS_SCORE,
                         platform_miss_estimate, platform_miss_table, platform_miss_sample,
                         PLATFORM_MISS_CHECK_FILE, PLATFORM_MISS_CHECK_LABELS, load_labelled_ids,
                         load_platform_miss_check, platform_miss_candidates,
                         platform_miss_checked_estimate, GOLD_GENDER_FILE, load_gold_gender,
                         evaluate_gender_gold, gender_confusion, real_person_evaluation,
                         nsfw_definition_shares, marker_prevalence, gender_distribution,
                         evaluation_frames, real_data_models, real_data_evaluation,
                         REAL_PERSON_F1_TARGETS, GENDER_ACCURACY_TARGET, nsfw_definition_spread,
                         REPORT_FOLDER, REPORT_STEM, REPORT_DECIMALS, REPORT_BOOTSTRAP,
                         REPORT_TABLES, REPORT_TABLE_TITLES, shared_real_data_file, report_paths,
                         sample_composition, real_records_report, source_description,
                         compute_real_records_report, markdown_table, report_markdown,
                         write_real_records_report, load_real_records_report, real_records_frames,
                         real_person_validation_counts, MARKER_CHECK_FILE, MARKER_CHECK_LABELS,
                         load_marker_check, real_showcase_prompts, marker_precision,
                         marker_precision_status, MARKER_CHECK_SIZES, marker_check_sample)


def label_all(paths: RunPaths, seed: int, memory_limit: str = "3GB", n_boot: int = 1000) -> dict[str, Any]:
    """Label both tables of a run; the returned report is what ``02_label_content`` stores as ``label``."""
    lexicon = load_lexicon()
    images = label_images(paths, lexicon=lexicon, memory_limit=memory_limit)
    models = label_models(paths, seed=seed, lexicon=lexicon, n_boot=n_boot)
    return {"lexicon_version": lexicon.version,
            "rows": {"images": images.get("rows"), "models": models.get("rows")},
            "images": images, "models": models}
