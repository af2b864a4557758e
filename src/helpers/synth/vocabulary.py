"""Prompt and model-name vocabulary (word lists in ``resources/synth_vocabulary.json``)."""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Sequence

import pyarrow as pa
from .params import STREAM_POOLS, PROMPT_LEVELS, SynthParams
from .plan import seeded_python_random


# --------------------------------------------------------------------------- vocabulary
def _frozen(value: Any) -> Any:
    """JSON lists as tuples (hashable, immutable), recursively; dicts keep their keys."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def load_vocabulary() -> dict[str, Any]:
    """The generator's word lists from ``resources/synth_vocabulary.json`` (shipped with the package)."""
    text = resources.files("helpers").joinpath("resources/synth_vocabulary.json").read_text("utf-8")
    return {k: _frozen(v) for k, v in json.loads(text).items()}


WORDS = load_vocabulary()

QUALITY = WORDS["quality"]
PONY_SCORES = WORDS["pony_scores"]
PONY_SOURCES = WORDS["pony_sources"]
PONY_RATING = WORDS["pony_rating"]
BOORU_SOLO = WORDS["booru_solo"]
BOORU_FEMALE = WORDS["booru_female"]
BOORU_MALE = WORDS["booru_male"]
REALISTIC = WORDS["realistic"]
CLOTHING = WORDS["clothing"]
SUGGESTIVE = WORDS["suggestive"]
MATURE = WORDS["mature"]
EXPLICIT_X = WORDS["explicit_x"]
EXPLICIT_XXX = WORDS["explicit_xxx"]
SETTING = WORDS["setting"]
STYLE = WORDS["style"]
SCENES = WORDS["scenes"]
SENTENCE_SUBJECTS = WORDS["sentence_subjects"]
SENTENCE_DETAILS = WORDS["sentence_details"]
NEGATIVE = WORDS["negative"]
NEGATIVE_PONY = WORDS["negative_pony"]
NEGATIVE_SFW = WORDS["negative_sfw"]
#: Neutral detail phrases (no lexicon term) that make prompts as long as real ones.
DETAIL_PHRASES = WORDS["detail_phrases"]
#: Real 2023 showcase prompts are longer than the composed ones and right-skewed (a tail of
#: very long prompts): a few detail phrases are added to most prompts, many to a share of them.
LONG_PROMPT_SHARE = 0.19
SHORT_DETAILS = (0, 1)
LONG_DETAILS = (7, 22)
#: Chance that a person in the prompt is a woman, by level (NSFW content centres on women).
FEMALE_SUBJECT_P = {"PG": 0.55, "PG13": 0.70, "R": 0.88, "X": 0.92, "XXX": 0.90}
#: Chance that a PG prompt has a person at all (others are scenes).
PG_PERSON_P = 0.6
#: Share of prompted images with an empty negative prompt.
EMPTY_NEGATIVE_SHARE = 0.2
#: The base model whose prompts carry score_/source_/rating_ tokens.
PONY_BASE = "Pony"


def _weighted(rnd: random.Random, token: str, p: float = 0.1) -> str:
    """``(token:w)`` with probability ``p``: the attention-weight syntax of prompts."""
    if rnd.random() < p:
        return f"({token}:{rnd.choice(('0.8', '1.1', '1.2', '1.3', '1.4'))})"
    return token


