"""The study's analyses: one function per question, each returning a small tidy frame or dict,
and one results object per analysis notebook.

* :mod:`.images` (notebook 03): image-level analyses, aggregated in DuckDB over the processed
  images table, never loaded into pandas; :func:`image_results` → :class:`ImageResults`.
* :mod:`.models` (notebook 04): model-level analyses on the processed models frame;
  :func:`model_results` → :class:`ModelResults`.
* :mod:`.growth` ("disproportionate": NSFW vs SFW growth, a trend with a break, every headline
  under every definition), :mod:`.users` (user-clustered intervals, the user × month adjusted
  adapter odds ratio, the shift-share decomposition), :mod:`.links` (analyses through the
  image → model link and base-model families), :mod:`.real_person` (models over time, the
  real-person label's error carried into its share) and :mod:`.subculture` (booru lineage of
  base models, syntax markers by family, minor-coded ∧ NSFW): their results are fields of the
  two results objects.
* :mod:`.sensitivity`: every headline estimate of notebooks 03 and 04 under every NSFW
  definition (the ``sensitivity`` field of both results objects).
* :mod:`.interventions` and :mod:`.policy` (notebook 05): declared moderation rules simulated on
  the labelled tables (harm removed vs collateral, label error carried into the intervals) and
  interrupted time series at declared policy dates; :func:`intervention_results` →
  :class:`InterventionResults`.
* :mod:`.names`: the personal-name filter that keeps names out of every published list.
* :mod:`.results`: how a results object is saved to a run folder and read back.
* The statistics (Wilson intervals, trend tests, rank tests, concentration, log-odds) live in
  :mod:`helpers.stats`; they are re-exported here for convenience.

Uncertainty: shares carry Wilson 95% intervals; trends are tested with a quasi-binomial
logistic regression of monthly counts on time (odds ratio per year) and a Mann-Kendall test;
distributions are compared with a Mann-Whitney U test and its rank-biserial effect size; prompt
vocabularies with weighted log-odds under an informative Dirichlet prior (Monroe et al. 2008).

Empty and single-valued groups: an analysis that this snapshot cannot estimate (no image calls
an adapter, one month only, every model depicts a real person, fewer users than the privacy
floor ...) returns :class:`~helpers.stats.NotEstimable` with the reason instead of a frame,
a dict or a number; the notebooks print the reason, the paper says "not estimable".

Ethics: lists of tags or prompt terms pass through :class:`PersonalNameFilter`, so no published
list names a real person; per-user statistics are only reported over at least
:data:`MIN_USERS` users.
"""
from __future__ import annotations

from ..schema import (GENDERS, MARKERS, NSFW_DEFINITION_LABELS,  # noqa: F401  (vocabulary)
                      NSFW_DEFINITIONS)
from ..stats import (CONFIDENCE, NotEstimable, estimable, gini,  # noqa: F401
                     logistic_trend, lorenz_curve, mann_kendall,
                     mann_whitney_from_counts, odds_ratio, quantile_from_counts, share_trend,
                     top_share, weighted_log_odds, wilson_interval, with_share)
from .common import (IMAGE_ENGAGEMENT, MIN_USERS, MODEL_ENGAGEMENT,  # noqa: F401
                     compare_groups, connect, table_of)
from .images import (STOPWORDS, ImageResults, creator_concentration,  # noqa: F401
                     distinctive_terms, engagement_counts, engagement_nsfw_vs_sfw, image_overview,
                     image_results, images_per_user_distribution, level_composition_by_month,
                     lora_use_by_month, marker_findings, markers_by_month, markers_not_compared, names_in_prompts,
                     nsfw_share_by_adapter_use, nsfw_share_by_adapter_use_by_month, nsfw_share_by_marker,
                     nsfw_share_by_month,
                     nsfw_share_trend, prompt_term_counts, trend_frame)
from .models import (ModelResults, adapter_share_by_month, base_models_by_month,  # noqa: F401
                     depicted_gender_split, engagement_nsfw_vs_sfw_models,
                     engagement_real_person_vs_other, model_nsfw_definition, model_overview,
                     model_results, model_types_by_month, nsfw_share_by_depicted_gender,
                     nsfw_share_by_real_person, real_person_downloads, real_person_share_by_month,
                     real_person_share_by_type, real_person_sources, top_tags)
from .names import (COMMON_WORDS, PersonalNameFilter, is_first_name,  # noqa: F401
                    personal_name_filter, word_tokens)
from .results import Results, stored_frame, stored_value  # noqa: F401
from .interventions import InterventionResults, intervention_results  # noqa: F401
from . import growth, interventions, links, policy, real_person, sensitivity, subculture, users  # noqa: E402,F401  (analyse.users.…)
