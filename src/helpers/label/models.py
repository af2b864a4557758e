"""Model labels: NSFW, adapter type, tag markers, real-person models and depicted gender.

Reads the interim models table and writes ``data/processed/models.parquet`` = interim columns
+ the ``MODEL_LABEL_FIELDS`` of :mod:`helpers.schema`.

* **Real-person models.** Hand-written rules over tags, name, trigger words and description
  give ``rule_score``; where the snapshot carries the platform's ``poi`` flag, a TF-IDF +
  logistic-regression classifier (rule cues as extra features) is trained on it and scored
  out-of-fold, so no model is scored by a classifier that saw its own label.
* **Depicted gender** of real-person models from tags, trigger words, name (the offline
  first-name resource ``gender_guesser``, behind :func:`first_name_gender`, the package's one
  gender detector) and description pronouns; ``unknown`` when evidence is thin or conflicting.

How well these labels work is measured in :mod:`.validation`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import db, schema
from ..paths import RunPaths
from ..stats import stored_floats
from ..schema import GENDERS, MARKER_CATEGORIES, MODEL_LABEL_FIELDS, marker_column
from .images import Lexicon, _compiled_categories, category_regex, load_lexicon, normalise_text, nsfw_bit

#: Model types that are full models rather than adapters on top of one.
NON_ADAPTER_TYPES: frozenset[str] = frozenset({"checkpoint"})
#: Model types that are not adapters either but also not checkpoints (tools for generation).
NON_ADAPTER_TOOL_TYPES: frozenset[str] = frozenset({"controlnet", "poses", "upscaler", "vae",
                                                    "wildcards", "workflows", "other", "detection",
                                                    "motionmodule", "aestheticgradient"})


# --------------------------------------------------------------------------- models: simple labels
def model_nsfw_labels(models: pd.DataFrame) -> pd.DataFrame:
    """``is_nsfw_platform`` / ``is_nsfw_r`` / ``is_nsfw_x`` of models (null where level unknown)."""
    bits = pd.Series([nsfw_bit(v) for v in models["nsfw_level"].astype(object)], index=models.index,
                     dtype="Float64")
    out = pd.DataFrame(index=models.index)
    out["is_nsfw_platform"] = models["nsfw"].astype("boolean")
    out["is_nsfw_r"] = (bits >= schema.LEVEL_BITS["R"]).astype("boolean")
    out["is_nsfw_x"] = (bits >= schema.LEVEL_BITS["X"]).astype("boolean")
    return out


def is_adapter_type(model_type: pd.Series) -> pd.Series:
    """True for adapters (LORA, LoCon, LyCORIS, DoRA, Hypernetwork, TextualInversion, …).

    Checkpoints and generation tools (ControlNet, poses, VAE, upscalers, …) are not adapters.
    """
    t = model_type.astype("string").str.strip().str.lower().str.replace(r"[\s_-]+", "", regex=True)
    return (~t.isin(NON_ADAPTER_TYPES | NON_ADAPTER_TOOL_TYPES)).astype("boolean").where(t.notna())


def _as_list(value: Any) -> list[str]:
    """A list of strings from a list / array cell (None and NaN become [])."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(v) for v in value if v is not None]


def tag_markers(tags: pd.Series, lexicon: Lexicon | None = None) -> pd.DataFrame:
    """Marker categories of each model's tags; each tag is matched on its own (null if no tags).

    Matching tag by tag keeps a two-word term from spanning two tags (``real`` + ``person``).
    """
    lexicon = lexicon or load_lexicon()
    patterns = _compiled_categories(lexicon)
    has_tags = np.array([v is not None and not (isinstance(v, float) and math.isnan(v)) for v in tags])
    normed = [[normalise_text(t) for t in _as_list(v)] for v in tags]
    out = pd.DataFrame(index=tags.index)
    for cat, pat in patterns.items():
        hit = np.array([any(pat.search(t) for t in row) for row in normed], dtype=bool)
        out[marker_column(cat)] = pd.array(np.where(has_tags, hit, False), dtype="boolean")
        out.loc[~has_tags, marker_column(cat)] = pd.NA
    return out


