"""Generated interpretive sentences: direction and size come from the numbers, so a sentence flips
when the planted effect flips, and says "no detectable change" when the interval includes none."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import analyse, paper, prose

from test_analyse import make_models, write_images


# --------------------------------------------------------------------------- words
@pytest.mark.parametrize("estimate, low, high, want", [
    (1.5, 1.2, 1.9, "rose"), (0.6, 0.5, 0.8, "fell"), (1.1, 0.9, 1.3, "showed no detectable change"),
    (0.97, 0.8, 1.0, "showed no detectable change"), (None, 0.8, 1.2, None)])
def test_direction_reads_the_interval(estimate, low, high, want):
    assert prose.direction(estimate, low, high) == want


def test_direction_of_a_difference_and_of_a_comparison():
    assert prose.direction(2.0, 0.5, 3.5, null=0.0, words=prose.COMPARE) == "higher"
    assert prose.direction(-2.0, -3.5, -0.5, null=0.0, words=prose.COMPARE) == "lower"
    assert prose.direction(0.2, -0.5, 0.9, null=0.0, words=prose.COMPARE) == "no detectable difference"


@pytest.mark.parametrize("ratio, want", [
    (1.0, "about as"), (1.4, "about one and a half times"), (2.1, "about twice"),
    (3.2, "about three times"), (14.0, "more than ten times"), (0.5, "about half"),
    (0.32, "about a third"), (0.05, "less than a tenth")])
def test_multiple_words(ratio, want):
    assert prose.multiple_words(ratio) == want


@pytest.mark.parametrize("share, low, high, want", [
    (0.97, 0.95, 0.99, "nearly all"), (0.85, 0.8, 0.9, "the great majority"),
    (0.6, 0.55, 0.65, "a majority"), (0.52, 0.45, 0.6, "about half"), (0.3, 0.25, 0.35, "a minority"),
    (0.1, 0.08, 0.12, "a small minority"), (0.01, 0.0, 0.02, "very few")])
def test_share_words(share, low, high, want):
    assert prose.share_words(share, low, high) == want


def test_sentences_render_markdown_and_latex_from_the_same_numbers():
    numbers = {"a": paper.entry(0.42, "percent"), "b": paper.entry(1.5, "float", 2)}
    s = prose.render("{a} of X & {word} {b}", numbers, {"word": "≥"})
    assert s.markdown == "42.0% of X & ≥ 1.50"
    assert s.latex == r"42.0\% of X \& $\geq$ 1.50"
    assert s._repr_markdown_() == s.markdown
    assert s.lead("What it means.").markdown.startswith("**What it means.** 42.0%")


def test_a_missing_or_not_estimable_number_gives_its_reason():
    why = analyse.NotEstimable("one month only: no trend")
    numbers = {"nsfw_trend_r_or": paper.entry(why, "float", 2),
               "nsfw_trend_r_or_ci_low": paper.entry(why, "float", 2),
               "nsfw_trend_r_or_ci_high": paper.entry(why, "float", 2),
               **paper.method_numbers()}
    s = prose.nsfw_trend(numbers)
    assert "not estimable" in s.markdown and "one month only" in s.markdown
    assert "this run has no growth ratio" in prose.growth(paper.method_numbers()).markdown


# --------------------------------------------------------------------------- a planted effect flips
def _odds(low: float, high: float, estimate: float) -> dict[str, dict]:
    return {"lora_nsfw_or": paper.entry(estimate, "float", 2),
            "lora_nsfw_or_ci_low": paper.entry(low, "float", 2),
            "lora_nsfw_or_ci_high": paper.entry(high, "float", 2)}


def test_the_adapter_sentence_follows_the_odds_ratio():
    base = {"nsfw_share_with_lora": paper.entry(0.6, "percent"),
            "nsfw_share_with_lora_ci_low": paper.entry(0.55, "percent"),
            "nsfw_share_with_lora_ci_high": paper.entry(0.65, "percent"),
            "nsfw_share_without_lora": paper.entry(0.4, "percent"),
            "nsfw_share_without_lora_ci_low": paper.entry(0.35, "percent"),
            "nsfw_share_without_lora_ci_high": paper.entry(0.45, "percent"), **paper.method_numbers()}
    assert "odds are higher" in prose.adapters({**base, **_odds(1.8, 2.6, 2.2)}).markdown
    assert "odds are lower" in prose.adapters({**base, **_odds(0.3, 0.6, 0.45)}).markdown
    assert "no detectable difference" in prose.adapters({**base, **_odds(0.8, 1.3, 1.0)}).markdown


def _planted_images(root: Path, nsfw_path: np.ndarray, lora_boost: float) -> Path:
    """A small processed images table whose NSFW share follows ``nsfw_path`` month by month and
    whose images with a LoRA call are NSFW ``lora_boost`` more often (a share difference)."""
    rng = np.random.default_rng(11)
    months = [f"2023-{m:02d}" for m in range(1, 13)]
    recs = []
    for i in range(3600):
        m = i % 12
        lora = rng.random() < 0.4
        p = float(np.clip(nsfw_path[m] + (lora_boost if lora else 0.0), 0.02, 0.98))
        nsfw = rng.random() < p
        recs.append({"month": months[m], "level": "X" if nsfw else "PG", "n_lora": int(lora),
                     "prompt": "masterpiece, nude" if nsfw else "masterpiece, landscape",
                     "reaction_count": int(rng.poisson(3)), "user_hash": f"u{i % 400:04d}"})
    return write_images(root / "images.parquet", recs)


def _sentences(root: Path, nsfw_path: np.ndarray, lora_boost: float) -> dict[str, prose.Sentence]:
    images = _planted_images(root, nsfw_path, lora_boost)
    models = make_models([{"name": f"Style {i}"} for i in range(20)])
    results = analyse.image_results(images, models, boot_replicates=50)
    return prose.image_sentences(results)


def test_sentences_flip_with_a_planted_effect(tmp_path: Path):
    """A rising NSFW path with LoRA images more often NSFW, then the same sample with the path
    falling and LoRA images less often NSFW: the generated sentences say rose/higher, then
    fell/lower, and a flat path with no adapter effect says neither."""
    rising, falling = np.linspace(0.2, 0.7, 12), np.linspace(0.7, 0.2, 12)
    (tmp_path / "up").mkdir(), (tmp_path / "down").mkdir(), (tmp_path / "flat").mkdir()
    up = _sentences(tmp_path / "up", rising, +0.2)
    down = _sentences(tmp_path / "down", falling, -0.2)
    flat = _sentences(tmp_path / "flat", np.full(12, 0.45), 0.0)

    assert "rated R or harsher rose" in up["nsfw_trend"].markdown
    assert "rated R or harsher fell" in down["nsfw_trend"].markdown
    assert "no detectable change" in flat["nsfw_trend"].markdown
    assert "the odds are higher" in up["adapters"].markdown
    assert "the odds are lower" in down["adapters"].markdown
    assert "there is no detectable difference" in flat["adapters"].markdown
    assert "faster than SFW images" in up["growth"].markdown
    assert "more slowly than SFW images" in down["growth"].markdown
    # The LaTeX rendering carries the same words.
    assert "rose" in up["nsfw_trend"].latex and "fell" in down["nsfw_trend"].latex


def test_the_trend_sentence_names_the_definitions_that_agree():
    def trend(prefix: str, low: float, high: float) -> dict[str, dict]:
        return {f"nsfw_trend_{prefix}_or": paper.entry((low + high) / 2, "float", 2),
                f"nsfw_trend_{prefix}_or_ci_low": paper.entry(low, "float", 2),
                f"nsfw_trend_{prefix}_or_ci_high": paper.entry(high, "float", 2)}

    base = {**paper.method_numbers(), **trend("r", 1.5, 2.5)}
    both = prose.nsfw_trend({**base, **trend("platform", 1.2, 1.9), **trend("x", 1.1, 3.0)}).markdown
    assert "rose" in both and "same under the platform flag and under level X or harsher" in both
    split = prose.nsfw_trend({**base, **trend("platform", 1.2, 1.9), **trend("x", 0.4, 0.8)}).markdown
    assert "same under the platform flag but not under level X or harsher" in split
    alone = prose.nsfw_trend(base).markdown  # the other definitions are not in this run
    assert "rose" in alone and "direction" not in alone
