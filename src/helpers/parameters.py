"""Run parameters: the one table of names, types, defaults and checks.

Every default of the study (sample sizes, seed, study window, memory limit, headline NSFW
definition, …) lives here and only here: the notebooks' ``parameters`` cells must carry the same
defaults (a test checks it), and code that needs a default asks :func:`default`.
"""
from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import schema
from .sources import SOURCES, file_format, list_data_files


class ParameterError(ValueError):
    """A run parameter is unknown or has a bad value; raised before anything runs."""



# --------------------------------------------------------------------------- the table
def _list_value(raw: Any) -> list:
    """A list parameter from YAML (already a list) or the command line (YAML/JSON text)."""
    if isinstance(raw, str):
        import yaml

        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ValueError from None
    if not isinstance(raw, list):
        raise ValueError
    return raw


def _iso_date(value: str) -> str:
    try:
        dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ParameterError(f"{value!r} is not a date in YYYY-MM-DD form") from exc
    return value


def _positive(minimum: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value < minimum:
            raise ParameterError(f"must be at least {minimum}, got {value}")
        return value
    return check


def _memory(value: str) -> str:
    import re

    if not re.fullmatch(r"\d+(\.\d+)?\s*(MB|GB|MiB|GiB)", value.strip()):
        raise ParameterError(f"{value!r} is not a memory size such as '3GB' or '512MB'")
    return value.strip()


def _percent(value: float) -> float:
    if not 0 < value <= 100:
        raise ParameterError(f"must be a percentage in (0, 100], got {value}")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ParameterError(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return check


def _rules(value: list) -> list:
    from .analyse.interventions import RuleError, validate_rules

    try:
        validate_rules(value)
    except RuleError as exc:
        raise ParameterError(str(exc)) from None
    return value


def _events(value: list) -> list:
    from .analyse.policy import EventError, validate_events

    try:
        validate_events(value)
    except EventError as exc:
        raise ParameterError(str(exc)) from None
    return value


#: The moderation rules simulated in notebook 05 (unit image or model; predicate over the
#: declared flags of :mod:`helpers.analyse.interventions`, combined with and/or/not).
MODERATION_RULES: list[dict[str, str]] = [
    {"name": "block_nsfw_real_person", "label": "Block NSFW images made with a real-person adapter",
     "unit": "image", "predicate": "nsfw and real_person_adapter"},
    {"name": "delist_nsfw_real_person_models", "label": "De-list real-person models rated NSFW",
     "unit": "model", "predicate": "real_person and nsfw"},
    {"name": "delist_real_person_adapters", "label": "De-list every real-person adapter",
     "unit": "model", "predicate": "real_person and adapter"},
    {"name": "block_nsfw_minor_prompts", "label": "Block NSFW prompts with minor-coded terms",
     "unit": "image", "predicate": "nsfw and minor_marker"},
    {"name": "block_nsfw_real_person_cues", "label": "Block NSFW prompts with real-person cues",
     "unit": "image", "predicate": "nsfw and real_person_cue"},
    {"name": "block_all_nsfw", "label": "Block every NSFW image", "unit": "image",
     "predicate": "nsfw"},
]
#: Public platform policy events tested as interrupted time series in notebook 05. The last is
#: a break planted in the synthetic sample (used on that sample only); real-data profiles
#: (params/full.yaml, params/civ40k.yaml) leave it out.
POLICY_EVENTS: list[dict[str, Any]] = [
    {"date": "2024-06-01", "label": "planted break, synthetic sample only",
     "source": "helpers.synth (the generator's planted real-person break)", "synthetic": True},
    {"date": "2025-04-23", "label": "content-policy update restricting real-person depictions in mature content",
     "source": "https://civitai.com/articles/13632"},
    {"date": "2025-05-22", "label": "removal of real-person likeness models and images",
     "source": "https://civitai.com/articles/15022"},
]


@dataclass(frozen=True)
class Parameter:
    """A run parameter: its type, default (as in the notebooks' parameters cells), and check."""

    name: str
    type: type
    default: Any
    help: str
    check: Callable[[Any], Any] | None = None

    def parse(self, raw: Any) -> Any:
        """Convert a command-line or YAML value to this parameter's type and check it."""
        if self.default is None and (raw is None or str(raw).strip().lower() in ("", "none", "null")):
            return None
        try:
            if self.type is list:
                value = _list_value(raw)
            elif self.type is float:
                if isinstance(raw, bool):
                    raise ValueError
                value = float(raw)
            elif self.type is int:
                if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                    raise ValueError
                value = int(str(raw).replace("_", ""))
            else:
                value = str(raw)
        except ValueError as exc:
            raise ParameterError(f"parameter {self.name}: {raw!r} is not a valid "
                                 f"{self.type.__name__}") from exc
        if self.check is not None:
            try:
                value = self.check(value)
            except ParameterError as exc:
                raise ParameterError(f"parameter {self.name}: {exc}") from None
        return value


PARAMETERS: dict[str, Parameter] = {p.name: p for p in (
    Parameter("source", str, "sample", "where the snapshot comes from", _choice(SOURCES)),
    Parameter("path", str, "", "folder or file of the snapshot (local, api; hf: a local Hub-layout folder)"),
    Parameter("revision", str, "", "Hub revision (branch, tag or commit) for --source hf"),
    Parameter("sample_images", int, 30_000, "image rows of the synthetic sample", _positive(100)),
    Parameter("sample_models", int, 3_000, "models of the synthetic sample", _positive(20)),
    Parameter("seed", int, 20250507, "seed of the synthetic sample and every random step", _positive(0)),
    Parameter("window_start", str, schema.PLATFORM_START, "first day of the study window (UTC)", _iso_date),
    Parameter("window_end", str, "2025-12-31", "last day of the study window (UTC)", _iso_date),
    Parameter("memory_limit", str, "3GB", "DuckDB memory limit per stage", _memory),
    Parameter("definition", str, "r", "headline NSFW definition: platform flag, level >= R, level >= X",
              _choice(("platform", "r", "x"))),
    Parameter("top_terms", int, 20, "distinctive prompt terms listed per side", _positive(1)),
    Parameter("term_sample_percent", float, None,
              "percent of prompts sampled for the vocabulary analysis (none = all)", _percent),
    Parameter("boot_replicates", int, 1000, "replicates of every cluster-bootstrap interval (users resampled)",
              _positive(10)),
    Parameter("top_types", int, 6, "model types shown before 'other'", _positive(1)),
    Parameter("top_tags", int, 15, "tags listed per group (personal names always excluded)", _positive(1)),
    Parameter("moderation_rules", list, MODERATION_RULES,
              "moderation rules simulated: list of {name, label, unit (image/model), predicate}", _rules),
    Parameter("policy_events", list, POLICY_EVENTS,
              "policy events tested as interrupted time series: list of {date, label, source[, synthetic]}",
              _events),
)}


def valid_parameters_text() -> str:
    return "; ".join(f"{p.name} ({p.type.__name__}, default {_shown(p.default)}): {p.help}"
                     for p in PARAMETERS.values())


def _shown(default: Any) -> str:
    """A default as listed to the user (a list by its length)."""
    return f"{len(default)} entries" if isinstance(default, list) else repr(default)


def parse_parameters(raw: dict[str, Any]) -> dict[str, Any]:
    """Full, checked parameter set from user values; unknown names and bad values are refused."""
    unknown = sorted(set(raw) - set(PARAMETERS))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}. Valid parameters: "
                             f"{valid_parameters_text()}")
    params = {name: copy.deepcopy(p.default) for name, p in PARAMETERS.items()}
    for name, value in raw.items():
        params[name] = PARAMETERS[name].parse(value)
    check_consistency(params)
    return params


def check_consistency(params: dict[str, Any]) -> None:
    """Checks across parameters: window order, and that the source matches the files given."""
    from .clean import CleaningError, Window

    try:
        Window(params["window_start"], params["window_end"])
    except CleaningError as exc:
        raise ParameterError(str(exc)) from None
    source, path = params["source"], params["path"]
    if source in ("local", "api") and not path:
        raise ParameterError(f"source {source!r} needs --path: a folder or file of the snapshot")
    if source == "sample" and path:
        raise ParameterError("source 'sample' generates its data and takes no --path; "
                             "use --source local or api to read files")
    if path:
        p = Path(path)
        if not p.exists():
            raise ParameterError(f"--path {path} does not exist")
        if source in ("local", "api"):
            from .sources import SourceError

            try:
                formats = {file_format(f) for f in list_data_files(p)}
            except SourceError as exc:
                raise ParameterError(str(exc)) from None
            if source == "api" and "json" not in formats:
                raise ParameterError(f"--source api reads CivitAI REST API JSON/JSON Lines, but "
                                     f"{path} holds only {sorted(formats)}; use --source local")



def default(name: str) -> Any:
    """The default of run parameter ``name`` (raises KeyError for an unknown name)."""
    return PARAMETERS[name].default