# --------------------------------------------------------------------------- real-person rules
#: Tags that say the subject is a photographed human (weak evidence alone).
PHOTO_TAGS: frozenset[str] = frozenset({
    "photorealistic", "realistic", "photo", "photography", "photorealism", "real", "realism",
    "portrait", "portraits", "face", "faces", "headshot"})
#: Tags that name the subject as a person rather than a character or a style.
PERSON_TAGS: frozenset[str] = frozenset({"person", "people", "human", "public figure", "subject"})
#: Tags of fictional / drawn subjects: anime, games, cartoons, virtual streamers.
FICTION_TAGS: frozenset[str] = frozenset({
    "anime", "manga", "cartoon", "game character", "video game", "videogame", "video games",
    "anime character", "anime girl", "anime boy", "hentai", "furry", "anthro", "fictional character",
    "fictional", "pokemon", "vtuber", "virtual youtuber", "hololive", "nijisanji", "comics", "comic",
    "genshin impact", "waifu", "league of legends", "touhou", "fanart", "fan art", "cartoon character",
    "disney", "monster girl", "final fantasy", "game", "games", "blue archive", "azur lane",
    "honkai star rail", "honkai impact", "arknights", "fate", "fate grand order", "idolmaster",
    "love live", "kancolle", "umamusume", "mecha", "robot", "monster", "creature", "pony", "my little pony"})
#: Tags of styles, concepts, poses, objects and base models (not a depicted individual).
STYLE_TAGS: frozenset[str] = frozenset({
    "style", "art style", "artstyle", "artist", "concept", "clothing", "clothes", "outfit",
    "costume", "poses", "pose", "landscapes", "landscape", "background", "architecture", "objects",
    "object", "base model", "general purpose", "illustration", "painting", "digital art", "3d", "2d",
    "merge", "tool", "utility", "lighting", "vehicle", "building", "buildings", "food", "animal",
    "animals", "scenery", "environment", "texture", "pattern", "aesthetic", "cinematic",
    "pixel art", "sci-fi", "fantasy", "horror", "abstract", "photography style"})
#: Words removed from a model name before looking for a personal name in it.
_NAME_NOISE_RE = re.compile(
    r"\b(?:lora|loras|lycoris|locon|loha|lyco|lokr|dora|ti|embedding|embeddings|textual|inversion|"
    r"hypernetwork|hn|checkpoint|ckpt|safetensors|model|mix|merge|v[0-9][\w.]*|ver[0-9.]*|version|"
    r"sd[0-9][\w.]*|sdxl|xl|pony|nsfw|sfw|likeness|celeb|celebrity|realistic|real|photo|young|old)\b",
    re.IGNORECASE)
#: A name is cut at the first bracket, separator or ``@``: "Jane Doe (Young) | v2" -> "Jane Doe".
_NAME_CUT_RE = re.compile(r"[(\[{|/:_,@#]|\s[-–—]\s")
_CAPITALISED_WORD_RE = re.compile(r"^[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'’]+(?:[A-Z][a-zß-öø-ÿ]+)?$")
_CAMEL_SPLIT_RE = re.compile(r"(?<=[a-zß-ÿ])(?=[A-ZÀ-Þ])")
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_TRIGGER_PERSON_RE = re.compile(r"\bperson\b", re.IGNORECASE)
#: Real-person cues read in descriptions: occupations only. Social platforms ("instagram",
#: "tiktok") are left out because descriptions link the *creator's* accounts, and "real
#: person" / "celebrities" because descriptions use them in disclaimers ("do not use this on
#: real people"). Checked on the real 2023 records: those words fired on more unflagged
#: than flagged models there.
DESCRIPTION_CUE_TERMS: tuple[str, ...] = (
    "actress", "actor", "celebrity", "celeb", "influencer", "instagram model", "youtuber", "streamer",
    "twitch streamer", "pornstar", "porn star", "adult film star", "singer", "musician", "rapper",
    "supermodel", "fashion model", "playmate", "wrestler", "comedian", "tv host", "news anchor",
    "politician", "athlete", "jav")
