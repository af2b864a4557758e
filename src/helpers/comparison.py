"""Our numbers beside published figures about CivitAI, only where both measure the same thing.

``paper/reference.csv`` (committed) lists published figures, each with its definition and scope,
and either the key of our number that measures the same quantity (with our definition) or why
none does. :func:`comparison_table` sets the comparable ones side by side with the difference
and its interval; :func:`not_comparable_table` lists the others with the reason;
:func:`write_comparison` writes both paper tables.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from .paper import CIVIVERSE_MONTHS, format_value, month_key, write_paper_tables
from .paths import RunPaths, repo_root

#: Published figures compared with ours (committed with the repository, not a run output).
REFERENCE_CSV = repo_root() / "paper" / "reference.csv"
REFERENCE_COLUMNS: tuple[str, ...] = ("metric", "value", "unit", "definition", "scope", "source", "citation",
                                      "ours", "our_definition", "not_comparable_because")
#: Published figures the synthetic generator plants (its NSFW path runs through the card's months).
PLANTED_REFERENCES: frozenset[str] = frozenset(f"civiverse_nsfw_ratio_{month_key(m)}"
                                               for m in CIVIVERSE_MONTHS)


def read_reference(path: Path = REFERENCE_CSV) -> pd.DataFrame:
    """The published figures (``paper/reference.csv``), checked for its columns and units.

    Each row gives the published value with its definition and scope, the key of our number
    that measures the same thing (``ours``) with its definition, or why no number of ours is
    comparable (``not_comparable_because``); a row has exactly one of the two.
    """
    ref = pd.read_csv(path, dtype={"metric": str, "unit": str}, keep_default_na=False,
                      na_values={"value": [""]})
    missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
    if missing:
        raise ValueError(f"{Path(path).name} lacks columns {missing}")
    bad = sorted(set(ref["unit"]) - {"count", "percent", "ratio"})
    if bad:
        raise ValueError(f"{Path(path).name}: unknown units {bad}; use count, percent or ratio")
    comparable = ref["not_comparable_because"].str.strip() == ""
    if (comparable & (ref["ours"].str.strip() == "")).any() or (comparable & (ref["unit"] == "count")).any():
        raise ValueError(f"{Path(path).name}: a comparable row needs our number (ours) and a share; "
                         "a count of another snapshot says why it is not comparable")
    return ref


def signed(value: float, digits: int = 1) -> str:
    """A signed number with a true minus sign: ``+1.2``, ``−0.4``."""
    return f"{value:+.{digits}f}".replace("-", "−")


def short_citation(citation: str) -> str:
    """Authors and year of a citation, without its identifier (the bibliography gives it)."""
    return citation.split(", arXiv:")[0]


def _points(share_text: str) -> str:
    """A share's text without its per cent sign (the table's header says the unit)."""
    return share_text.removesuffix("%")


def _published_share(value: float, unit: str) -> float:
    return value / 100.0 if unit == "percent" else float(value)


def _published_text(value: float, unit: str) -> str:
    """As precise as the source: a percentage as printed, a ratio to two decimals of a percent."""
    if unit == "count":
        return format_value(value, "count")[0]
    return f"{value:g}%" if unit == "percent" else format_value(value, "percent", 2)[0]


def comparison_table(numbers: Mapping[str, dict], reference: pd.DataFrame, synthetic: bool) -> pd.DataFrame:
    """Comparable published figures beside ours: what each side measures (definition and scope),
    the published value, ours with its interval, and the difference in percentage points with
    the interval our estimate gives it (the published figure taken as fixed), and what that
    interval says (``agreement``). A number this run cannot give reads "n/a", never filled in.

    On the synthetic sample the agreement of a figure the generator planted (the Civiverse-6M
    months) is "planted": it holds by construction and is no evidence.
    """
    from .prose import direction  # the comparison's words come from the same rule as the prose

    rows = []
    for ref in reference[reference["not_comparable_because"].str.strip() == ""].itertuples(index=False):
        ours = numbers.get(ref.ours, {})
        low, high = numbers.get(f"{ref.ours}_ci_low", {}), numbers.get(f"{ref.ours}_ci_high", {})
        value = ours.get("value")
        published = _published_share(ref.value, ref.unit)
        bounds = (value, low.get("value"), high.get("value"))
        if any(v is None for v in bounds):
            ours_text = ours.get("text", "n/a") if value is None else ours["text"]
            diff, agreement = "n/a", "n/a"
        else:
            ours_text = f"{_points(ours['text'])} [{_points(low['text'])}, {_points(high['text'])}]"
            d = [100 * (v - published) for v in bounds]
            diff = signed(d[0]) + f" [{signed(d[1])}, {signed(d[2])}]"
            agreement = direction(*d, null=0.0, words=("ours higher", "ours lower",
                                                       "no detectable difference"))
            if synthetic and ref.metric in PLANTED_REFERENCES:
                agreement = "planted"
        rows.append({"metric": ref.metric, "published_measure": f"{ref.definition}; {ref.scope}",
                     "published": _published_text(ref.value, ref.unit), "our_measure": ref.our_definition,
                     "ours": ours_text, "difference_pp": diff, "agreement": agreement,
                     "citation": ref.citation, "source": short_citation(ref.citation)})
    return pd.DataFrame(rows, columns=["metric", "published_measure", "published", "our_measure", "ours",
                                       "difference_pp", "agreement", "citation", "source"])


def write_comparison(paths: RunPaths, numbers: Mapping[str, dict], synthetic: bool,
                     reference: pd.DataFrame | None = None) -> list[Path]:
    """Write both comparison tables (:func:`comparison_table`, :func:`not_comparable_table`)."""
    reference = read_reference() if reference is None else reference
    return write_paper_tables(paths, {"comparison": comparison_table(numbers, reference, synthetic),
                                      "not_comparable": not_comparable_table(reference)})


def not_comparable_table(reference: pd.DataFrame) -> pd.DataFrame:
    """Published figures that no number of ours measures, each with why it is not comparable."""
    part = reference[reference["not_comparable_because"].str.strip() != ""]
    return pd.DataFrame({"metric": part["metric"],
                         "published_measure": part["definition"] + "; " + part["scope"],
                         "published": [_published_text(v, u) for v, u in zip(part["value"], part["unit"])],
                         "why_not_compared": part["not_comparable_because"],
                         "citation": part["citation"],
                         "source": [short_citation(c) for c in part["citation"]]}).reset_index(drop=True)
