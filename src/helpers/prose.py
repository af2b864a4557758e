"""Interpretive sentences generated from the numbers: direction and size computed, never typed.

A sentence of the paper's Discussion or of a notebook's "what it means" paragraph that says a
share *rose* or that an odds ratio is *higher* is only true for the snapshot it was written on.
Here those words are computed from the estimate and its interval, so the prose stays true when
the study runs on another snapshot:

* **Direction.** :func:`direction` turns an estimate with its interval into one of three words:
  up, down, or "no detectable change" / "no detectable difference" when the interval includes the
  value of no change (1 for odds and growth ratios, 0 for differences).
* **Size.** :func:`multiple_words` ("about twice", "about a third"), :func:`share_words`
  ("nearly all", "a minority") and :func:`effect_words` (rank-biserial correlation) put sizes
  in words, from the numbers.
* **Sentences.** Each sentence function reads named numbers (the entries of ``numbers.json``:
  ``value``, ``text``, ``latex`` and ``reason`` when not estimable; :mod:`helpers.paper`) and
  returns a :class:`Sentence` with a Markdown rendering (notebooks display it) and a LaTeX one
  (the paper uses it as a macro, :func:`prose_numbers`). A sentence whose numbers are not
  estimable says so, with the reason.

:func:`image_sentences` and :func:`model_sentences` give a notebook the sentences of its results
object, from the same numbers the paper quotes.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .stats import CONFIDENCE, NOT_ESTIMABLE_TEXT

#: Words of :func:`direction` for a change over time and for a comparison of two groups.
CHANGE: tuple[str, str, str] = ("rose", "fell", "showed no detectable change")
COMPARE: tuple[str, str, str] = ("higher", "lower", "no detectable difference")
#: Number key prefix of the generated sentences (``prose_nsfw_trend`` → ``\ProseNsfwTrend``).
PREFIX = "prose_"
#: A rank test's difference is called detectable below this p-value (the intervals' level).
ALPHA = 1 - CONFIDENCE

_SLOT = re.compile(r"\{([a-z0-9_]+)\}")
_SMALL_WORDS = ("", "", "twice", "three times", "four times", "five times", "six times",
                "seven times", "eight times", "nine times", "ten times")
_FRACTION_WORDS = ("", "", "half", "a third", "a quarter", "a fifth", "a sixth", "a seventh",
                   "an eighth", "a ninth", "a tenth")


@dataclass(frozen=True, repr=False)
class Sentence:
    """One generated paragraph, as Markdown (notebooks) and as LaTeX (the paper)."""

    markdown: str
    latex: str

    def __repr__(self) -> str:  # a notebook's plain-text view reads the sentence, not its fields
        return self.markdown

    def _repr_markdown_(self) -> str:  # a notebook cell displays it as Markdown
        return self.markdown

    def lead(self, label: str) -> "Sentence":
        """The sentence after a bold run-in label ("**What it means.** …")."""
        return Sentence(f"**{label}** {self.markdown}", f"\\textbf{{{_latex_escape(label)}}} {self.latex}")

    def __add__(self, other: "Sentence") -> "Sentence":
        return Sentence(f"{self.markdown} {other.markdown}".strip(), f"{self.latex} {other.latex}".strip())


# --------------------------------------------------------------------------- words from numbers
def direction(estimate: float | None, low: float | None, high: float | None, null: float = 1.0,
              words: tuple[str, str, str] = CHANGE) -> str | None:
    """``words[0]`` when the interval lies above ``null``, ``words[1]`` below it, ``words[2]``
    when it includes it; None when any of the three is missing."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (estimate, low, high)):
        return None
    if float(low) > null:
        return words[0]
    if float(high) < null:
        return words[1]
    return words[2]