_DESCRIPTION_CUE_RE = re.compile(category_regex(DESCRIPTION_CUE_TERMS))

#: Weights (log-odds) of the rule cues. Set by hand from what each cue means, then checked on
#: the real 2023 API records in ../shared/data (``docs/validation/real_records.md``): a real-person
#: tag is strong evidence, a personal name or a photo tag is weak, fiction and style tags
#: count against. The weights are deliberately few and round so that they do not over-fit.
RULE_WEIGHTS: dict[str, float] = {
    "tag_real_person_cue": 3.5,
    "name_real_person_cue": 1.0,
    "description_real_person_cue": 1.0,
    "name_is_personal_name": 1.0,
    "name_first_name_known": 1.0,
    "trigger_word_person": 1.0,
    "cjk_name_photo_tags": 1.0,
    "photo_tag": 0.5,
    "person_tag": 0.5,
    "fiction_tag": -2.0,
    "character_tag": -0.5,
    "style_or_concept_tag": -1.5,
}
RULE_BIAS = -3.0
#: Threshold on ``rule_score`` used where no model carries ``poi`` (rules alone decide).
#: Calibrated on the real 2023 API records in ../shared/data against the platform's ``poi``
#: flag: F1 is flat for every threshold from 0.4 to 0.6 and falls outside it, so the
#: middle of that plateau is shipped (``calibrate_rule_threshold``; checked by the real-data test).
RULE_THRESHOLD = 0.5
#: Classifier settings (TF-IDF + logistic regression); probability threshold for a positive.
CLASSIFIER_C = 30.0
CLASSIFIER_THRESHOLD = 0.5
CLASSIFIER_FOLDS = 5
#: Size of the hashed text feature space (2^18 keeps memory fixed; collisions are rare here).
HASHED_FEATURES = 2 ** 18
#: The classifier is trained only if at least this many models carry each ``poi`` value.
MIN_POI_PER_CLASS = 20
#: Description characters the classifier reads (long descriptions are mostly boilerplate).
DESCRIPTION_CHARS = 2000


@lru_cache(maxsize=1)
def gender_detector():
    """The offline first-name resource (gender_guesser), built once (it reads a data file).

    The package's one gender detector: use it through :func:`first_name_gender` /
    :func:`is_first_name` rather than building another.
    """
    import gender_guesser.detector as detector

    return detector.Detector(case_sensitive=False)


@lru_cache(maxsize=200_000)
def first_name_gender(token: str) -> str:
    """gender_guesser's verdict on a first name: female, mostly_female, male, mostly_male, andy, unknown."""
    if len(token) < 2 or not token.isalpha():
        return "unknown"
    return gender_detector().get_gender(token)


def is_first_name(token: str) -> bool:
    """Whether the first-name resource knows ``token`` (any verdict but ``unknown``)."""
    return first_name_gender(token) != "unknown"


def name_tokens(name: str | None) -> list[str]:
    """Words of a model name that could be a personal name (version, format and cue words removed).

    ``"Jane Doe (Young) LoRA v2"`` -> ``["Jane", "Doe"]``; a single CamelCase word is split.
    """
    if not name:
        return []
    head = _NAME_CUT_RE.split(str(name), maxsplit=1)[0]
    head = _NAME_NOISE_RE.sub(" ", head)
    if " " not in head.strip():
        head = _CAMEL_SPLIT_RE.sub(" ", head)
    return [t for t in re.split(r"[\s\-]+", head) if t]


