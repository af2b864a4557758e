"""Personal names kept out of every published list of tags or prompt terms.

A :class:`PersonalNameFilter` is built from the processed models table: the names and trigger
words of real-person models, the words mostly used by them, and capitalised "Firstname
Lastname" sequences in any model name, minus common vocabulary. First names are recognised by
the same detector that labels depicted gender (:func:`helpers.label.first_name_gender`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from ..label import first_name_gender, load_lexicon
from .common import as_bool

#: Words that look like first names to ``gender_guesser`` or recur in real-person model names
#: but are common vocabulary on CivitAI (tags, styles, gender words, model boilerplate). They
#: are never treated as personal names. Curated by hand: a word is added only when it is a
#: common English word or platform term, never because a real person carries it.
COMMON_WORDS: frozenset[str] = frozenset("""
woman women man men girl girls boy boys female male lady ladies guy guys person people
human character characters celebrity celebrities real realistic photorealistic photo
photography portrait face body model models lora locon lycoris loha lokr dora lyco
hypernetwork embedding textual inversion checkpoint merge style styles concept concepts
clothing outfit pose poses anime cartoon art artist artwork illustration painting drawing
sd sdxl xl pony flux base version v beta alpha final trained training dataset
angel rose ruby jade amber summer may april june august autumn winter spring grace hope
faith joy dawn daisy poppy lily ivy iris violet holly pearl crystal candy cherry honey sky
star stars sunny storm rain snow river forest ocean sea sun moon light dark shadow night day
red blue green black white pink purple yellow orange brown grey gray gold silver
cute sexy beautiful pretty hot young old adult teen mature milf asian european american
african latina japanese korean chinese indian russian french german british
queen king princess prince goddess witch elf demon fairy nurse maid teacher doctor police
actress actor singer idol influencer streamer youtuber cosplay cosplayer instagram tiktok
onlyfans pornstar porn nsfw sfw nude naked sex sexual hentai explicit
""".split())


def _lexicon_terms() -> frozenset[str]:
    """Every word of the marker lexicon (these are vocabulary, never personal names)."""
    words: set[str] = set()
    for terms in load_lexicon().categories.values():
        for term in terms:
            words.update(word_tokens(term))
    return frozenset(words)


#: Two or three capitalised words in a row: the shape of "Firstname Lastname" in a model name.
_CAPITALISED_NAME = re.compile(r"\b[A-Z][^\W\d_]+(?:[ ]+[A-Z][^\W\d_]+){1,2}\b")


def as_list(value: object) -> list[str]:
    """A list cell (list, numpy array, None or NaN) as a Python list of strings."""
    if value is None or isinstance(value, float):
        return []
    return [str(v) for v in value if v is not None]


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters in a text (digits, underscores and punctuation separate)."""
    return re.findall(r"[^\W\d_]+", str(text).lower())


def is_first_name(token: str) -> bool:
    """Whether the labelling stage's gender detector knows ``token`` as a first name."""
    return first_name_gender(token) != "unknown"


@dataclass(frozen=True)
class PersonalNameFilter:
    """Decides whether a tag or prompt term is (part of) a personal name.

    Built from the models table (:func:`personal_name_filter`). The name sets are kept out of
    ``repr`` so that showing the filter in a notebook never prints a name.
    """

    name_tokens: frozenset[str] = field(repr=False)
    name_phrases: frozenset[str] = field(repr=False)
    common_words: frozenset[str] = field(repr=False)

    def __call__(self, term: str) -> bool:
        return self.is_personal_name(term)

    def is_personal_name(self, term: str) -> bool:
        """True when ``term`` is a real-person model's name, contains one of its name tokens,
        or contains a first name that is not common vocabulary. Errs toward excluding."""
        text = " ".join(word_tokens(term))
        if not text or text in self.common_words:
            return False
        if text in self.name_phrases:
            return True
        for token in text.split():
            if token in self.common_words:
                continue
            if token in self.name_tokens or is_first_name(token):
                return True
        return False

    def summary(self) -> dict[str, int]:
        """Sizes of the sets (safe to show)."""
        return {"name_tokens": len(self.name_tokens), "name_phrases": len(self.name_phrases),
                "common_words": len(self.common_words)}


def personal_name_filter(models: pd.DataFrame, min_models: int = 5,
                         max_real_person_share: float = 0.3) -> PersonalNameFilter:
    """A :class:`PersonalNameFilter` from the processed models table.

    * common vocabulary: :data:`COMMON_WORDS`, the marker lexicon, and words that occur in the
      tags or names of at least ``min_models`` models of which at most
      ``max_real_person_share`` depict a real person (so "fantasy" or "realistic" stays
      usable even when ``gender_guesser`` or a model name says otherwise);
    * name phrases: the full names and trigger words of real-person models, lower-cased,
      unless made of common words only;
    * name tokens: the words (3+ letters) of those names and trigger words that are not common
      vocabulary, and the words used mostly by real-person models (in tags or names); plus,
      in the names of *all* models, capitalised two/three-word sequences
      that start with a first name ("Firstname Lastname"), for people the labels missed.

    A first name known to ``gender_guesser`` that is not common vocabulary is always treated
    as a name, so the filter errs toward removing a harmless word rather than keeping a name.
    """
    curated = COMMON_WORDS | _lexicon_terms()
    is_rp = as_bool(models["is_real_person"]).to_numpy()

    # Per word: in how many models (tags or name) it occurs, and how many of them depict people.
    word_models: dict[str, list[int]] = {}
    for rp, name, tags in zip(is_rp, models["name"], models["tags"]):
        words = set(word_tokens(name or ""))
        for tag in as_list(tags):
            words.update(word_tokens(tag))
        for w in words:
            counts = word_models.setdefault(w, [0, 0])
            counts[0] += 1
            counts[1] += int(rp)
    data_common = {w for w, (n, n_rp) in word_models.items()
                   if n >= min_models and n_rp / n <= max_real_person_share}
    common = curated | data_common

    phrases: set[str] = set()
    tokens: set[str] = set()
    rp_models = models[is_rp]
    trigger = (rp_models["trigger_words"] if "trigger_words" in rp_models
               else pd.Series([None] * len(rp_models), index=rp_models.index, dtype=object))
    for name, words in zip(rp_models["name"], trigger):
        for text in [name or "", *as_list(words)]:
            toks = word_tokens(text)
            if toks and not set(toks) <= common:
                phrases.add(" ".join(toks))
            tokens.update(t for t in toks if len(t) >= 3 and t not in common)
    # Words mostly used by real-person models (in their tags, too) and not common vocabulary:
    # the names a model's title may not repeat (e.g. a checkpoint tagged with its subject).
    tokens.update(w for w, (n, n_rp) in word_models.items()
                  if n_rp / n >= 0.5 and len(w) >= 3 and w not in common)
    for name in models["name"].dropna():
        for match in _CAPITALISED_NAME.findall(str(name)):
            toks = word_tokens(match)
            if toks and toks[0] not in common and is_first_name(toks[0]):
                phrases.add(" ".join(toks))
                tokens.update(t for t in toks if len(t) >= 3 and t not in common)
    return PersonalNameFilter(frozenset(tokens), frozenset(phrases), frozenset(common))
