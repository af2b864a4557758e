"""Moderation rules simulated on the labelled tables: how much harmful content each removes, how
much other content it takes with it, and whom it touches (notebook 05).

A *rule* is a run parameter (``moderation_rules``): a name, a human label, a unit (``image`` or
``model``) and a predicate written in a tiny declared vocabulary of boolean flags
(:data:`IMAGE_FLAGS`, :data:`MODEL_FLAGS`) combined with ``and``, ``or``, ``not`` and brackets.
The predicate is parsed here and compiled to SQL from the vocabulary's own expressions, so no
text from a parameter file ever reaches the database; an unknown word is refused with the valid
ones (:class:`RuleError`). An image rule removes the images it matches; a model rule de-lists the
models it matches and so removes every image linked to one of them.

*Harm* is declared once (:data:`HARM_CATEGORIES`): NSFW images made with a real-person adapter,
and NSFW images whose prompt carries a minor-coded marker. Each rule's harm removed is the share
of harmful images it removes; its *collateral* is the share of all other images it removes.

Intervals carry two sources of error. Users: a few users post most images, so users are
resampled (the Poisson cluster bootstrap of :mod:`.users`). Labels: where a model's real-person
label is a prediction (the snapshot lacks the platform's ``poi`` flag), whether an image *truly*
used a real-person adapter is uncertain. Each replicate redraws the classifier's sensitivity and
specificity from the validation counts (binomial, as :func:`.real_person.rogan_gladen`), corrects
the prevalence among predicted-label adapters, and gives every image the probability that one of
its adapters truly depicts a real person (from the positive and negative predictive values).
The rule acts on the labels as they are (as a platform's filter would); harm is counted on the
corrected truth. Marker precision is carried the same way when a validation of the markers
supplies it. Everything is computed on a small aggregate (user × flag pattern), never on rows.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse

from .. import db
from ..schema import MARKERS
from ..stats import CONFIDENCE, NotEstimable, wilson_interval
from .common import flag_column
from .results import Results
from .users import count_matrix, poisson_weights

# --------------------------------------------------------------------------- vocabulary
#: Units a rule can act on.
RULE_UNITS: tuple[str, ...] = ("image", "model")
#: Keys of a rule, all required.
RULE_KEYS: tuple[str, ...] = ("name", "label", "unit", "predicate")
#: Image flags a rule may name, with their meaning.
IMAGE_FLAGS: dict[str, str] = {
    "nsfw": "the image is NSFW under the run's headline definition",
    "nsfw_x": "the image is rated X or harsher",
    "adapter": "the prompt calls an adapter (<lora:…> and kin)",
    "real_person_adapter": "the image uses a resolved adapter labelled as depicting a real person",
    "female_real_person_adapter": "the image uses a resolved adapter depicting a real woman",
    "minor_marker": "the prompt carries a minor-coded marker",
    "sexual_marker": "the prompt carries a sexual-terms marker",
    "real_person_cue": "the prompt carries a real-person cue",
    "booru_tags": "the prompt is written in booru tags",
    "pony_tokens": "the prompt carries Pony quality or rating tokens",
}
#: Model flags a rule may name, with their meaning.
MODEL_FLAGS: dict[str, str] = {
    "nsfw": "the model is NSFW under the run's headline definition",
    "nsfw_x": "the model is rated X or harsher",
    "adapter": "the model is an adapter (any type but a checkpoint)",
    "real_person": "the model is labelled as depicting a real person",
    "female": "the model's depicted gender is female",
    "minor_marker": "the model's text carries a minor-coded marker",
    "sexual_marker": "the model's text carries a sexual-terms marker",
}
FLAGS: dict[str, dict[str, str]] = {"image": IMAGE_FLAGS, "model": MODEL_FLAGS}
_KEYWORDS = ("and", "or", "not")
_TOKEN_RE = re.compile(r"\s*(?:(\()|(\))|([A-Za-z_][A-Za-z0-9_]*)|(\S))")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")

#: Harm categories: name → (label, definition). Both are NSFW images; any harm is either.
HARM_CATEGORIES: dict[str, tuple[str, str]] = {
    "real_person_nsfw": ("real-person ∧ NSFW",
                         "NSFW image made with an adapter that depicts a real person"),
    "minor_nsfw": ("minor-coded ∧ NSFW", "NSFW image whose prompt carries a minor-coded marker"),
}
ANY_HARM = "any_harm"
ANY_HARM_LABEL = "any harm"
#: Adapters per image counted separately by label when carrying label error (more are pooled).
MAX_ADAPTERS = 3


class RuleError(ValueError):
    """A moderation rule is malformed or names a flag outside the declared vocabulary."""


@dataclass(frozen=True)
class Rule:
    """One moderation rule: what it is called, what it acts on and when."""

    name: str
    label: str
    unit: str
    predicate: str
    tree: tuple

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "unit": self.unit,
                "predicate": self.predicate}


# --------------------------------------------------------------------------- predicates
def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            break
        if match.group(4) is not None:
            raise RuleError(f"unexpected character {match.group(4)!r} in predicate {text!r}; "
                            "use flag names, and, or, not and brackets")
        out.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    return out


def parse_predicate(text: str, unit: str) -> tuple:
    """The predicate ``text`` as a tree of ``("flag", name)``, ``("not", x)``, ``("and", a, b)``
    and ``("or", a, b)``; every flag must be one of ``unit``'s vocabulary."""
    if unit not in FLAGS:
        raise RuleError(f"unknown unit {unit!r}; valid: {', '.join(RULE_UNITS)}")
    if not isinstance(text, str) or not text.strip():
        raise RuleError("empty predicate")
    vocabulary = FLAGS[unit]
    tokens = _tokens(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise RuleError(f"predicate {text!r} ends too early")
        pos += 1
        return tokens[pos - 1]

    def expression() -> tuple:
        node = term()
        while peek() == "or":
            take()
            node = ("or", node, term())
        return node

    def term() -> tuple:
        node = factor()
        while peek() == "and":
            take()
            node = ("and", node, factor())
        return node

    def factor() -> tuple:
        token = take()
        if token == "not":
            return ("not", factor())
        if token == "(":
            node = expression()
            if take() != ")":
                raise RuleError(f"unbalanced brackets in predicate {text!r}")
            return node
        if token in _KEYWORDS or token == ")":
            raise RuleError(f"unexpected {token!r} in predicate {text!r}")
        if token not in vocabulary:
            raise RuleError(f"unknown {unit} flag {token!r} in predicate {text!r}; valid {unit} "
                            f"flags: {', '.join(vocabulary)}")
        return ("flag", token)

    tree = expression()
    if pos != len(tokens):
        raise RuleError(f"unexpected {tokens[pos]!r} in predicate {text!r}")
    return tree


def predicate_sql(tree: tuple, columns: Mapping[str, str]) -> str:
    """SQL of a parsed predicate, each flag replaced by its declared expression."""
    kind = tree[0]
    if kind == "flag":
        return f"({columns[tree[1]]})"
    if kind == "not":
        return f"(NOT {predicate_sql(tree[1], columns)})"
    op = "AND" if kind == "and" else "OR"
    return f"({predicate_sql(tree[1], columns)} {op} {predicate_sql(tree[2], columns)})"


def predicate_flags(tree: tuple) -> set[str]:
    """The flags a parsed predicate names."""
    return {tree[1]} if tree[0] == "flag" else set().union(*(predicate_flags(t) for t in tree[1:]))


def validate_rules(rules: Any) -> list[Rule]:
    """Checked rules from the ``moderation_rules`` parameter (a list of mappings); raises
    :class:`RuleError` naming the rule and what is wrong."""
    if not isinstance(rules, (list, tuple)):
        raise RuleError("moderation_rules must be a list of rules "
                        "({name, label, unit, predicate})")
    out: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(rules):
        if not isinstance(raw, Mapping):
            raise RuleError(f"rule {i + 1} is not a mapping with keys {', '.join(RULE_KEYS)}")
        missing = [k for k in RULE_KEYS if k not in raw]
        extra = sorted(set(raw) - set(RULE_KEYS))
        where = f"rule {raw.get('name', i + 1)!r}"
        if missing or extra:
            raise RuleError(f"{where}: " + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown key(s) {', '.join(extra)}"] if extra else []))
                + f" (a rule has exactly {', '.join(RULE_KEYS)})")
        name, label, unit = (str(raw[k]) for k in ("name", "label", "unit"))
        if not _NAME_RE.fullmatch(name):
            raise RuleError(f"{where}: name must be lower-case letters, digits and _ (≤ 40)")
        if name in seen:
            raise RuleError(f"{where}: the name is used twice")
        if not label.strip():
            raise RuleError(f"{where}: empty label")
        try:
            tree = parse_predicate(raw["predicate"], unit)
        except RuleError as exc:
            raise RuleError(f"{where}: {exc}") from None
        seen.add(name)
        out.append(Rule(name, label.strip(), unit, str(raw["predicate"]).strip(), tree))
    if not out:
        raise RuleError("moderation_rules is empty: declare at least one rule")
    return out


def vocabulary_table() -> pd.DataFrame:
    """The flags a rule may name, per unit, with their meaning (shown in notebook 05)."""
    return pd.DataFrame([{"unit": unit, "flag": flag, "meaning": meaning}
                         for unit, flags in FLAGS.items() for flag, meaning in flags.items()])


def harm_table() -> pd.DataFrame:
    """The declared harm categories (shown in notebook 05)."""
    return pd.DataFrame([{"category": k, "label": label, "definition": definition}
                         for k, (label, definition) in HARM_CATEGORIES.items()])


# --------------------------------------------------------------------------- SQL
def _bool(column: str) -> str:
    return f"coalesce({column}, false)"


def image_flag_sql(definition: str) -> dict[str, str]:
    """Each image flag as SQL over the images (``i``) and their adapter summary (``a``)."""
    return {
        "nsfw": _bool(f"i.{flag_column(definition)}"),
        "nsfw_x": _bool("i.is_nsfw_x"),
        "adapter": "coalesce(i.n_lora, 0) > 0",
        "real_person_adapter": _bool("a.real_person_adapter"),
        "female_real_person_adapter": _bool("a.female_real_person_adapter"),
        "minor_marker": _bool(f"i.{MARKERS['minor']}"),
        "sexual_marker": _bool(f"i.{MARKERS['sexual']}"),
        "real_person_cue": _bool(f"i.{MARKERS['real_person']}"),
        "booru_tags": _bool(f"i.{MARKERS['booru']}"),
        "pony_tokens": _bool(f"i.{MARKERS['pony']}"),
    }


def model_flag_sql(definition: str) -> dict[str, str]:
    """Each model flag as SQL over the models (``m``)."""
    return {
        "nsfw": _bool(f"m.{flag_column(definition)}"),
        "nsfw_x": _bool("m.is_nsfw_x"),
        "adapter": _bool("m.is_adapter"),
        "real_person": _bool("m.is_real_person"),
        "female": "coalesce(m.depicted_gender = 'female', false)",
        "minor_marker": _bool(f"m.{MARKERS['minor']}"),
        "sexual_marker": _bool(f"m.{MARKERS['sexual']}"),
    }


def _adapter_summary_sql(links: Path, models: Path) -> str:
    """Per image: whether a resolved adapter is labelled real person (and a woman), whether one
    is a real person by the platform's own flag (exact), and how many predicted-label adapters
    are labelled real person (``p``) or not (``q``), capped at :data:`MAX_ADAPTERS`."""
    real = _bool("m.is_real_person")
    predicted = "coalesce(m.real_person_source = 'predicted', false)"
    return f"""
        SELECT l.image_id,
               bool_or({real}) AS real_person_adapter,
               bool_or({real} AND coalesce(m.depicted_gender = 'female', false)) AS female_real_person_adapter,
               bool_or({real} AND NOT {predicted}) AS rp_exact,
               least(count(DISTINCT l.model_id) FILTER (WHERE {real} AND {predicted}), {MAX_ADAPTERS}) AS p,
               least(count(DISTINCT l.model_id) FILTER (WHERE NOT {real} AND {predicted}), {MAX_ADAPTERS}) AS q
        FROM {db.table_sql(links)} l JOIN {db.table_sql(models)} m ON m.model_id = l.model_id
        WHERE l.kind = 'adapter' GROUP BY l.image_id"""


@dataclass(frozen=True)
class RuleCounts:
    """What the SQL pass gives: per user and flag pattern the images (``cells``), the models
    each rule touches, and the predicted-label adapters (for the prevalence of the label)."""

    cells: pd.DataFrame
    models_touched: dict[str, int]
    models_delisted: dict[str, int | None]
    predicted_adapters: int
    predicted_adapters_positive: int
    users: int
    images: int


def rule_counts(images: Path, links: Path | None, models: Path | None, rules: Sequence[Rule],
                definition: str = "r", con: duckdb.DuckDBPyConnection | None = None) -> RuleCounts:
    """One pass over the images (and their links) giving the small aggregate every rule
    statistic is computed from. Without a link or models table no image has a real-person
    adapter and model rules remove nothing (the caller says so)."""
    con = db.connection_or_default(con)
    have_links = links is not None and models is not None and Path(links).exists() and Path(models).exists()
    image_cols = image_flag_sql(definition)
    model_cols = model_flag_sql(definition)
    table = f"interventions_{uuid.uuid4().hex}"
    joins, rule_cols, delisted_views = [], [], {}
    if have_links:
        joins.append(f"LEFT JOIN ({_adapter_summary_sql(links, models)}) a ON a.image_id = i.image_id")
        adapter = ("coalesce(a.rp_exact, false)", "coalesce(a.p, 0)", "coalesce(a.q, 0)")
    else:
        joins.append("LEFT JOIN (SELECT NULL::BIGINT AS image_id, NULL::BOOLEAN AS real_person_adapter, "
                     "NULL::BOOLEAN AS female_real_person_adapter) a ON false")
        adapter = ("false", "0", "0")
    for k, rule in enumerate(rules):
        if rule.unit == "image":
            rule_cols.append(f"{predicate_sql(rule.tree, image_cols)} AS r{k}")
        elif have_links:
            removed = (f"SELECT model_id FROM {db.table_sql(models)} m "
                       f"WHERE {predicate_sql(rule.tree, model_cols)}")
            delisted_views[k] = removed
            joins.append(f"LEFT JOIN (SELECT DISTINCT l.image_id FROM {db.table_sql(links)} l "
                         f"WHERE l.model_id IN ({removed})) h{k} ON h{k}.image_id = i.image_id")
            rule_cols.append(f"h{k}.image_id IS NOT NULL AS r{k}")
        else:
            rule_cols.append(f"false AS r{k}")
    con.execute(f"""
        CREATE TEMP TABLE {table} AS
        SELECT i.image_id, coalesce(i.user_hash, 'image:' || CAST(i.image_id AS VARCHAR)) AS user,
               {image_cols['nsfw']} AS nsfw, {image_cols['minor_marker']} AS minor,
               {adapter[0]} AS rp_exact, {adapter[1]} AS p, {adapter[2]} AS q,
               {', '.join(rule_cols)}
        FROM {db.table_sql(images)} i {' '.join(joins)}""")
    try:
        flags = ", ".join(f"r{k}" for k in range(len(rules)))
        cells = con.execute(f"""SELECT user, nsfw, minor, rp_exact, p, q, {flags}, count(*) AS images
                                FROM {table} GROUP BY ALL ORDER BY ALL""").df()
        touched: dict[str, int] = {}
        delisted: dict[str, int | None] = {}
        for k, rule in enumerate(rules):
            linked = (f"SELECT l.model_id FROM {db.table_sql(links)} l JOIN {table} t "
                      f"ON t.image_id = l.image_id WHERE t.r{k}") if have_links else "SELECT NULL::BIGINT AS model_id WHERE false"
            union = f"{linked} UNION SELECT model_id FROM ({delisted_views[k]})" if k in delisted_views else linked
            touched[rule.name] = int(con.execute(f"SELECT count(DISTINCT model_id) FROM ({union})").fetchone()[0])
            delisted[rule.name] = (int(con.execute(f"SELECT count(*) FROM ({delisted_views[k]})").fetchone()[0])
                                   if k in delisted_views else None)
        totals = con.execute(f"SELECT count(*), count(DISTINCT user) FROM {table}").fetchone()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    positive = total = 0
    if have_links:
        total, positive = con.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE {_bool('m.is_real_person')})
            FROM {db.table_sql(models)} m
            WHERE m.real_person_source = 'predicted' AND {_bool('m.is_adapter')}""").fetchone()
    for col in ("nsfw", "minor", "rp_exact", *(f"r{k}" for k in range(len(rules)))):
        cells[col] = cells[col].astype(bool)
    cells[["p", "q", "images"]] = cells[["p", "q", "images"]].astype("int64")
    return RuleCounts(cells, touched, delisted, int(total), int(positive), int(totals[1]), int(totals[0]))


# --------------------------------------------------------------------------- label error
@dataclass(frozen=True)
class LabelError:
    """Validation counts of the real-person label and of the minor-coded marker (None when not
    carried), and the apparent share of real-person labels among predicted-label adapters."""

    real_person: Mapping[str, int] | None
    minor_marker: tuple[int, int] | None  # (hits judged correct, hits checked)
    predicted_adapters: int
    predicted_adapters_positive: int

    def carries_real_person(self) -> bool:
        return (self.real_person is not None and self.predicted_adapters > 0
                and self.real_person["condition_positives"] > 0
                and self.real_person["condition_negatives"] > 0)


def predictive_values(se: np.ndarray, sp: np.ndarray, apparent: float) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative-label predictive probabilities of a real person: P(real | labelled
    real) and P(real | labelled not real), from sensitivity, specificity and the apparent share
    (the prevalence corrected by Rogan–Gladen, clipped to [0, 1])."""
    with np.errstate(invalid="ignore", divide="ignore"):
        prevalence = np.clip((apparent + sp - 1) / (se + sp - 1), 0.0, 1.0)
        ppv = se * prevalence / (se * prevalence + (1 - sp) * (1 - prevalence))
        false_omission = (1 - se) * prevalence / ((1 - se) * prevalence + sp * (1 - prevalence))
    return np.nan_to_num(ppv, nan=1.0), np.nan_to_num(false_omission, nan=0.0)