def multiple_words(ratio: float) -> str:
    """A ratio in words, to be followed by "as ... as": "about twice", "about one and a half
    times", "about as", "about half", "more than ten times", "less than a tenth"."""
    if ratio <= 0 or math.isnan(ratio):
        raise ValueError(f"a ratio must be positive, not {ratio}")
    if 1 / 1.15 < ratio < 1.15:
        return "about as"
    if ratio >= 1:
        if ratio < 1.75:
            return "about one and a half times"
        n = round(ratio)
        return f"about {_SMALL_WORDS[n]}" if n <= 10 else "more than ten times"
    inverse = 1 / ratio
    if inverse < 1.75:
        return "about two thirds"
    n = round(inverse)
    return f"about {_FRACTION_WORDS[n]}" if n <= 10 else "less than a tenth"


def share_words(share: float, low: float | None = None, high: float | None = None) -> str:
    """A share as a quantifier: "nearly all", "the great majority", "a majority", "about half",
    "a minority", "a small minority", "very few". "A majority" and "a minority" need the
    interval (when given) on their side of one half."""
    low = share if low is None else low
    high = share if high is None else high
    if share >= 0.95:
        return "nearly all"
    if share >= 0.8:
        return "the great majority"
    if low > 0.5:
        return "a majority"
    if high >= 0.5 and low <= 0.5:
        return "about half"
    if share >= 0.2:
        return "a minority"
    if share >= 0.05:
        return "a small minority"
    return "very few"


def effect_words(rank_biserial: float) -> str:
    """Size of a rank-biserial correlation: negligible (< 0.1), small (< 0.3), moderate (< 0.5)
    or large."""
    r = abs(rank_biserial)
    return "negligible" if r < 0.1 else "small" if r < 0.3 else "moderate" if r < 0.5 else "large"


# --------------------------------------------------------------------------- rendering
def _latex_escape(text: str) -> str:
    from .paper import latex_escape  # the paper's one escaping rule

    return latex_escape(text)


def render(template: str, numbers: Mapping[str, dict], words: Mapping[str, str] | None = None) -> Sentence:
    """Fill ``{key}`` slots from ``words`` (literal text) or from ``numbers`` (their ``text``
    for Markdown, their ``latex`` for LaTeX); the template's own text is escaped for LaTeX."""
    words = dict(words or {})
    md, tex = [], []
    for i, part in enumerate(_SLOT.split(template)):
        if i % 2 == 0:
            md.append(part)
            tex.append(_latex_escape(part))
        elif part in words:
            md.append(words[part])
            tex.append(_latex_escape(words[part]))
        else:
            md.append(numbers[part]["text"])
            tex.append(numbers[part]["latex"])
    return Sentence("".join(md), "".join(tex))


def why_missing(numbers: Mapping[str, dict], *keys: str) -> str | None:
    """Why a sentence cannot be written: the first key this run lacks or could not estimate."""
    for key in keys:
        if key not in numbers:
            return f"this run has no {key.replace('_', ' ')}"
        if numbers[key].get("value") is None:
            return numbers[key].get("reason") or f"{key.replace('_', ' ')} is {NOT_ESTIMABLE_TEXT}"
    return None


def not_estimable(subject: str, reason: str, where: str = "on this snapshot") -> Sentence:
    """"<subject> is not estimable <where>: <reason>." """
    text = f"{subject} is {NOT_ESTIMABLE_TEXT} {where}: {reason}.".replace("  ", " ")
    return Sentence(text, _latex_escape(text))


def value(numbers: Mapping[str, dict], key: str) -> float:
    """The raw value of a number."""
    return float(numbers[key]["value"])


def _interval(key: str) -> str:
    """Template of a number with its interval: ``{key} ({confidence_level} CI {low}–{high})``."""
    return f"{{{key}}} ({{confidence_level}} CI {{{key}_ci_low}}–{{{key}_ci_high}})"


def _inner(key: str) -> str:
    """Template of a number with its interval inside parentheses: ``{key}, {confidence_level}
    CI {low}–{high}``."""
    return f"{{{key}}}, {{confidence_level}} CI {{{key}_ci_low}}–{{{key}_ci_high}}"


def _bounds(numbers: Mapping[str, dict], key: str) -> tuple[float, float, float]:
    return value(numbers, key), value(numbers, f"{key}_ci_low"), value(numbers, f"{key}_ci_high")