def _tag_prompt(rnd: random.Random, level: str, base: str) -> list[str]:
    """Tokens of a booru/tag-style prompt for one (level, base model) class."""
    parts: list[str] = []
    pony = base == PONY_BASE or (base == "SDXL 1.0" and rnd.random() < 0.05)
    if pony:
        parts += list(PONY_SCORES[: rnd.randint(3, len(PONY_SCORES))])
        parts += [rnd.choice(PONY_SOURCES), PONY_RATING[level]]
    else:
        parts += rnd.sample(QUALITY, rnd.randint(1, 3))
    if level == "PG" and rnd.random() > PG_PERSON_P:
        parts += [rnd.choice(SCENES)] + rnd.sample(STYLE, rnd.randint(1, 3))
        return parts
    female = rnd.random() < FEMALE_SUBJECT_P[level]
    anime = rnd.random() < (0.75 if pony else 0.5)
    if anime:
        parts += ["1girl" if female else "1boy"]
        parts += rnd.sample(BOORU_SOLO, rnd.randint(1, 4))
        parts += rnd.sample(BOORU_FEMALE if female else BOORU_MALE, rnd.randint(1, 4))
    else:
        parts += [rnd.choice(("photo of a beautiful woman", "woman", "adult woman", "1girl")
                             if female else ("photo of a man", "man", "handsome man"))]
        parts += rnd.sample(REALISTIC, rnd.randint(1, 4))
    if level == "PG":
        parts += rnd.sample(CLOTHING, 1)
    elif level == "PG13":
        parts += rnd.sample(SUGGESTIVE, rnd.randint(1, 2))
    elif level == "R":
        parts += rnd.sample(MATURE, rnd.randint(1, 3))
        if rnd.random() < 0.3:
            parts.append("nsfw")
    elif level == "X":
        parts += rnd.sample(EXPLICIT_X, rnd.randint(2, 3))
    else:
        parts += rnd.sample(EXPLICIT_X, rnd.randint(1, 2)) + rnd.sample(EXPLICIT_XXX, rnd.randint(2, 4))
    parts += rnd.sample(SETTING, rnd.randint(0, 2)) + rnd.sample(STYLE, rnd.randint(0, 3))
    return [_weighted(rnd, p) for p in dict.fromkeys(parts)]  # drop repeats, keep order


def _sentence_prompt(rnd: random.Random, level: str) -> list[str]:
    """A natural-language prompt (how Flux prompts are mostly written)."""
    if level == "PG" and rnd.random() > PG_PERSON_P:
        return [rnd.choice(SCENES).capitalize(), rnd.choice(STYLE)]
    female = rnd.random() < FEMALE_SUBJECT_P[level]
    sentence = f"{rnd.choice(SENTENCE_SUBJECTS['female' if female else 'male'])} " \
               f"{rnd.choice(SENTENCE_DETAILS)}"
    extra = {"PG": (), "PG13": SUGGESTIVE, "R": MATURE, "X": EXPLICIT_X, "XXX": EXPLICIT_XXX}[level]
    parts = [sentence]
    if extra:
        parts += rnd.sample(extra, rnd.randint(1, 3))
    return parts + rnd.sample(STYLE, rnd.randint(1, 2)) + rnd.sample(REALISTIC, rnd.randint(0, 2))


def compose_prompt(rnd: random.Random, level: str, base: str) -> str:
    """One comma-separated positive prompt for the (level, base model) class."""
    sentence_p = 0.8 if base == "Flux.1 D" else 0.1 if base == "SDXL 1.0" else 0.0
    parts = _sentence_prompt(rnd, level) if rnd.random() < sentence_p else _tag_prompt(rnd, level, base)
    return ", ".join(parts)


def pad_prompt(rnd: random.Random, prompt: str) -> str:
    """``prompt`` with neutral detail phrases appended, so that prompt lengths follow the real
    distribution (long prompts are common; regex cost grows with length)."""
    low, high = LONG_DETAILS if rnd.random() < LONG_PROMPT_SHARE else SHORT_DETAILS
    k = rnd.randint(low, high)
    if k == 0:
        return prompt
    extra = rnd.sample(DETAIL_PHRASES, min(k, len(DETAIL_PHRASES)))
    return ", ".join([prompt, *(_weighted(rnd, e, 0.05) for e in extra)])


def compose_negative(rnd: random.Random, pony: bool) -> str:
    """One negative prompt; Pony-style ones start with low score tokens."""
    parts = list(NEGATIVE_PONY[: rnd.randint(3, len(NEGATIVE_PONY))]) if pony else []
    parts += rnd.sample(NEGATIVE, rnd.randint(3, 10))
    if rnd.random() < 0.15:
        parts += rnd.sample(NEGATIVE_SFW, rnd.randint(1, 2))
    return ", ".join(parts)