def looks_like_personal_name(tokens: list[str]) -> bool:
    """Two or three capitalised words whose first is a known first name ("Jane Doe")."""
    return (2 <= len(tokens) <= 3 and all(_CAPITALISED_WORD_RE.match(t) for t in tokens)
            and first_name_gender(tokens[0]) != "unknown")


def _tag_sets(tags: pd.Series) -> list[set[str]]:
    return [{t.strip().lower() for t in _as_list(v)} for v in tags]


def real_person_rule_features(models: pd.DataFrame, lexicon: Lexicon | None = None) -> pd.DataFrame:
    """Boolean rule cues per model, computed without looking at ``poi``.

    Columns are the keys of ``RULE_WEIGHTS``; they double as the error categories of the
    evaluation (which cues fired), so no name ever needs to be shown.
    """
    lexicon = lexicon or load_lexicon()
    real_person = _compiled_categories(lexicon)["real_person"]
    tags = _tag_sets(models["tags"])
    names = [None if pd.isna(n) else str(n) for n in models["name"]]
    descriptions = [None if pd.isna(d) else str(d) for d in models["description"]]
    triggers = [_as_list(v) for v in models["trigger_words"]]
    tag_cue = tag_markers(models["tags"], lexicon)[marker_column("real_person")].fillna(False)
    tokens = [name_tokens(n) for n in names]
    rows = {
        "tag_real_person_cue": tag_cue.to_numpy(dtype=bool),
        "name_real_person_cue": [bool(n) and bool(real_person.search(normalise_text(n) or "")) for n in names],
        "description_real_person_cue": [bool(d) and bool(_DESCRIPTION_CUE_RE.search(normalise_text(d) or ""))
                                        for d in descriptions],
        "name_is_personal_name": [looks_like_personal_name(t) for t in tokens],
        "name_first_name_known": [bool(t) and first_name_gender(t[0]) != "unknown" for t in tokens],
        "trigger_word_person": [any(_TRIGGER_PERSON_RE.search(w) for w in ws) for ws in triggers],
        "cjk_name_photo_tags": [bool(n) and bool(_CJK_RE.search(n)) and bool(ts & PHOTO_TAGS)
                                for n, ts in zip(names, tags)],
        "photo_tag": [bool(ts & PHOTO_TAGS) for ts in tags],
        "person_tag": [bool(ts & PERSON_TAGS) for ts in tags],
        "fiction_tag": [bool(ts & FICTION_TAGS) for ts in tags],
        "character_tag": ["character" in ts for ts in tags],
        "style_or_concept_tag": [bool(ts & STYLE_TAGS) for ts in tags],
    }
    return pd.DataFrame({k: np.asarray(v, dtype=bool) for k, v in rows.items()}, index=models.index)


def real_person_rule_score(features: pd.DataFrame) -> pd.Series:
    """Rule score in [0, 1]: logistic of ``RULE_BIAS`` + the weighted sum of the cues present."""
    logit = RULE_BIAS + features[list(RULE_WEIGHTS)].astype(float) @ pd.Series(RULE_WEIGHTS)
    return pd.Series(1.0 / (1.0 + np.exp(-logit.to_numpy())), index=features.index, name="rule_score")


# --------------------------------------------------------------------------- real-person classifier
def real_person_documents(models: pd.DataFrame) -> pd.Series:
    """Text the classifier reads: name, tags (one token each), trigger words, type, description."""
    def doc(name: Any, tags: Any, words: Any, mtype: Any, desc: Any) -> str:
        tag_tokens = " ".join("tag_" + re.sub(r"\W+", "_", t.strip().lower()) for t in _as_list(tags))
        return " ".join([
            "" if pd.isna(name) else str(name), tag_tokens, " ".join(_as_list(words)),
            "" if pd.isna(mtype) else "type_" + str(mtype).lower(),
            "" if pd.isna(desc) else str(desc)[:DESCRIPTION_CHARS]])

    return pd.Series([doc(*row) for row in zip(models["name"], models["tags"], models["trigger_words"],
                                                models["type"], models["description"])],
                     index=models.index, name="document")