def _with_ci(key: str) -> tuple[str, ...]:
    return key, f"{key}_ci_low", f"{key}_ci_high"


def apart(first: tuple[float, float, float], second: tuple[float, float, float]) -> str:
    """How two disjoint groups' shares (estimate, low, high) compare, to be followed by the second
    group: "more often than", "less often than", or "about as often as" (the intervals overlap).
    Intervals that do not overlap mark a difference; overlapping ones are not read as one."""
    if first[1] > second[2]:
        return "more often than"
    if first[2] < second[1]:
        return "less often than"
    return "about as often as"


def share_change(numbers: Mapping[str, dict], prefix: str) -> str | None:
    """Whether a monthly share rose or fell between the first and the last month: only when
    their intervals do not overlap; "showed no detectable change" when they do."""
    keys = [f"{prefix}_{m}{b}" for m in ("first_month", "last_month") for b in ("", "_ci_low", "_ci_high")]
    if why_missing(numbers, *keys):
        return None
    first = [value(numbers, k) for k in keys[:3]]
    last = [value(numbers, k) for k in keys[3:]]
    if last[1] > first[2]:
        return CHANGE[0]
    if last[2] < first[1]:
        return CHANGE[1]
    return CHANGE[2]


# --------------------------------------------------------------------------- image sentences
def nsfw_trend(numbers: Mapping[str, dict]) -> Sentence:
    """Did the NSFW share (level ≥ R) rise, fall or stay, and under which definitions."""
    keys = ("nsfw_trend_r_or", "nsfw_trend_r_or_ci_low", "nsfw_trend_r_or_ci_high")
    why = why_missing(numbers, *keys, "confidence_level")
    if why:
        return not_estimable("A trend of the NSFW share", why)
    verb = direction(*(value(numbers, k) for k in keys))
    change = share_change(numbers, "nsfw_share_r")
    span = ("" if change is None else
            " ({nsfw_share_r_first_month} in {image_first_month}, {nsfw_share_r_last_month} in "
            "{image_last_month})" if verb == CHANGE[2] else
            " from {nsfw_share_r_first_month} in {image_first_month} to {nsfw_share_r_last_month} "
            "in {image_last_month}")
    odds = ("its odds changed by a factor of {nsfw_trend_r_or} a year ({confidence_level} CI "
            "{nsfw_trend_r_or_ci_low}–{nsfw_trend_r_or_ci_high})")
    if verb == CHANGE[2]:
        odds = ("the odds ratio per year, {nsfw_trend_r_or} ({confidence_level} CI "
                "{nsfw_trend_r_or_ci_low}–{nsfw_trend_r_or_ci_high}), includes no change")
    others = {}
    for d in ("platform", "x"):
        k = (f"nsfw_trend_{d}_or", f"nsfw_trend_{d}_or_ci_low", f"nsfw_trend_{d}_or_ci_high")
        others[d] = None if why_missing(numbers, *k) else direction(*(value(numbers, x) for x in k))
    known = {label: v for label, v in (("the platform flag", others["platform"]),
                                       ("level X or harsher", others["x"])) if v is not None}
    same = [name for name, v in known.items() if v == verb]
    differ = [name for name, v in known.items() if v != verb]
    if not known:
        agree = ""
    elif not differ:
        agree = f" The direction is the same under {' and under '.join(same)}."
    elif not same:
        agree = f" Under {' and under '.join(differ)} the direction differs."
    else:
        agree = f" The direction is the same under {same[0]} but not under {differ[0]}."
    return render("The share of images rated R or harsher {verb}" + span + "; " + odds + "." + agree,
                  numbers, {"verb": verb})