@dataclass(frozen=True)
class PromptPools:
    """Distinct prompts per (level, base model) class, and negative prompts."""

    positive: pa.StringArray   # class c occupies [c * size, (c + 1) * size)
    size: int
    negative: pa.StringArray   # index 0 = empty; then general, then Pony-style
    n_negative_general: int
    n_negative_pony: int


def prompt_pool_per_class(params: SynthParams) -> int:
    """Distinct prompts per class: one per ~50 images, between 100 and ``prompt_pool_size``."""
    return max(1, min(params.prompt_pool_size, max(100, params.n_images // 50)))


def build_prompt_pools(params: SynthParams, base_names: Sequence[str]) -> PromptPools:
    """Seeded prompt pools; built once per snapshot (a loop per pool entry, not per image)."""
    rnd = seeded_python_random(params.seed, STREAM_POOLS)
    # The lengths come from their own stream, so the composed prompts stay as they were.
    lengths = random.Random(f"{params.seed}-prompt-lengths")
    size = prompt_pool_per_class(params)
    positive = [pad_prompt(lengths, compose_prompt(rnd, level, base))
                for level in PROMPT_LEVELS for base in base_names for _ in range(size)]
    n_neg = max(50, size // 2)
    negative = [""] + [compose_negative(rnd, False) for _ in range(n_neg)] \
        + [compose_negative(rnd, True) for _ in range(n_neg)]
    return PromptPools(pa.array(positive, pa.string()), size, pa.array(negative, pa.string()),
                       n_neg, n_neg)


# --------------------------------------------------------------------------- names
_FIRST_ONSETS = WORDS["first_onsets"]
_FEMALE_ENDINGS = WORDS["female_endings"]
_MALE_ENDINGS = WORDS["male_endings"]
#: Common given names: with an invented surname the full name stays fictional, and a gender
#: guesser on first names gets something to work with (as on real data).
_FEMALE_GIVEN = WORDS["female_given"]
_MALE_GIVEN = WORDS["male_given"]
_SURNAME_PARTS = WORDS["surname_parts"]
_STYLE_WORDS = WORDS["style_words"]
_CHARACTER_SYLLABLES = WORDS["character_syllables"]
_CONCEPTS = WORDS["concepts"]
_CLOTHES = WORDS["clothes"]
_POSES = WORDS["poses"]
_CHECKPOINT_WORDS = WORDS["checkpoint_words"]
_PERSON_CUES = WORDS["person_cues"]
_MALE_CUES = WORDS["male_cues"]
#: Name suffixes that creators use to mark a model's base model.
_BASE_SUFFIXES = WORDS["base_suffixes"]


def base_suffix(rnd: random.Random, base: str) -> str:
    """A name suffix that fits the base model (often none)."""
    return rnd.choice(_BASE_SUFFIXES.get(base, ("",)))


def _gender_of_given(gender: str) -> str:
    """Gender of the (first) given name: a mixed model is named after its woman first."""
    return "female" if gender in ("female", "mixed") else "male"


def fictional_person_name(rnd: random.Random, gender: str) -> str:
    """An invented full name, e.g. 'Valena Morcastle' (never a real person's name)."""
    if rnd.random() < 0.4:
        given = rnd.choice(_FEMALE_GIVEN if gender == "female" else _MALE_GIVEN)
    else:
        given = rnd.choice(_FIRST_ONSETS) + rnd.choice(_FEMALE_ENDINGS if gender == "female" else _MALE_ENDINGS)
    return f"{given} {rnd.choice(_SURNAME_PARTS[0])}{rnd.choice(_SURNAME_PARTS[1])}"


def slugify(name: str) -> str:
    """Lower-case slug of a model name as used in ``<lora:slug:w>`` calls."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "model"


@dataclass(frozen=True)
class ModelText:
    """Name, description, tags and trained words of one model."""

    name: str
    description: str
    tags: list[str]
    trained_words: list[str]


def person_model_text(rnd: random.Random, gender: str, nsfw: bool, base: str) -> ModelText:
    """Text of a real-person model: fictional name, person cues, gender tag, trigger words."""
    given_gender = _gender_of_given(gender)
    name = fictional_person_name(rnd, given_gender)
    if gender == "mixed":
        name = f"{name} & {fictional_person_name(rnd, 'male')}"
    cues = rnd.sample(_PERSON_CUES if given_gender == "female" else _MALE_CUES, rnd.randint(1, 3))
    gender_tags = {"female": ["woman"], "male": ["man"], "mixed": ["woman", "man", "couple"]}[gender]
    tags = cues + gender_tags + rnd.sample(("person", "photorealistic", "realistic", "portrait"),
                                           rnd.randint(0, 2))
    if nsfw and rnd.random() < 0.5:
        tags.append(rnd.choice(("sexy", "nsfw")))
    slug = slugify(name.split(" & ")[0])
    trained = [name.split(" & ")[0].lower(), f"{slug[:3]}{slug.split('_')[-1][:3]}woman"
               if given_gender == "female" else f"{slug[:3]}{slug.split('_')[-1][:3]}man"]
    description = (f"<p>Likeness of {name}, {cues[0]}. Trained on {rnd.randint(20, 200)} "
                   f"photos.</p><p>Trigger words: <b>{trained[0]}</b></p>")
    return ModelText(name + base_suffix(rnd, base), description, tags, trained)


def adapter_model_text(rnd: random.Random, kind: str, nsfw: bool, base: str) -> ModelText:
    """Text of a non-person adapter: a style, fictional character, concept, clothing or pose."""
    if kind == "style":
        name = f"{rnd.choice(_STYLE_WORDS[0])} {rnd.choice(_STYLE_WORDS[1])} Style"
        tags = ["style", rnd.choice(("art style", "anime", "illustration", "painting", "photography"))]
        trained = [name.lower()]
        blurb = "An art style."
    elif kind == "character":
        first = "".join(rnd.sample(_CHARACTER_SYLLABLES, 2))
        name = f"{first} {''.join(rnd.sample(_CHARACTER_SYLLABLES, 2))} (original character)"
        female = rnd.random() < 0.8
        tags = ["character", "anime", "original character", "girl" if female else "boy", "fictional"]
        trained = [first.lower()]
        blurb = "A fictional anime-style character."
    elif kind == "concept":
        name = rnd.choice(_CONCEPTS)
        tags = ["concept", rnd.choice(("tool", "detail", "effect", "lighting"))]
        trained = [slugify(name).replace("_", " ")]
        blurb = "A concept / effect helper."
    elif kind == "clothing":
        name = rnd.choice(_CLOTHES)
        tags = ["clothing", "outfit", rnd.choice(("fashion", "costume", "woman"))]
        trained = [name.lower()]
        blurb = "An outfit."
    else:
        name = rnd.choice(_POSES)
        tags = ["pose", "poses", rnd.choice(("woman", "man", "anime"))]
        trained = [name.lower()]
        blurb = "A pose helper."
    if nsfw and rnd.random() < 0.6:
        tags += rnd.sample(("nsfw", "sexy", "nude", "hentai", "lingerie"), rnd.randint(1, 2))
    name = name + base_suffix(rnd, base)
    description = f"<p>{blurb}</p><p>Use <i>{trained[0]}</i> at weight 0.6–1.0.</p>"
    return ModelText(name, description, tags, trained)


def checkpoint_text(rnd: random.Random, base: str, nsfw: bool) -> ModelText:
    """Text of a checkpoint (a full fine-tuned or merged model)."""
    suffix = {"SD 1.5": "", "SDXL 1.0": " XL", "Pony": " Pony", "Flux.1 D": " Flux"}.get(base, "")
    name = f"{rnd.choice(_CHECKPOINT_WORDS[0])}{rnd.choice(_CHECKPOINT_WORDS[1])}{suffix} " \
           f"v{rnd.randint(1, 9)}"
    tags = ["base model", "checkpoint", rnd.choice(("photorealistic", "anime", "semi-realistic", "art"))]
    if nsfw and rnd.random() < 0.5:
        tags.append("nsfw")
    description = f"<p>A {base} merge tuned for {tags[2]} images.</p>"
    return ModelText(name, description, tags, [])