def hashed_counts(docs: pd.Series):
    """Hashed word uni/bigram counts of each document (bounded memory at any snapshot size).

    Hashing is stateless, so every document is hashed once and each fold of the classifier
    takes its rows: the same matrix a fold would get by hashing its own documents.
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=HASHED_FEATURES, ngram_range=(1, 2), alternate_sign=False,
                             norm=None).transform(docs)


def _design_matrix(tfidf, counts, features: pd.DataFrame, fit: bool):
    """Text features (hashed counts re-weighted by TF-IDF) and the rule cues side by side."""
    from scipy import sparse

    text = tfidf.fit_transform(counts) if fit else tfidf.transform(counts)
    return sparse.hstack([text, sparse.csr_matrix(features.to_numpy(dtype=float))]).tocsr()


def _fit_classifier(counts, features: pd.DataFrame, y: np.ndarray):
    """Fit the TF-IDF weights and a logistic regression on hashed counts + rule cues."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    tfidf = TfidfTransformer(sublinear_tf=True)
    x = _design_matrix(tfidf, counts, features, fit=True)
    model = LogisticRegression(C=CLASSIFIER_C, solver="liblinear", max_iter=5000).fit(x, y)
    return tfidf, model


def _predict_classifier(fitted, counts, features: pd.DataFrame) -> np.ndarray:
    tfidf, model = fitted
    return model.predict_proba(_design_matrix(tfidf, counts, features, fit=False))[:, 1]


def can_train_classifier(poi: pd.Series, n_splits: int = CLASSIFIER_FOLDS) -> bool:
    """Enough models carry ``poi`` (each value at least ``MIN_POI_PER_CLASS`` and ``n_splits`` times)."""
    counts = poi.dropna().astype(bool).value_counts()
    need = max(MIN_POI_PER_CLASS, n_splits)
    return bool(counts.get(True, 0) >= need and counts.get(False, 0) >= need)


def classifier_scores(models: pd.DataFrame, features: pd.DataFrame, seed: int,
                      n_splits: int = CLASSIFIER_FOLDS) -> pd.Series:
    """Classifier probability per model, never from a classifier that saw the model's own ``poi``.

    Models with ``poi`` are scored out-of-fold (seeded ``StratifiedKFold``); models without it
    are scored by a classifier trained on all models that have it. NaN if it cannot be trained.
    """
    from sklearn.model_selection import StratifiedKFold

    out = pd.Series(np.nan, index=models.index, name="classifier_score")
    poi = models["poi"].astype("boolean")
    if not can_train_classifier(poi, n_splits):
        return out
    counts = hashed_counts(real_person_documents(models))
    labelled = np.flatnonzero(poi.notna().to_numpy())
    unlabelled = np.flatnonzero(poi.isna().to_numpy())
    y = poi.iloc[labelled].astype(bool).to_numpy()
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    values = out.to_numpy().copy()
    for train, test in folds.split(labelled, y):
        fitted = _fit_classifier(counts[labelled[train]], features.iloc[labelled[train]], y[train])
        values[labelled[test]] = _predict_classifier(fitted, counts[labelled[test]],
                                                     features.iloc[labelled[test]])
    if len(unlabelled):
        fitted = _fit_classifier(counts[labelled], features.iloc[labelled], y)
        values[unlabelled] = _predict_classifier(fitted, counts[unlabelled], features.iloc[unlabelled])
    return pd.Series(values, index=models.index, name="classifier_score")