def growth(numbers: Mapping[str, dict]) -> Sentence:
    """Is the rise disproportionate: did NSFW images multiply faster than SFW images?"""
    keys = _with_ci("growth_ratio")
    why = why_missing(numbers, *keys, "nsfw_growth_per_year", "sfw_growth_per_year", "confidence_level")
    if why:
        return not_estimable("Whether NSFW images grew faster than SFW images", why)
    ratio, low, high = _bounds(numbers, "growth_ratio")
    verdict = direction(ratio, low, high, words=(
        "faster than SFW images: the rise is disproportionate",
        "more slowly than SFW images: NSFW content lost ground",
        "in step with SFW images: no disproportion is detectable"))
    size = "" if verdict.startswith("in step") else f", {multiple_words(ratio)} as fast"
    return render("NSFW images multiplied {nsfw_growth_per_year}-fold a year and SFW images "
                  "{sfw_growth_per_year}-fold, so NSFW images grew {verdict}{size} (ratio of the "
                  "yearly growth factors " + _inner("growth_ratio") + ").",
                  numbers, {"verdict": verdict, "size": size})


def adapters(numbers: Mapping[str, dict]) -> Sentence:
    """Are images whose prompt calls a LoRA more often NSFW, pooled and within user and month?"""
    keys = (*_with_ci("lora_nsfw_or"), *_with_ci("nsfw_share_with_lora"),
            *_with_ci("nsfw_share_without_lora"), "confidence_level")
    why = why_missing(numbers, *keys)
    if why:
        return not_estimable("Whether images made with adapters are more often NSFW", why)
    pooled = direction(*_bounds(numbers, "lora_nsfw_or"), words=COMPARE)
    first = ("Images whose prompt calls a LoRA are NSFW in {nsfw_share_with_lora} of cases and "
             "other images in {nsfw_share_without_lora}: ")
    first += ("the odds are {pooled} (odds ratio " + _inner("lora_nsfw_or") + ")."
              if pooled != COMPARE[2] else
              "there is {pooled} (odds ratio " + _inner("lora_nsfw_or") + ").")
    out = render(first, numbers, {"pooled": pooled})
    adjusted = _with_ci("lora_nsfw_or_adjusted")
    why = why_missing(numbers, *adjusted)
    if why:
        return out + not_estimable("Within the same user and month, the association", why)
    within = direction(*_bounds(numbers, "lora_nsfw_or_adjusted"), words=COMPARE)
    same = "also" if within == pooled else "however"
    second = ("Comparing images of the same user in the same month, the odds are {same} {within} "
              "(odds ratio " + _inner("lora_nsfw_or_adjusted") + "), so neither who posts nor "
              "when explains the association."
              if within != COMPARE[2] else
              "Comparing images of the same user in the same month, however, there is {within} "
              "(odds ratio " + _inner("lora_nsfw_or_adjusted") + "): the pooled association may "
              "come from who posts and when.")
    return out + render(second, numbers, {"within": within, "same": same})


def real_person_adapters(numbers: Mapping[str, dict]) -> Sentence:
    """Are images that use a real-person adapter (through the link) more often NSFW?"""
    keys = (*_with_ci("nsfw_share_with_rp_adapter"), *_with_ci("nsfw_share_without_rp_adapter"),
            "confidence_level")
    why = why_missing(numbers, *keys)
    if why:
        return not_estimable("The NSFW share of images made with real-person adapters", why)
    with_ = _bounds(numbers, "nsfw_share_with_rp_adapter")
    without = _bounds(numbers, "nsfw_share_without_rp_adapter")
    # The two groups are disjoint: intervals that do not overlap mark a difference.
    verdict = apart(with_, without)
    return render("Images whose resolved adapters include a real-person model are NSFW {verdict} "
                  "other images: " + _interval("nsfw_share_with_rp_adapter") + " against "
                  + _interval("nsfw_share_without_rp_adapter") + ".", numbers, {"verdict": verdict})