def label_draws(error: LabelError, n_boot: int, rng: np.random.Generator | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PPV, false-omission rate and marker precision per replicate (point values when ``rng``
    is None); labels not carried are exact (PPV 1, false omission 0, precision 1)."""
    size = 1 if rng is None else n_boot
    ppv, fo, precision = np.ones(size), np.zeros(size), np.ones(size)
    if error.carries_real_person():
        c = error.real_person
        tp, cp, tn, cn = (c["true_positives"], c["condition_positives"], c["true_negatives"],
                          c["condition_negatives"])
        se = (np.full(size, tp / cp) if rng is None else rng.binomial(cp, tp / cp, size) / cp)
        sp = (np.full(size, tn / cn) if rng is None else rng.binomial(cn, tn / cn, size) / cn)
        ppv, fo = predictive_values(se, sp, error.predicted_adapters_positive / error.predicted_adapters)
    if error.minor_marker is not None and error.minor_marker[1] > 0:
        correct, checked = error.minor_marker
        precision = (np.full(size, correct / checked) if rng is None
                     else rng.binomial(checked, correct / checked, size) / checked)
    return ppv, fo, precision


def harm_probabilities(patterns: pd.DataFrame, ppv: np.ndarray, fo: np.ndarray,
                       precision: np.ndarray) -> dict[str, np.ndarray]:
    """Per flag pattern (rows) and replicate (columns): the probability that an image is truly
    harmful in each category and in any, given its labels."""
    nsfw = patterns["nsfw"].to_numpy(float)[:, None]
    exact = patterns["rp_exact"].to_numpy(bool)[:, None]
    p, q = (patterns[c].to_numpy(float)[:, None] for c in ("p", "q"))
    real = np.where(exact, 1.0, 1 - (1 - ppv[None, :]) ** p * (1 - fo[None, :]) ** q)
    minor = patterns["minor"].to_numpy(float)[:, None] * precision[None, :]
    return {"real_person_nsfw": nsfw * real, "minor_nsfw": nsfw * minor,
            ANY_HARM: nsfw * (1 - (1 - real) * (1 - minor))}


# --------------------------------------------------------------------------- rule statistics
def _shares(counts: np.ndarray, harm: dict[str, np.ndarray], removed: np.ndarray) -> dict[str, np.ndarray]:
    """Removed share of each harm category and of the rest (rules × replicates)."""
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, h in harm.items():
            weight = counts * h
            out[name] = (removed.T @ weight) / weight.sum(axis=0)
        other = counts * (1 - harm[ANY_HARM])
        out["collateral"] = (removed.T @ other) / other.sum(axis=0)
    return out


def simulate_rules(counts: RuleCounts, rules: Sequence[Rule], error: LabelError,
                   n_boot: int = 1000, seed: int = 0, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per rule: images, users and models it removes or touches; the share of each harm
    category (and of any harm) it removes, as labelled and corrected for label error, with the
    percentile interval of a bootstrap over users and the validation counts; the collateral
    share of other images it removes, with its interval."""
    cells = counts.cells
    flags = [f"r{k}" for k in range(len(rules))]
    key = ["nsfw", "minor", "rp_exact", "p", "q", *flags]
    patterns = cells[key].drop_duplicates().reset_index(drop=True)
    pattern_of = cells[key].merge(patterns.reset_index(), on=key, how="left")["index"].to_numpy()
    users, user_index = np.unique(cells["user"].to_numpy(), return_inverse=True)
    matrix = count_matrix(cells["images"], pattern_of, user_index, (len(patterns), len(users)))
    removed = patterns[flags].to_numpy(float)
    total = np.asarray(matrix.sum(axis=1))  # patterns × 1

    point = _shares(total, harm_probabilities(patterns, *label_draws(error, 1, None)), removed)
    observed = patterns.assign(p=(patterns["p"] > 0).astype(int), q=0)
    raw = _shares(total, harm_probabilities(observed, np.ones(1), np.zeros(1), np.ones(1)), removed)
    rng = np.random.default_rng(seed)
    ppv, fo, precision = label_draws(error, n_boot, rng)
    boot: dict[str, list[np.ndarray]] = {}
    done = 0
    for weights in poisson_weights(len(users), n_boot, seed + 1):
        b = weights.shape[1]
        sl = slice(done, done + b)
        harm = harm_probabilities(patterns, ppv[sl], fo[sl], precision[sl])
        for name, value in _shares(np.asarray(matrix @ weights), harm, removed).items():
            boot.setdefault(name, []).append(value)
        done += b
    tail = (1 - confidence) / 2
    per_user = cells.groupby("user")[flags].any()
    n_images = float(cells["images"].sum())
    rows = []
    for k, rule in enumerate(rules):
        images_removed = float(cells.loc[cells[f"r{k}"], "images"].sum())
        low, high = wilson_interval([images_removed], [n_images])
        row: dict[str, Any] = {**rule.as_dict(), "images_removed": int(images_removed),
                               "images_removed_share": images_removed / n_images if n_images else np.nan,
                               "users_touched": int(per_user[f"r{k}"].sum()),
                               "users_touched_share": float(per_user[f"r{k}"].mean()) if len(per_user) else np.nan,
                               "models_touched": counts.models_touched.get(rule.name, 0),
                               "models_delisted": counts.models_delisted.get(rule.name)}
        for name in (ANY_HARM, *HARM_CATEGORIES, "collateral"):
            values = np.concatenate(boot[name], axis=1)[k] if boot else np.array([np.nan])
            row[f"{name}_removed" if name != "collateral" else "collateral"] = float(point[name][k, 0])
            prefix = f"{name}_removed" if name != "collateral" else "collateral"
            row[f"{prefix}_low"] = float(np.nanquantile(values, tail)) if np.isfinite(values).any() else np.nan
            row[f"{prefix}_high"] = float(np.nanquantile(values, 1 - tail)) if np.isfinite(values).any() else np.nan
            if name != "collateral":
                row[f"{prefix}_as_labelled"] = float(raw[name][k, 0])
        rows.append(row)
    out = pd.DataFrame(rows)
    out["models_delisted"] = out["models_delisted"].astype("Int64")
    return out


def harm_sizes(counts: RuleCounts, error: LabelError) -> pd.DataFrame:
    """How many images fall in each harm category (as labelled, and expected after correcting
    the labels), with the share of all images."""
    cells = counts.cells
    patterns = cells[["nsfw", "minor", "rp_exact", "p", "q"]]
    images = cells["images"].to_numpy(float)
    corrected = harm_probabilities(patterns, *label_draws(error, 1, None))
    observed = harm_probabilities(patterns.assign(p=(patterns["p"] > 0).astype(int), q=0),
                                  np.ones(1), np.zeros(1), np.ones(1))
    total = images.sum()
    rows = []
    for name, (label, definition) in {**HARM_CATEGORIES, ANY_HARM: (ANY_HARM_LABEL, "either of the above")}.items():
        labelled = float(images @ observed[name][:, 0])
        low, high = wilson_interval([labelled], [total])
        rows.append({"category": name, "label": label, "definition": definition,
                     "images": int(round(labelled)), "share": labelled / total if total else np.nan,
                     "ci_low": float(low[0]), "ci_high": float(high[0]),
                     "images_corrected": float(images @ corrected[name][:, 0]),
                     "not_estimable": (None if labelled > 0 else
                                       "no image of this snapshot falls in this category, so no "
                                       "rule can remove a share of it")})
    return pd.DataFrame(rows)


def label_error_summary(error: LabelError) -> dict[str, Any]:
    """What label error the intervals carry, in numbers and in words (for the notebook)."""
    out: dict[str, Any] = {"predicted_adapters": error.predicted_adapters,
                           "predicted_adapters_real_person": error.predicted_adapters_positive}
    if error.real_person is not None:
        c = error.real_person
        out["sensitivity"] = c["true_positives"] / c["condition_positives"] if c["condition_positives"] else np.nan
        out["specificity"] = c["true_negatives"] / c["condition_negatives"] if c["condition_negatives"] else np.nan
        out.update({k: int(v) for k, v in c.items()})
    if error.carries_real_person():
        out["real_person_label"] = ("carried: sensitivity and specificity redrawn from the "
                                    "validation counts in every replicate")
    elif error.real_person is None:
        out["real_person_label"] = "not carried: no validation report of the real-person label"
    else:
        out["real_person_label"] = ("not needed: every adapter's real-person label is the "
                                    "platform's own flag, which defines the label")
    if error.minor_marker is not None:
        out["minor_marker_precision"] = error.minor_marker[0] / error.minor_marker[1]
        out["minor_marker"] = "carried: precision redrawn from the hand-checked hits"
    else:
        out["minor_marker"] = ("not yet carried: no precision of the minor-coded marker in the "
                               "validation report; with one, each marked image would count as "
                               "harmful with that probability, redrawn in every replicate")
    return out


def marker_precision_counts(report: Mapping[str, Any] | None, category: str = "minor") -> tuple[int, int] | None:
    """(hits judged correct, hits checked) of a marker category from the validation report's
    ``marker_precision`` table, or None when the report has none for it."""
    table = (report or {}).get("tables", {}).get("marker_precision")
    if not table:
        return None
    frame = pd.DataFrame(table["rows"], columns=table["columns"])
    correct = next((c for c in ("correct", "true_hits", "k", "precise") if c in frame), None)
    checked = next((c for c in ("checked", "hits", "n") if c in frame), None)
    if "category" not in frame or correct is None or checked is None:
        return None
    row = frame[frame["category"] == category]
    if row.empty or int(row[checked].iloc[0]) == 0:
        return None
    return int(row[correct].iloc[0]), int(row[checked].iloc[0])


def intervention_fields(images: Path, links: Path | None, models: Path | None,
                        rules: Sequence[Rule], definition: str, validation: Mapping[str, int] | None,
                        minor_precision: tuple[int, int] | None, n_boot: int, seed: int,
                        con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
    """Notebook 05's rule results: the rule table, the size of each harm category, and what
    label error the intervals carry. Rules that need the link say so where it is missing."""
    counts = rule_counts(images, links, models, rules, definition, con)
    error = LabelError(validation, minor_precision, counts.predicted_adapters,
                       counts.predicted_adapters_positive)
    if counts.images == 0:
        reason = NotEstimable("the images table is empty")
        return {"rules": reason, "harm": reason, "label_error": label_error_summary(error)}
    return {"rules": simulate_rules(counts, rules, error, n_boot=n_boot, seed=seed),
            "harm": harm_sizes(counts, error), "label_error": label_error_summary(error)}


# --------------------------------------------------------------------------- results object
@dataclass(frozen=True)
class InterventionResults(Results):
    """Everything notebook 05 shows, computed by :func:`intervention_results`.

    Parameters: ``definition``, ``n_boot`` and ``seed``; the rules and events as declared.
    Frames: ``rules`` (:func:`simulate_rules`), ``harm`` (:func:`harm_sizes`), ``events``,
    ``its_monthly`` and ``its`` (:mod:`.policy`), ``enforcement`` (from the validation report).
    A field this snapshot cannot estimate is a :class:`~helpers.stats.NotEstimable`.
    """

    part: ClassVar[str] = "interventions"

    definition: str
    n_boot: int
    seed: int
    declared_rules: pd.DataFrame
    rules: pd.DataFrame | NotEstimable
    harm: pd.DataFrame | NotEstimable
    label_error: dict[str, Any]
    events: pd.DataFrame
    its_monthly: pd.DataFrame
    its: pd.DataFrame
    enforcement: pd.DataFrame | NotEstimable


def intervention_results(images: Path, links: Path | None, models: Path | None,
                         rules: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
                         definition: str = "r", synthetic_run: bool = False,
                         validation: Mapping[str, int] | None = None,
                         report: Mapping[str, Any] | None = None, n_boot: int = 1000, seed: int = 0,
                         con: duckdb.DuckDBPyConnection | None = None) -> InterventionResults:
    """Every analysis of notebook 05 on the processed images (and the link and models tables):
    the declared moderation rules simulated, and the interrupted time series at the declared
    policy events. ``validation`` holds the real-person label's confusion counts
    (:func:`helpers.label.real_person_validation_counts`); ``report`` the committed validation
    report (marker precision and enforcement are read from it when present)."""
    from .policy import policy_fields, validate_events

    checked = validate_rules(rules)
    checked_events = validate_events(events)
    rule_fields = intervention_fields(images, links, models, checked, definition, validation,
                                      marker_precision_counts(report), n_boot, seed, con)
    return InterventionResults(
        definition=definition, n_boot=n_boot, seed=seed,
        declared_rules=pd.DataFrame([r.as_dict() for r in checked]), **rule_fields,
        **policy_fields(images, links, models, checked_events, definition, synthetic_run, n_boot,
                        seed, report, con))