def score_real_person(models: pd.DataFrame, seed: int, n_splits: int = CLASSIFIER_FOLDS,
                      features: pd.DataFrame | None = None, lexicon: Lexicon | None = None) -> pd.DataFrame:
    """Rule score, classifier score and the final ``real_person_score`` / prediction per model.

    ``real_person_score`` is the classifier probability where a classifier could be trained
    (it reads the rule cues as features, so it combines both), else the rule score. Neither
    reads the model's own ``poi``. ``method`` says which decided.
    """
    features = real_person_rule_features(models, lexicon) if features is None else features
    rule = real_person_rule_score(features)
    clf = classifier_scores(models, features, seed=seed, n_splits=n_splits)
    use_clf = len(clf) > 0 and bool(clf.notna().all())
    final = clf if use_clf else rule
    return pd.DataFrame({
        "rule_score": rule,
        "rule_predicted": rule >= RULE_THRESHOLD,
        "classifier_score": clf,
        "real_person_score": final.astype(float).clip(0.0, 1.0),
        "predicted": final >= (CLASSIFIER_THRESHOLD if use_clf else RULE_THRESHOLD),
        "method": "rules+classifier" if use_clf else "rules",
    }, index=models.index)


def real_person_labels(models: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``real_person_score``, ``is_real_person`` (platform ``poi`` where present) and its source."""
    poi = models["poi"].astype("boolean")
    has_poi = poi.notna()
    out = pd.DataFrame(index=models.index)
    out["real_person_score"] = stored_floats(scores["real_person_score"].astype(float))
    out["is_real_person"] = poi.where(has_poi, scores["predicted"].astype("boolean")).astype("boolean")
    out["real_person_source"] = np.where(has_poi.to_numpy(), "platform", "predicted")
    return out


# --------------------------------------------------------------------------- depicted gender
#: Words that say the depicted person is a woman / a man (whole words on normalised text).
FEMALE_WORDS: frozenset[str] = frozenset({
    "woman", "women", "girl", "girls", "female", "females", "lady", "ladies", "actress", "actresses",
    "1girl", "queen", "princess", "wife", "mother", "mom", "milf", "gal", "girlfriend", "sister",
    "daughter", "bride", "diva", "heroine", "housewife", "waitress", "goddess", "her", "she"})
MALE_WORDS: frozenset[str] = frozenset({
    "man", "men", "boy", "boys", "male", "males", "guy", "guys", "gentleman", "1boy", "king",
    "prince", "husband", "father", "dad", "boyfriend", "brother", "son", "sir", "lord", "beard",
    "bearded", "dude", "him", "he", "his"})
#: Words that say a model depicts several people (a couple, a duo, a band).
MIXED_WORDS: frozenset[str] = frozenset({"couple", "couples", "duo", "pair", "trio", "twins", "family"})
#: Evidence weights: a gendered tag or a gendered word in the name is strong; a trigger word,
#: a first name that gender_guesser only calls "mostly" one gender, or a pronoun count are weaker.
GENDER_WEIGHTS: dict[str, float] = {
    "tag": 2.0, "name_word": 2.0, "first_name": 2.0, "first_name_mostly": 1.0,
    "trigger_word": 1.0, "pronouns": 1.5, "pronoun_single": 0.5,
}
#: A side wins with at least this much evidence and at least ``GENDER_DOMINANCE`` times the other.
GENDER_MIN_EVIDENCE = 2.0
GENDER_DOMINANCE = 2.0
_WORD_RE = re.compile(r"[a-z0-9]+")
_SHE_WORDS = frozenset({"she", "her", "hers", "herself"})
_HE_WORDS = frozenset({"he", "him", "his", "himself"})


def _words(text: str | None) -> set[str]:
    return set(_WORD_RE.findall(normalise_text(text) or ""))


def gender_evidence(models: pd.DataFrame) -> pd.DataFrame:
    """Weighted female / male evidence per model and whether a multi-person cue is present.

    Sources: tags, words in the name, gender_guesser on the first word of the name, trigger
    words, and she/he pronoun counts in the description.
    """
    w = GENDER_WEIGHTS
    female = np.zeros(len(models))
    male = np.zeros(len(models))
    multi = np.zeros(len(models), dtype=bool)
    rows = zip(models["tags"], models["name"], models["trigger_words"], models["description"])
    for i, (tags, name, words, desc) in enumerate(rows):
        tag_words = set().union(*(_words(t) for t in _as_list(tags))) if _as_list(tags) else set()
        tag_words -= _SHE_WORDS | _HE_WORDS  # pronouns as tags are noise
        name_text = None if pd.isna(name) else str(name)
        name_words = _words(name_text) - _SHE_WORDS - _HE_WORDS
        trigger_words = set().union(*(_words(t) for t in _as_list(words))) if _as_list(words) else set()
        female[i] += w["tag"] * bool(tag_words & FEMALE_WORDS) + w["name_word"] * bool(name_words & FEMALE_WORDS) \
            + w["trigger_word"] * bool(trigger_words & FEMALE_WORDS)
        male[i] += w["tag"] * bool(tag_words & MALE_WORDS) + w["name_word"] * bool(name_words & MALE_WORDS) \
            + w["trigger_word"] * bool(trigger_words & MALE_WORDS)
        tokens = name_tokens(name_text)
        guess = first_name_gender(tokens[0]) if tokens else "unknown"
        female[i] += {"female": w["first_name"], "mostly_female": w["first_name_mostly"]}.get(guess, 0.0)
        male[i] += {"male": w["first_name"], "mostly_male": w["first_name_mostly"]}.get(guess, 0.0)
        desc_tokens = _WORD_RE.findall(normalise_text(None if pd.isna(desc) else str(desc)) or "")
        she = sum(t in _SHE_WORDS for t in desc_tokens)
        he = sum(t in _HE_WORDS for t in desc_tokens)
        if she >= 2 and she >= 3 * he:
            female[i] += w["pronouns"]
        elif she == 1 and he == 0:
            female[i] += w["pronoun_single"]
        if he >= 2 and he >= 3 * she:
            male[i] += w["pronouns"]
        elif he == 1 and she == 0:
            male[i] += w["pronoun_single"]
        multi[i] = bool((tag_words | name_words) & MIXED_WORDS)
    return pd.DataFrame({"female": female, "male": male, "multi_person": multi}, index=models.index)


def gender_from_evidence(evidence: pd.DataFrame) -> pd.Series:
    """female / male when one side is strong and dominant; mixed for explicit multi-person
    models with strong evidence on both sides; otherwise unknown (thin or conflicting)."""
    f, m = evidence["female"].to_numpy(), evidence["male"].to_numpy()
    multi = evidence["multi_person"].to_numpy()
    out = np.full(len(evidence), "unknown", dtype=object)
    female = (f >= GENDER_MIN_EVIDENCE) & (f >= GENDER_DOMINANCE * m)
    male = (m >= GENDER_MIN_EVIDENCE) & (m >= GENDER_DOMINANCE * f)
    mixed = multi & (f >= GENDER_MIN_EVIDENCE) & (m >= GENDER_MIN_EVIDENCE)
    out[female] = "female"
    out[male] = "male"
    out[mixed] = "mixed"
    return pd.Series(out, index=evidence.index, name="depicted_gender")


def depicted_gender(models: pd.DataFrame, is_real_person: pd.Series) -> pd.Series:
    """Depicted gender of real-person models; ``unknown`` for every other model."""
    result = pd.Series("unknown", index=models.index, name="depicted_gender", dtype=object)
    real = is_real_person.fillna(False).astype(bool).to_numpy()
    if real.any():
        result.iloc[np.flatnonzero(real)] = gender_from_evidence(gender_evidence(models.iloc[np.flatnonzero(real)]))
    return result


# --------------------------------------------------------------------------- models: whole table
@dataclass(frozen=True)
class ModelLabelling:
    """Everything labelling models produces: the label columns, the scores, the rule cues."""

    labels: pd.DataFrame    # exactly the MODEL_LABEL_FIELDS columns
    scores: pd.DataFrame    # rule_score, rule_predicted, classifier_score, real_person_score, predicted, method
    features: pd.DataFrame  # the boolean rule cues (keys of RULE_WEIGHTS)


def label_model_frame(models: pd.DataFrame, seed: int, n_splits: int = CLASSIFIER_FOLDS,
                      lexicon: Lexicon | None = None) -> ModelLabelling:
    """All model labels for a canonical models frame (pure: no files read or written)."""
    lexicon = lexicon or load_lexicon()
    features = real_person_rule_features(models, lexicon)
    scores = score_real_person(models, seed=seed, n_splits=n_splits, features=features)
    person = real_person_labels(models, scores)
    labels = pd.concat([model_nsfw_labels(models),
                        pd.DataFrame({"is_adapter": is_adapter_type(models["type"])}, index=models.index),
                        person,
                        pd.DataFrame({"depicted_gender": depicted_gender(models, person["is_real_person"])},
                                     index=models.index),
                        tag_markers(models["tags"], lexicon)], axis=1)
    return ModelLabelling(labels=labels[[f.name for f in MODEL_LABEL_FIELDS]], scores=scores, features=features)


def _label_arrays(labels: pd.DataFrame, fields: Iterable[pa.Field]) -> list[pa.Array]:
    """Label columns as Arrow arrays of their contract types (pandas NA -> null)."""
    arrays = []
    for f in fields:
        values = labels[f.name].astype(object).where(labels[f.name].notna(), None).tolist()
        arrays.append(pa.array(values, type=f.type))
    return arrays


def write_processed_models(interim: pa.Table, labels: pd.DataFrame, dest: Path) -> int:
    """Interim columns (untouched Arrow) + label columns, written atomically; returns rows."""
    table = interim
    for f, arr in zip(MODEL_LABEL_FIELDS, _label_arrays(labels, MODEL_LABEL_FIELDS)):
        table = table.append_column(f, arr)
    return db.write_parquet_atomic(table, dest)


def model_label_counts(labelling: ModelLabelling) -> dict[str, Any]:
    """Counts of the model labels for the stage report (no names, no ids)."""
    lab = labelling.labels
    counts: dict[str, Any] = {"rows": len(lab), "method": str(labelling.scores["method"].iloc[0]) if len(lab) else None}
    for col in ("is_nsfw_platform", "is_nsfw_r", "is_nsfw_x", "is_adapter", "is_real_person",
                *(marker_column(c) for c in MARKER_CATEGORIES)):
        counts[col] = int(lab[col].fillna(False).astype(bool).sum())
    counts["real_person_source"] = {k: int(v) for k, v in sorted(lab["real_person_source"].value_counts().items())}
    real = lab["is_real_person"].fillna(False).astype(bool)
    # Gender is only defined for real-person models; count it among them.
    counts["depicted_gender"] = {g: int((lab.loc[real, "depicted_gender"] == g).sum()) for g in GENDERS}
    return counts


def label_models(paths: RunPaths, seed: int, n_splits: int = CLASSIFIER_FOLDS,
                 lexicon: Lexicon | None = None, n_boot: int = 1000) -> dict[str, Any]:
    """Write ``data/processed/models.parquet``; return counts and the real-person evaluation.

    ``{"rows": None}`` (and no file) when the run has no models table.
    """
    source = paths.table("interim", "models")
    dest = paths.table("processed", "models")
    if not source.exists():
        dest.unlink(missing_ok=True)
        return {"rows": None}
    schema.validate_file(source, "models", "interim")
    interim = pq.read_table(source)
    models = interim.to_pandas()
    labelling = label_model_frame(models, seed=seed, n_splits=n_splits, lexicon=lexicon)
    write_processed_models(interim, labelling.labels, dest)
    schema.validate_file(dest, "models", "processed")
    from .validation import real_person_evaluation  # local import: validation builds on this module

    return {**model_label_counts(labelling),
            "evaluation": real_person_evaluation(models, labelling, seed=seed, n_boot=n_boot)}