def engagement(numbers: Mapping[str, dict]) -> Sentence:
    """Do NSFW images draw more reactions, and how large is the difference?"""
    why = why_missing(numbers, "reactions_rank_biserial", "reactions_p", "reactions_median_nsfw",
                      "reactions_median_sfw")
    if why:
        return not_estimable("The engagement of NSFW against SFW images", why)
    r, p = value(numbers, "reactions_rank_biserial"), value(numbers, "reactions_p")
    lead = ("There is no detectable difference in reactions between NSFW and SFW images" if p >= ALPHA
            else f"NSFW images draw {'more' if r > 0 else 'fewer'} reactions than SFW images, a "
                 f"{effect_words(r)} difference")
    return render("{lead} (median {reactions_median_nsfw} against {reactions_median_sfw}; "
                  "rank-biserial correlation {reactions_rank_biserial}).", numbers, {"lead": lead})


def concentration(numbers: Mapping[str, dict]) -> Sentence:
    """How concentrated posting is, in words."""
    why = why_missing(numbers, "creator_gini", "creator_top_ten_share")
    if why:
        return not_estimable("The concentration of posting", why)
    gini = value(numbers, "creator_gini")
    level = ("highly concentrated" if gini >= 0.6 else "moderately concentrated" if gini >= 0.4
             else "spread fairly evenly")
    return render("Posting is {level}: the Gini coefficient of images per user is {creator_gini} "
                  "and the most active tenth of users post {creator_top_ten_share} of images, so "
                  "every share above weighs heavy posters most.", numbers, {"level": level})


def adapter_uptake(numbers: Mapping[str, dict]) -> Sentence:
    """Did the share of images calling a LoRA rise?"""
    change = share_change(numbers, "lora_share")
    if change is None:
        return not_estimable("A change in adapter use", why_missing(numbers, "lora_share_first_month",
                                                                    "lora_share_last_month") or "")
    return render("The share of images whose prompt calls a LoRA {change}, from "
                  "{lora_share_first_month} in the first month to {lora_share_last_month} in the last.",
                  numbers, {"change": change})


# --------------------------------------------------------------------------- model sentences
def real_person_models(numbers: Mapping[str, dict]) -> Sentence:
    """How many models imitate real people, and is that share changing?"""
    why = why_missing(numbers, *_with_ci("real_person_share"), "confidence_level")
    if why:
        return not_estimable("The share of real-person models", why)
    out = render(_interval("real_person_share") + " of models depict a real person "
                 "({n_real_person} models).", numbers)
    keys = ("real_person_trend_or", "real_person_trend_or_ci_low", "real_person_trend_or_ci_high")
    why = why_missing(numbers, *keys)
    if why:
        return out + not_estimable("A trend of that share", why)
    verb = direction(*(value(numbers, k) for k in keys))
    return out + render("Among new models, that share {verb} over time (odds ratio per year "
                        "{real_person_trend_or}, {confidence_level} CI {real_person_trend_or_ci_low}–"
                        "{real_person_trend_or_ci_high}).", numbers, {"verb": verb})


def gender(numbers: Mapping[str, dict]) -> Sentence:
    """Whom real-person models depict: the female share in words, with its bounds."""
    why = why_missing(numbers, *_with_ci("real_person_female_share"), "confidence_level")
    if why:
        return not_estimable("The depicted gender of real-person models", why)
    share, low, high = _bounds(numbers, "real_person_female_share")
    words = share_words(share, low, high)
    out = render("Where the depicted gender can be told, {words} of real-person models depict "
                 "women: " + _interval("real_person_female_share") + ".", numbers, {"words": words})
    if why_missing(numbers, "female_share_lower", "female_share_upper"):
        return out
    lower = value(numbers, "female_share_lower")
    return out + render("Counting every model of unknown gender as not depicting a woman, the share "
                        "is at least {female_share_lower}, {lower_words} of them.",
                        numbers, {"lower_words": share_words(lower)})


def real_person_nsfw(numbers: Mapping[str, dict]) -> Sentence:
    """Are real-person models more often NSFW than other models, and models of women than of men?"""
    keys = (*_with_ci("real_person_nsfw_or"), "nsfw_share_real_person", "nsfw_share_other_models",
            "confidence_level", "model_nsfw_definition")
    why = why_missing(numbers, *keys)
    if why:
        return not_estimable("Whether real-person models are more often NSFW", why)
    verdict = direction(*_bounds(numbers, "real_person_nsfw_or"), words=COMPARE)
    lead = ("Taking a model as NSFW by its {model_nsfw_definition}, the odds that a real-person model "
            "is NSFW are {verdict} than for other models"
            if verdict != COMPARE[2] else
            "Taking a model as NSFW by its {model_nsfw_definition}, there is {verdict} between "
            "real-person and other models")
    out = render(lead + " ({nsfw_share_real_person} against {nsfw_share_other_models}; odds ratio "
                 + _inner("real_person_nsfw_or") + ").", numbers, {"verdict": verdict})
    f, m = "nsfw_share_real_person_female", "nsfw_share_real_person_male"
    if why_missing(numbers, *_with_ci(f), *_with_ci(m)):
        return out
    fb, mb = _bounds(numbers, f), _bounds(numbers, m)
    by_gender = apart(fb, mb)
    return out + render("Models of women are NSFW {by_gender} models of men: "
                        + _interval(f) + " against " + _interval(m) + ".", numbers,
                        {"by_gender": by_gender})


def downloads(numbers: Mapping[str, dict]) -> Sentence:
    """Are real-person models downloaded more than other models?"""
    why = why_missing(numbers, "downloads_rank_biserial", "downloads_p", "downloads_median_real_person",
                      "downloads_median_other", "real_person_download_share")
    if why:
        return not_estimable("The downloads of real-person models against other models", why)
    r, p = value(numbers, "downloads_rank_biserial"), value(numbers, "downloads_p")
    verdict = ("show no detectable difference in downloads from other models" if p >= ALPHA else
               f"are downloaded {'more' if r > 0 else 'less'} than other models, a {effect_words(r)} "
               "difference")
    return render("Real-person models {verdict} (median {downloads_median_real_person} against "
                  "{downloads_median_other}; rank-biserial correlation {downloads_rank_biserial}); "
                  "they account for {real_person_download_share} of all downloads.",
                  numbers, {"verdict": verdict})


def adapter_models(numbers: Mapping[str, dict]) -> Sentence:
    """Do adapters replace full checkpoints?"""
    why = why_missing(numbers, *_with_ci("adapter_share"), "confidence_level")
    if why:
        return not_estimable("The adapter share of models", why)
    share, low, high = _bounds(numbers, "adapter_share")
    out = render("{words} of models are adapters rather than full checkpoints: "
                 + _interval("adapter_share") + ".", numbers,
                 {"words": share_words(share, low, high).capitalize()})
    change = share_change(numbers, "adapter_share")
    if change is None:
        return out
    return out + render("Among new models the adapter share {change} between the first month "
                        "({adapter_share_first_month}) and the last ({adapter_share_last_month}).",
                        numbers, {"change": change})


# --------------------------------------------------------------------------- study sentences
def real_records(numbers: Mapping[str, dict]) -> Sentence:
    """What the real 2023 records say: real-person share, whom they depict, and, where the
    committed report holds them, the linkage of adapter calls and the NSFW share of showcase
    images that use a real-person adapter against the rest."""
    why = why_missing(numbers, *_with_ci("real_records_real_person_share"),
                      *_with_ci("real_records_female_share"), "confidence_level")
    if why:
        return not_estimable("The real records", why, "here")
    share, low, high = _bounds(numbers, "real_records_female_share")
    out = render("In the real records, the platform flags " + _interval("real_records_real_person_share")
                 + " of {real_records_models} models as depicting a real person; where the "
                 "depicted gender of those models can be told, {words} depict women: "
                 + _interval("real_records_female_share") + ".", numbers,
                 {"words": share_words(share, low, high)})
    keys = ("real_records_calls_found", "real_records_calls_resolved_share",
            "real_records_calls_ambiguous_share")
    why = why_missing(numbers, *keys)
    out += (not_estimable("The linkage of adapter calls on these records", why, "here") if why else render(
        "Of {real_records_calls_found} adapter calls in showcase prompts, "
        "{real_records_calls_resolved_share} resolve to exactly one model of the records and "
        "{real_records_calls_ambiguous_share} are ambiguous.", numbers))
    keys = (*_with_ci("real_records_nsfw_with_rp_adapter"), *_with_ci("real_records_nsfw_without_rp_adapter"))
    why = why_missing(numbers, *keys)
    if why:
        return out + not_estimable("The NSFW share of showcase images by real-person adapter use", why, "here")
    with_ = _bounds(numbers, "real_records_nsfw_with_rp_adapter")
    without = _bounds(numbers, "real_records_nsfw_without_rp_adapter")
    verdict = apart(with_, without)
    return out + render(
        "Showcase images that use a real-person adapter are NSFW {verdict} the rest: "
        + _interval("real_records_nsfw_with_rp_adapter") + " against "
        + _interval("real_records_nsfw_without_rp_adapter") + ".", numbers, {"verdict": verdict})


def comparison_basis(numbers: Mapping[str, dict], synthetic: bool) -> Sentence:
    """What the comparison with published figures can show on this build."""
    if synthetic:
        text = ("This build runs on the synthetic sample, whose monthly NSFW shares were planted "
                "from the Civiverse-6M card: their agreement with the card is by construction and "
                "is no evidence about CivitAI; it only shows that the pipeline recovers what it was "
                "given.")
    else:
        text = ("Our numbers come from the snapshot named above; published figures are treated as "
                "fixed, so the intervals of the differences carry only our sampling error.")
    return Sentence(text, _latex_escape(text))


#: Sentences of each results object, by name (``prose_<name>`` in ``numbers.json``).
IMAGE_SENTENCES: dict[str, Callable[[Mapping[str, dict]], Sentence]] = {
    "nsfw_trend": nsfw_trend, "growth": growth, "adapters": adapters, "adapter_uptake": adapter_uptake,
    "real_person_adapters": real_person_adapters, "engagement": engagement,
    "concentration": concentration,
}
MODEL_SENTENCES: dict[str, Callable[[Mapping[str, dict]], Sentence]] = {
    "adapter_models": adapter_models, "real_person_models": real_person_models, "gender": gender,
    "real_person_nsfw": real_person_nsfw, "downloads": downloads,
}


def prose_entry(sentence: Sentence) -> dict[str, Any]:
    """A sentence as a ``numbers.json`` entry of kind text: ``text`` Markdown, ``latex`` LaTeX."""
    return {"value": sentence.markdown, "kind": "text", "text": sentence.markdown, "latex": sentence.latex}


def prose_numbers(numbers: Mapping[str, dict], synthetic: bool) -> dict[str, dict]:
    """Every generated sentence the paper uses, as named entries (``prose_<name>``): those of
    the image and model numbers present, the real records' and the comparison's basis."""
    out: dict[str, dict] = {}
    if "n_images" in numbers:
        out.update({PREFIX + k: prose_entry(f(numbers)) for k, f in IMAGE_SENTENCES.items()})
    if "n_models" in numbers:
        out.update({PREFIX + k: prose_entry(f(numbers)) for k, f in MODEL_SENTENCES.items()})
    out[PREFIX + "real_records"] = prose_entry(real_records(numbers))
    out[PREFIX + "comparison_basis"] = prose_entry(comparison_basis(numbers, synthetic))
    return out


def image_sentences(results: Any) -> dict[str, Sentence]:
    """The sentences of notebook 03's results (:class:`~helpers.analyse.ImageResults`)."""
    from . import paper

    numbers = {**paper.image_numbers(results), **paper.method_numbers()}
    return {k: f(numbers) for k, f in IMAGE_SENTENCES.items()}


def model_sentences(results: Any) -> dict[str, Sentence]:
    """The sentences of notebook 04's results (:class:`~helpers.analyse.ModelResults`)."""
    from . import paper

    numbers = {**paper.model_numbers(results), **paper.method_numbers()}
    return {k: f(numbers) for k, f in MODEL_SENTENCES.items()}
