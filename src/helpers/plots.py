"""The paper's figures: one function per figure, one style, deterministic files.

Every ``figNN_slug`` function takes the small frames that :mod:`helpers.analyse` returns and
gives back a :class:`matplotlib.figure.Figure` sized for one column of a two-column paper.
:data:`IMAGE_FIGURES` and :data:`MODEL_FIGURES` say which fields of a notebook's results
object each figure draws (:func:`draw`, :func:`save_figures`).

Figures are built without ``pyplot`` on an explicit Agg canvas (no display backend needed, a
notebook's own backend untouched). The style is applied only while a figure is built and
saved (:func:`style`, an ``rc_context``): matplotlib's global settings are left as they were.
:func:`savefig` writes PDF (for the paper) and PNG (for reading) with all time-stamped
metadata removed, so the same input gives byte-identical files.

A panel whose result this snapshot cannot give (:class:`~helpers.stats.NotEstimable`, or no
data at all) keeps its place and says so inside it, with the reason (:func:`say_not_estimable`).

``synthetic=True`` stamps "synthetic sample" across the figure: a figure drawn from the
embedded synthetic snapshot must never be mistaken for a finding about CivitAI.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import seaborn as sns
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from . import schema
from .analyse import ImageResults, InterventionResults, ModelResults
from .db import atomic_path
from .paths import RunPaths
from .schema import MARKER_LABELS, NSFW_DEFINITION_LABELS
from .stats import NotEstimable, with_share

#: Width of one column of a two-column paper, in inches.
COLUMN_WIDTH = 3.4
#: Resolution of the PNG files.
PNG_DPI = 200
#: Metadata that would change between runs or machines, removed from every file.
PDF_METADATA: dict[str, None] = {"Creator": None, "Producer": None, "CreationDate": None}
PNG_METADATA: dict[str, None] = {"Software": None}
SYNTHETIC_MARK = "synthetic sample"

#: One colour per NSFW definition, the same in every figure.
DEFINITION_COLOURS: dict[str, str] = {"platform": "#4c72b0", "r": "#c44e52", "x": "#8172b3"}
#: Browsing levels from mild (light) to severe (dark); Blocked in grey.
LEVEL_COLOURS: dict[str, str] = {"PG": "#d9e6f2", "PG13": "#9ecae1", "R": "#fcae91",
                                 "X": "#fb6a4a", "XXX": "#a50f15", "Blocked": "#636363"}
MARKER_COLOURS: dict[str, str] = {"booru": "#4c72b0", "pony": "#dd8452", "sexual": "#c44e52",
                                  "minor": "#000000", "real_person": "#55a868"}
GENDER_COLOURS: dict[str, str] = {"female": "#c44e52", "male": "#4c72b0", "mixed": "#8172b3",
                                  "unknown": "#999999"}
GROUP_COLOURS: tuple[str, str] = ("#c44e52", "#4c72b0")  # (the group of interest, the rest)
#: Colour of error bars: the "k" of seaborn's deep palette, which its theme made the default.
ERROR_COLOUR: tuple[float, float, float] = (0.1, 0.1, 0.1)
#: How error bars are drawn.
ERROR_KW: dict[str, Any] = {"elinewidth": 0.7, "capsize": 1.5, "ecolor": ERROR_COLOUR}

#: Every figure function, in paper order (name → function), filled below.
FIGURES: dict[str, object] = {}


# --------------------------------------------------------------------------- style & files
@functools.lru_cache(maxsize=1)
def style_rc() -> dict[str, Any]:
    """The repository's plot style as rc settings: what ``seaborn.set_theme(context="paper",
    style="whitegrid", font="DejaVu Sans")`` sets (without remapping matplotlib's one-letter
    colour codes), small readable fonts, embeddable PDF fonts."""
    return {
        **sns.plotting_context("paper"),
        **sns.axes_style("whitegrid", rc={"font.family": "DejaVu Sans"}),
        "axes.prop_cycle": cycler("color", sns.color_palette("deep")),
        "font.size": 7.5, "axes.titlesize": 8, "axes.labelsize": 7.5, "xtick.labelsize": 6.5,
        "ytick.labelsize": 6.5, "legend.fontsize": 6.5, "legend.title_fontsize": 7,
        "axes.titleweight": "bold", "axes.linewidth": 0.6, "grid.linewidth": 0.4,
        "lines.linewidth": 1.2, "legend.frameon": False, "figure.dpi": 100,
        "pdf.fonttype": 42, "ps.fonttype": 42, "svg.hashsalt": "civitai-gendered-harm",
        "savefig.bbox": "standard", "path.simplify": False,
    }


@contextmanager
def style() -> Iterator[None]:
    """Apply the plot style (:func:`style_rc`) inside the block; restore matplotlib's after."""
    with mpl.rc_context(style_rc()):
        yield


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """A figure function that builds its figure inside :func:`style` (ticks drawn at save time
    get the style from :func:`savefig`)."""
    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with style():
            return draw(*args, **kwargs)
    return wrapper


def new_figure(height: float, ncols: int = 1, nrows: int = 1, width: float = COLUMN_WIDTH,
               **subplot_kw) -> tuple[Figure, np.ndarray]:
    """A figure of ``width`` × ``height`` inches with an Agg canvas and its axes (always an array)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes.ravel()


def mark_synthetic(fig: Figure) -> None:
    """Stamp "synthetic sample" diagonally across the figure and above its panels."""
    fig.text(0.5, 0.5, SYNTHETIC_MARK.upper(), rotation=25, ha="center", va="center",
             fontsize=22, color="#c44e52", alpha=0.18, fontweight="bold", zorder=100)
    # A suptitle, so the constrained layout makes room for it above the panels.
    fig.suptitle(f"{SYNTHETIC_MARK}: not CivitAI data", x=0.99, ha="right", fontsize=6.5,
                 color="#c44e52", fontweight="bold")


def _finish(fig: Figure, synthetic: bool) -> Figure:
    if synthetic:
        mark_synthetic(fig)
    return fig


def savefig(fig: Figure, paths: RunPaths, name: str) -> dict[str, Path]:
    """Write ``name.pdf`` and ``name.png`` under ``paths.figures`` atomically; return both paths.

    No creation date, producer or software version is embedded, so the bytes depend only on
    the figure.
    """
    out: dict[str, Path] = {}
    for ext, meta, extra in (("pdf", PDF_METADATA, {}), ("png", PNG_METADATA, {"dpi": PNG_DPI})):
        dest = paths.figures / f"{name}.{ext}"
        with style(), atomic_path(dest) as tmp:
            fig.savefig(tmp, format=ext, metadata=meta, **extra)
        out[ext] = dest
    return out


def save_and_show(fig: Figure, paths: RunPaths, name: str):
    """Save the figure (:func:`savefig`) and return the saved PNG for display in a notebook.

    Figures are built without ``pyplot``, so a notebook does not render them by itself; showing
    the saved file also guarantees that what the reader sees is what the paper uses.
    """
    from IPython.display import Image

    files = savefig(fig, paths, name)
    return Image(data=files["png"].read_bytes(), format="png", width=int(COLUMN_WIDTH * 150))


# --------------------------------------------------------------------------- axis helpers
def _month_dates(months: Iterable[str]) -> pd.DatetimeIndex:
    """``YYYY-MM`` strings as the first day of each month."""
    return pd.to_datetime([f"{m}-01" for m in months])


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("")


def _percent_axis(ax: Axes, axis: str = "y") -> None:
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))


def _thousands(ax: Axes) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _share_with_band(ax: Axes, frame: pd.DataFrame, colour: str, label: str) -> None:
    """A monthly share line with its confidence band (``month``, ``share``, ``ci_low``, ``ci_high``)."""
    data = frame.sort_values("month")
    x = _month_dates(data["month"])
    ax.fill_between(x, data["ci_low"], data["ci_high"], color=colour, alpha=0.2, linewidth=0)
    ax.plot(x, data["share"], color=colour, label=label, marker="o", markersize=1.8)


def _stacked_shares(ax: Axes, frame: pd.DataFrame, category: str, order: Sequence[str],
                    colours: dict[str, str] | None = None) -> None:
    """Stacked area of within-month shares of a category (``month``, category, ``share``)."""
    wide = frame.pivot_table(index="month", columns=category, values="share", aggfunc="sum",
                             fill_value=0.0, observed=False).sort_index()
    cols = [c for c in order if c in wide.columns]
    palette = sns.color_palette("deep", len(cols))
    colour_list = [(colours or {}).get(c, palette[i]) for i, c in enumerate(cols)]
    ax.stackplot(_month_dates(wide.index), *[wide[c].to_numpy() for c in cols],
                 labels=[str(c) for c in cols], colors=colour_list, linewidth=0)
    ax.set_ylim(0, 1)
    ax.margins(x=0)
    _percent_axis(ax)
    _date_axis(ax)


def say_not_estimable(ax: Axes, reason: NotEstimable | str) -> None:
    """Write "not estimable" and the reason in the middle of a panel that has nothing to draw."""
    reason = reason if isinstance(reason, NotEstimable) else NotEstimable(reason)
    ax.text(0.5, 0.5, str(reason).replace(": ", ":\n", 1), transform=ax.transAxes, ha="center",
            va="center", fontsize=6.5, color="#555555", wrap=True)


def _ranked_bars(ax: Axes, labels: pd.Series, values: pd.Series, colour: str, title: str) -> None:
    """Horizontal bars, first item on top."""
    y = np.arange(len(labels))[::-1]
    ax.barh(y, values, color=colour, height=0.7)
    ax.set_yticks(y, [str(v) for v in labels])
    ax.set_title(title)
    ax.grid(axis="y", visible=False)


# --------------------------------------------------------------------------- figures
@styled
def fig01_volume_nsfw(monthly: pd.DataFrame, synthetic: bool = False) -> Figure:
    """Monthly image volume (top) and NSFW share under the three definitions (bottom).

    ``monthly`` is :func:`helpers.analyse.nsfw_share_by_month`.
    """
    fig, (ax_n, ax_s) = new_figure(3.6, nrows=2, sharex=True, gridspec_kw={"height_ratios": [1, 1.6]})
    volume = monthly.drop_duplicates("month").sort_values("month")
    ax_n.bar(_month_dates(volume["month"]), volume["n_images"], width=24, color="#8c8c8c")
    ax_n.set_ylabel("images per month")
    _thousands(ax_n)
    ax_n.set_title("a  Volume")
    for d, label in NSFW_DEFINITION_LABELS.items():
        part = monthly[(monthly["definition"] == d) & (monthly["n"] > 0)]
        if len(part):
            _share_with_band(ax_s, part, DEFINITION_COLOURS[d], label)
    ax_s.set_ylim(0, 1)
    _percent_axis(ax_s)
    ax_s.set_ylabel("NSFW share of images")
    ax_s.set_title("b  NSFW share (95% CI)")
    if ax_s.lines:
        ax_s.legend(loc="upper left", ncols=3)
    else:
        say_not_estimable(ax_s, "no image has a known NSFW label")
    _date_axis(ax_s)
    return _finish(fig, synthetic)


@styled
def fig02_level_composition(levels: pd.DataFrame, synthetic: bool = False) -> Figure:
    """Share of each browsing level per month (:func:`helpers.analyse.level_composition_by_month`)."""
    fig, (ax,) = new_figure(2.5)
    order = [lvl for lvl in schema.LEVEL_NAMES
             if lvl in set(levels.loc[levels["n"] > 0, "level"].astype(str))]
    data = levels.assign(level=levels["level"].astype(str))
    _stacked_shares(ax, data, "level", order, LEVEL_COLOURS)
    ax.set_title("Browsing level of the month's images")
    ax.set_ylabel("share of images")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.0, 0.5),
              title="level")
    return _finish(fig, synthetic)


@styled
def fig03_adapter_use(lora_monthly: pd.DataFrame, adapter_by_month: pd.DataFrame | NotEstimable,
                      adapter_overall: pd.DataFrame | NotEstimable, synthetic: bool = False) -> Figure:
    """Adapter use over time (a) and NSFW share with vs without adapter calls (b).

    Inputs: :func:`~helpers.analyse.lora_use_by_month`,
    :func:`~helpers.analyse.nsfw_share_by_adapter_use_by_month` and
    :func:`~helpers.analyse.nsfw_share_by_adapter_use` (for the legend's overall shares);
    panel b says why when the comparison is not estimable.
    """
    fig, (ax_l, ax_n) = new_figure(3.6, nrows=2, sharex=True)
    _share_with_band(ax_l, lora_monthly[lora_monthly["n"] > 0], "#55a868", "prompt calls a LoRA")
    ax_l.set_ylim(0, 1)
    _percent_axis(ax_l)
    ax_l.set_ylabel("share of images")
    ax_l.set_title("a  Images whose prompt calls a LoRA")
    ax_n.set_ylim(0, 1)
    _percent_axis(ax_n)
    ax_n.set_title("b  NSFW share by adapter use (95% CI)")
    _date_axis(ax_n)
    for result in (adapter_by_month, adapter_overall):
        if isinstance(result, NotEstimable):
            say_not_estimable(ax_n, result)
            ax_n.set_ylabel("NSFW share")
            return _finish(fig, synthetic)
    overall = adapter_overall.set_index("uses_adapter")
    for uses, colour, label in ((True, GROUP_COLOURS[0], "with LoRA"),
                                (False, GROUP_COLOURS[1], "without LoRA")):
        part = adapter_by_month[(adapter_by_month["uses_adapter"] == uses) & (adapter_by_month["n"] > 0)]
        if len(part):
            share = overall.loc[uses, "share"] if uses in overall.index else np.nan
            _share_with_band(ax_n, part, colour, f"{label} (all: {share:.0%})")
    definition = str(adapter_by_month["definition"].iloc[0]) if len(adapter_by_month) else "r"
    ax_n.set_ylabel(f"NSFW share ({NSFW_DEFINITION_LABELS[definition]})")
    ax_n.legend(loc="lower right")
    return _finish(fig, synthetic)


@styled
def fig04_engagement(counts: pd.DataFrame, metric_label: str = "reactions",
                     synthetic: bool = False) -> Figure:
    """Survival curves of image engagement, NSFW vs SFW (share of images with ≥ x reactions).

    ``counts`` is :func:`helpers.analyse.engagement_counts` (``value``, ``nsfw``, ``n``). A
    log-log survival curve shows heavy tails that a box plot would hide.
    """
    fig, (ax,) = new_figure(2.5)
    for nsfw, colour, label in ((True, GROUP_COLOURS[0], "NSFW"), (False, GROUP_COLOURS[1], "SFW")):
        part = counts[counts["nsfw"] == nsfw].sort_values("value")
        if part.empty:
            continue
        total = part["n"].sum()
        # Share of images with value >= x, for x = each distinct value.
        surv = (total - part["n"].cumsum() + part["n"]) / total
        ax.step(part["value"] + 1, surv, where="post", color=colour, label=f"{label} (n={total:,})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(f"{metric_label.capitalize()} of NSFW and SFW images")
    ax.set_xlabel(f"{metric_label} + 1")
    ax.set_ylabel("share of images with at least x")
    if ax.lines:
        ax.legend(loc="lower left")
    else:  # e.g. a source without reaction counts
        say_not_estimable(ax, f"no {metric_label} in this snapshot")
    return _finish(fig, synthetic)


@styled
def fig05_distinctive_terms(terms: pd.DataFrame | NotEstimable, top_n: int = 15,
                            synthetic: bool = False) -> Figure:
    """Prompt terms most typical of NSFW (left) and SFW (right) images, by log-odds z-score.

    ``terms`` is :func:`helpers.analyse.distinctive_terms` (already free of personal names).
    """
    fig, axes = new_figure(3.2, ncols=2)
    for ax, side, colour, title in ((axes[0], "nsfw", GROUP_COLOURS[0], "a  NSFW prompts"),
                                    (axes[1], "sfw", GROUP_COLOURS[1], "b  SFW prompts")):
        if isinstance(terms, NotEstimable) or not (terms["side"] == side).any():
            ax.set_title(title)
            ax.set_yticks([])
            say_not_estimable(ax, terms if isinstance(terms, NotEstimable)
                              else f"no term is typical of {side.upper()} prompts")
            continue
        part = terms[terms["side"] == side].sort_values("rank").head(top_n)
        _ranked_bars(ax, part["term"], part["z"].abs(), colour, title)
    fig.supxlabel("|z| of the weighted log-odds (NSFW vs SFW)", fontsize=7.5)
    return _finish(fig, synthetic)


@styled
def fig06_markers(markers: pd.DataFrame, synthetic: bool = False) -> Figure:
    """Share of prompts with each marker category per month (:func:`helpers.analyse.markers_by_month`)."""
    fig, (ax,) = new_figure(2.6)
    for marker, label in MARKER_LABELS.items():
        part = markers[(markers["marker"] == marker) & (markers["n"] > 0)]
        if len(part) and part["k"].sum() > 0:
            _share_with_band(ax, part, MARKER_COLOURS[marker], label)
    ax.set_ylim(0, 1)
    _percent_axis(ax)
    ax.set_title("Prompts with each marker category")
    ax.set_ylabel("share of prompts")
    if ax.lines:
        ax.legend(loc="upper left", ncols=2)
    else:
        say_not_estimable(ax, "no image has a prompt" if markers["n"].sum() == 0
                          else "no prompt carries a marker")
    _date_axis(ax)
    return _finish(fig, synthetic)


@styled
def fig07_creator_lorenz(lorenz: pd.DataFrame | NotEstimable,
                         summary: dict[str, float] | NotEstimable, synthetic: bool = False) -> Figure:
    """Lorenz curve of images per hashed user, with the Gini coefficient and top-1% share
    (the panel says why when too few users posted: the privacy floor)."""
    fig, (ax,) = new_figure(2.8)
    ax.set_title("Images per hashed user (Lorenz curve)")
    for result in (lorenz, summary):
        if isinstance(result, NotEstimable):
            ax.set_aspect("equal")
            ax.set_xlabel("share of users (fewest images first)")
            ax.set_ylabel("share of images")
            say_not_estimable(ax, result)
            return _finish(fig, synthetic)
    ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle="--", label="equal posting")
    ax.plot(lorenz["population_share"], lorenz["image_share"], color=GROUP_COLOURS[0],
            label="observed")
    ax.fill_between(lorenz["population_share"], lorenz["image_share"], lorenz["population_share"],
                    color=GROUP_COLOURS[0], alpha=0.12, linewidth=0)
    lines = [f"Gini = {summary.get('gini', np.nan):.2f}"]
    if not isinstance(summary.get("top1_share"), NotEstimable) and \
            np.isfinite(summary.get("top1_share", np.nan)):
        lines.append(f"top 1% of users: {summary['top1_share']:.0%} of images")
    ax.text(0.04, 0.96, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    _percent_axis(ax, "x")
    _percent_axis(ax, "y")
    ax.set_xlabel("share of users (fewest images first)")
    ax.set_ylabel("share of images")
    ax.legend(loc="center left", bbox_to_anchor=(0.0, 0.62))
    return _finish(fig, synthetic)


@styled
def fig08_model_types(types: pd.DataFrame, bases: pd.DataFrame, synthetic: bool = False) -> Figure:
    """New models per month by type (a) and by base model family (b), as within-month shares.

    Inputs: :func:`~helpers.analyse.model_types_by_month`, :func:`~helpers.analyse.base_models_by_month`.
    """
    fig, (ax_t, ax_b) = new_figure(4.0, nrows=2, sharex=True)
    for ax, frame, column, title in ((ax_t, types, "type", "a  Model type"),
                                     (ax_b, bases, "base_model", "b  Base model")):
        totals = frame.groupby(column)["n"].sum().sort_values(ascending=False, kind="stable")
        order = [c for c in totals.index if c != "Other"] + (["Other"] if "Other" in totals.index else [])
        colours = {"Other": "#bbbbbb", "unknown": "#dddddd"}
        _stacked_shares(ax, frame, column, order, colours)
        ax.set_ylabel("share of new models")
        ax.set_title(title)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _finish(fig, synthetic)


@styled
def fig09_real_person(by_month: pd.DataFrame, gender: pd.DataFrame | NotEstimable,
                      nsfw_by_gender: pd.DataFrame, synthetic: bool = False) -> Figure:
    """Real-person models: share of new models per month (a), depicted gender (b), NSFW share (c).

    Inputs: :func:`~helpers.analyse.real_person_share_by_month`,
    :func:`~helpers.analyse.depicted_gender_split`,
    :func:`~helpers.analyse.nsfw_share_by_depicted_gender`.
    """
    fig = Figure(figsize=(COLUMN_WIDTH, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1])
    ax_m = fig.add_subplot(grid[0, :])
    ax_g = fig.add_subplot(grid[1, 0])
    ax_n = fig.add_subplot(grid[1, 1])

    _share_with_band(ax_m, by_month[by_month["n"] > 0], GROUP_COLOURS[0], "real-person models")
    ax_m.set_ylim(0, None)
    _percent_axis(ax_m)
    ax_m.set_ylabel("share of new models")
    ax_m.set_title("a  Models depicting a real person")
    _date_axis(ax_m)

    if isinstance(gender, NotEstimable):
        say_not_estimable(ax_g, gender)
        ax_g.set_xticks([])
    else:
        g = gender.set_index("depicted_gender").reindex(list(GENDER_COLOURS))
        x = np.arange(len(g))
        # Clipped: a share of exactly 0 or 1 may sit a rounding error outside its interval.
        err = np.clip(np.vstack([(g["share"] - g["ci_low"]).fillna(0),
                                 (g["ci_high"] - g["share"]).fillna(0)]), 0, None)
        ax_g.bar(x, g["share"].fillna(0), yerr=err, color=[GENDER_COLOURS[k] for k in g.index],
                 error_kw=dict(ERROR_KW))
        ax_g.set_xticks(x, g.index.tolist(), rotation=45, ha="right", rotation_mode="anchor")
    ax_g.set_ylim(0, 1)
    _percent_axis(ax_g)
    ax_g.set_ylabel("share of real-person models")
    ax_g.set_title("b  Depicted gender")
    ax_g.grid(axis="x", visible=False)

    groups = nsfw_by_gender[nsfw_by_gender["n"] > 0]
    labels = [str(s).replace("real person: ", "").replace("not a real person", "other models")
              for s in groups["group"]]
    xs = np.arange(len(groups))
    err = np.clip(np.vstack([groups["share"] - groups["ci_low"], groups["ci_high"] - groups["share"]]),
                  0, None)
    colours = [GENDER_COLOURS.get(lbl, "#bbbbbb") for lbl in labels]
    if len(groups):
        ax_n.bar(xs, groups["share"], yerr=err, color=colours, error_kw=dict(ERROR_KW))
        ax_n.set_xticks(xs, labels, rotation=45, ha="right", rotation_mode="anchor")
    else:
        say_not_estimable(ax_n, "no model has a known NSFW label")
        ax_n.set_xticks([])
    ax_n.set_ylim(0, 1)
    _percent_axis(ax_n)
    ax_n.set_ylabel("NSFW share of models")
    ax_n.set_title("c  NSFW share")
    ax_n.grid(axis="x", visible=False)
    return _finish(fig, synthetic)


@styled
def fig10_top_tags(tags_real: pd.DataFrame | NotEstimable, tags_all: pd.DataFrame | NotEstimable,
                   top_n: int = 15, synthetic: bool = False) -> Figure:
    """Most frequent tags of real-person models (a) and of all models (b), names excluded.

    Inputs: :func:`helpers.analyse.top_tags` for ``subset='real_person'`` and ``'all'``.
    """
    fig, axes = new_figure(3.2, ncols=2)
    for ax, frame, colour, title in ((axes[0], tags_real, GROUP_COLOURS[0], "a  Real-person models"),
                                     (axes[1], tags_all, GROUP_COLOURS[1], "b  All models")):
        if isinstance(frame, NotEstimable) or frame.empty:
            ax.set_title(title)
            ax.set_yticks([])
            say_not_estimable(ax, frame if isinstance(frame, NotEstimable) else "no model has a tag")
            continue
        part = frame.sort_values("rank").head(top_n)
        _ranked_bars(ax, part["tag"], part["share"], colour, title)
        _percent_axis(ax, "x")
    fig.supxlabel("share of the group's models carrying the tag", fontsize=7.5)
    return _finish(fig, synthetic)




@styled
def fig11_personalisation(rp_monthly: pd.DataFrame | NotEstimable,
                          rp_nsfw: pd.DataFrame | NotEstimable,
                          family_nsfw: pd.DataFrame | NotEstimable, synthetic: bool = False) -> Figure:
    """Personalisation through the link: images using a real-person adapter per month (a), NSFW
    share with vs without one (b) and NSFW share by base-model family (c), with Wilson intervals.

    Inputs: :func:`~helpers.analyse.links.real_person_adapter_use_by_month`,
    :func:`~helpers.analyse.links.nsfw_share_by_real_person_adapter`,
    :func:`~helpers.analyse.links.nsfw_share_by_family`; a panel says why when not estimable.
    """
    fig = Figure(figsize=(COLUMN_WIDTH, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2)
    ax_m, ax_r, ax_f = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    ax_m.set_title("a  Images using a real-person adapter")
    if isinstance(rp_monthly, NotEstimable):
        say_not_estimable(ax_m, rp_monthly)
    else:
        _share_with_band(ax_m, rp_monthly[rp_monthly["n"] > 0], GROUP_COLOURS[0], "real-person adapter")
        ax_m.set_ylim(0, None)
        _percent_axis(ax_m)
        _date_axis(ax_m)
    ax_m.set_ylabel("share of images")
    for ax, result, key, labels, title in (
            (ax_r, rp_nsfw, "uses_real_person_adapter", {True: "with", False: "without"},
             "b  By real-person adapter"),
            (ax_f, family_nsfw, "family", None, "c  By base model")):
        ax.set_title(title)
        ax.set_ylim(0, 1)
        _percent_axis(ax)
        ax.grid(axis="x", visible=False)
        if isinstance(result, NotEstimable):
            say_not_estimable(ax, result)
            ax.set_xticks([])
            continue
        data = result[result["n"] > 0]
        if key == "uses_real_person_adapter":
            data = data.set_index(key).reindex([True, False]).dropna(subset=["share"]).reset_index()
        x = np.arange(len(data))
        err = np.clip(np.vstack([data["share"] - data["ci_low"], data["ci_high"] - data["share"]]), 0, None)
        colours = [GROUP_COLOURS[0] if (labels and v) else GROUP_COLOURS[1] for v in data[key]]
        ax.bar(x, data["share"], yerr=err, color=colours, error_kw=dict(ERROR_KW))
        names = [labels[v] if labels else str(v) for v in data[key]]
        ax.set_xticks(x, names, rotation=45 if not labels else 0, ha="right" if not labels else "center",
                      rotation_mode="anchor")
        definition = str(data["definition"].iloc[0]) if len(data) else "r"
        ax.set_ylabel(f"NSFW share ({NSFW_DEFINITION_LABELS[definition]})")
    return _finish(fig, synthetic)


@styled
def fig12_real_person_label(curve: pd.DataFrame, corrected: dict[str, float] | NotEstimable,
                            model_nsfw: pd.DataFrame, synthetic: bool = False) -> Figure:
    """How the real-person share depends on the label (a: share by classifier threshold, with the
    Rogan–Gladen corrected share at the shipped threshold) and models' NSFW share by month of
    creation under every NSFW definition the models carry (b, a ``definition`` column), with
    Wilson intervals."""
    fig, (ax_t, ax_n) = new_figure(3.6, nrows=2)
    ax_t.set_title("a  Real-person share by classifier threshold")
    if len(curve) and curve["n"].max() > 0:
        ax_t.fill_between(curve["threshold"], curve["ci_low"], curve["ci_high"], color=GROUP_COLOURS[0],
                          alpha=0.2, linewidth=0)
        ax_t.plot(curve["threshold"], curve["share"], color=GROUP_COLOURS[0], marker="o",
                  markersize=1.8, label="predicted share")
        if not isinstance(corrected, NotEstimable):
            ax_t.errorbar([0.5], [corrected["corrected"]],
                          yerr=[[max(0.0, corrected["corrected"] - corrected["ci_low"])],
                                [max(0.0, corrected["ci_high"] - corrected["corrected"])]],
                          fmt="s", color=GROUP_COLOURS[1], markersize=3, label="corrected for label error",
                          **{k: v for k, v in ERROR_KW.items() if k != "ecolor"})
        ax_t.legend(loc="lower left")
        ax_t.set_ylim(0, None)
        _percent_axis(ax_t)
    else:
        say_not_estimable(ax_t, "no model has a real-person score")
    ax_t.set_xlabel("classifier threshold")
    ax_t.set_ylabel("share of models")
    ax_n.set_title("b  NSFW share of new models")
    data = model_nsfw[model_nsfw["n"] > 0]
    if "definition" not in data:  # one definition's series
        data = data.assign(definition="r")
    if len(data):
        for d, label in NSFW_DEFINITION_LABELS.items():
            part = data[data["definition"] == d]
            if len(part):
                _share_with_band(ax_n, part, DEFINITION_COLOURS[d], label)
        ax_n.legend(loc="upper left", ncols=3)
        ax_n.set_ylim(0, 1)
        _percent_axis(ax_n)
        _date_axis(ax_n)
    else:
        say_not_estimable(ax_n, "no model has a known NSFW label")
    ax_n.set_ylabel("share of new models")
    return _finish(fig, synthetic)


@styled
def fig15_family_nsfw(family_monthly: pd.DataFrame | NotEstimable, definition: str = "r",
                      synthetic: bool = False) -> Figure:
    """NSFW share of images by base-model family over time: one panel per family (families in
    reporting order, those without images left out) on a common y axis, each with its
    user-bootstrap band (users resampled: a few heavy users can carry a family's month) and the
    narrower Wilson interval (images independent) as dotted lines, and, in grey, the share over
    all families for reference. Without bootstrap columns only the Wilson band is drawn.

    ``family_monthly`` is the ``family_nsfw_monthly`` frame of
    :func:`~helpers.analyse.links.link_fields` (every definition, ``boot_low``/``boot_high``
    beside ``ci_low``/``ci_high``); ``definition`` picks the one drawn.
    """
    label = NSFW_DEFINITION_LABELS[definition]
    if isinstance(family_monthly, NotEstimable):
        fig, (ax,) = new_figure(2.0)
        ax.set_title("NSFW share by base-model family")
        say_not_estimable(ax, family_monthly)
        ax.set_xticks([])
        ax.set_yticks([])
        return _finish(fig, synthetic)
    data = family_monthly[(family_monthly["definition"] == definition) & (family_monthly["n"] > 0)]
    families = [f for f in schema.BASE_MODEL_FAMILIES if f in set(data["family"])]
    ncols = 2
    nrows = max(1, -(-len(families) // ncols))
    fig, axes = new_figure(1.25 * nrows + 0.5, ncols=ncols, nrows=nrows, sharex=True, sharey=True)
    overall = with_share(data.groupby("month", sort=True)[["n", "k"]].sum().reset_index())
    letters = "abcdefghij"
    for i, ax in enumerate(axes):
        if i >= len(families):
            ax.set_visible(False)
            continue
        family = families[i]
        ax.plot(_month_dates(overall["month"]), overall["share"], color="#999999", linewidth=0.8,
                label="all families")
        cells = data[data["family"] == family].sort_values("month")
        if {"boot_low", "boot_high"} <= set(cells.columns):
            x = _month_dates(cells["month"])
            ax.fill_between(x, cells["boot_low"], cells["boot_high"], color=GROUP_COLOURS[0], alpha=0.2,
                            linewidth=0, label="95% CI, users resampled")
            ax.plot(x, cells["share"], color=GROUP_COLOURS[0], marker="o", markersize=1.8,
                    label="NSFW share")
            for edge in ("ci_low", "ci_high"):
                ax.plot(x, cells[edge], color=GROUP_COLOURS[0], linewidth=0.6, linestyle=":",
                        label="95% Wilson CI, images independent" if edge == "ci_low" else None)
        else:
            _share_with_band(ax, cells, GROUP_COLOURS[0], family)
        ax.set_title(f"{letters[i]}  {family}")
        ax.set_ylim(0, 1)
        _percent_axis(ax)
        _date_axis(ax)
    if not families:
        axes[0].set_visible(True)
        say_not_estimable(axes[0], f"no image has a known NSFW label ({label})")
    else:
        handles, labels = axes[0].get_legend_handles_labels()
        # Below the panels: inside one, the four entries would cover its data.
        fig.legend(handles=handles, labels=labels, loc="outside lower center", ncol=2, fontsize=6,
                   frameon=False)
    fig.supylabel(f"NSFW share of images ({label})", fontsize=7.5)
    return _finish(fig, synthetic)


@styled
def fig16_per_user(histogram: pd.DataFrame | NotEstimable,
                   decomposition: pd.DataFrame | NotEstimable, synthetic: bool = False) -> Figure:
    """The per-user view: how per-user NSFW shares are distributed, counting each user once
    and weighting users by their images (a), and the change of the NSFW share between the two
    halves of the images split into change within users and change in who posts, under every
    definition, with user-bootstrap intervals (b).

    Inputs: :func:`~helpers.analyse.users.per_user_share_histogram` (headline definition) and a
    frame of :func:`~helpers.analyse.users.shift_share` rows with a ``definition`` column (the
    decomposition rows of the ``sensitivity`` table, :func:`decomposition_by_definition`).
    """
    fig, (ax_h, ax_d) = new_figure(3.9, nrows=2)
    ax_h.set_title("a  Per-user NSFW share")
    if isinstance(histogram, NotEstimable):
        say_not_estimable(ax_h, histogram)
    else:
        width = float((histogram["bin_high"] - histogram["bin_low"]).iloc[0])
        centres = (histogram["bin_low"] + histogram["bin_high"]) / 2
        for offset, column, colour, name in ((-0.2, "user_share", GROUP_COLOURS[1], "users (each once)"),
                                             (0.2, "image_share", GROUP_COLOURS[0], "images (users weighted)")):
            ax_h.bar(centres + offset * width, histogram[column].fillna(0), width=0.4 * width,
                     color=colour, label=name)
        suppressed = histogram[histogram["suppressed"]]
        if len(suppressed):
            ax_h.plot((suppressed["bin_low"] + suppressed["bin_high"]) / 2, np.zeros(len(suppressed)),
                      linestyle="none", marker="x", color=ERROR_COLOUR, markersize=3,
                      label="fewer than the privacy floor")
        ax_h.set_xlim(0, 1)
        _percent_axis(ax_h, "x")
        _percent_axis(ax_h)
        ax_h.legend(loc="upper left")
    ax_h.set_xlabel("user's share of NSFW images")
    ax_h.set_ylabel("share")
    ax_h.grid(axis="x", visible=False)

    ax_d.set_title("b  Rise: within users vs who posts")
    ax_d.axhline(0, color="#555555", linewidth=0.6)
    parts = ["change", "within users", "who posts"]
    if isinstance(decomposition, NotEstimable) or decomposition.empty:
        say_not_estimable(ax_d, decomposition if isinstance(decomposition, NotEstimable)
                          else "no definition gives a decomposition")
    else:
        definitions = [d for d in NSFW_DEFINITION_LABELS if d in set(decomposition["definition"])]
        step = 0.8 / max(1, len(definitions))
        for j, d in enumerate(definitions):
            rows = decomposition[decomposition["definition"] == d].set_index("part").reindex(parts)
            x = np.arange(len(parts)) - 0.4 + step * (j + 0.5)
            err = np.clip(np.vstack([rows["estimate"] - rows["boot_low"], rows["boot_high"] - rows["estimate"]]),
                          0, None)
            ax_d.bar(x, rows["estimate"], width=step * 0.9, yerr=np.nan_to_num(err),
                     color=DEFINITION_COLOURS[d], label=NSFW_DEFINITION_LABELS[d], error_kw=dict(ERROR_KW))
        low, high = ax_d.get_ylim()
        ax_d.set_ylim(low, high + 0.3 * (high - low))  # room for the legend above the bars
        ax_d.legend(loc="upper right", ncols=len(definitions))
        ax_d.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:+.3g} pp" if abs(v) > 1e-12
                                                     else "0"))
    ax_d.set_xticks(np.arange(len(parts)), ["change", "within users", "who posts"])
    ax_d.set_ylabel("change of the NSFW share")
    ax_d.grid(axis="x", visible=False)
    return _finish(fig, synthetic)


def decomposition_by_definition(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """The shift-share rows of a sensitivity table as a frame of ``definition``, ``part``,
    ``estimate``, ``boot_low``, ``boot_high`` (for :func:`fig16_per_user`)."""
    names = {"shift_change": "change", "shift_within": "within users", "shift_who": "who posts"}
    rows = sensitivity[sensitivity["estimate"].isin(names) & (sensitivity["reason"] == "")]
    return pd.DataFrame({"definition": rows["definition"], "part": rows["estimate"].map(names),
                         "estimate": rows["value"], "boot_low": rows["ci_low"],
                         "boot_high": rows["ci_high"]}).reset_index(drop=True)


FIGURES.update({f.__name__: f for f in (
    fig01_volume_nsfw, fig02_level_composition, fig03_adapter_use, fig04_engagement,
    fig05_distinctive_terms, fig06_markers, fig07_creator_lorenz, fig08_model_types,
    fig09_real_person, fig10_top_tags, fig11_personalisation, fig12_real_person_label)})


# --------------------------------------------------------------------------- figures of results
#: The figures of notebook 03, each drawn from the notebook's results object.
IMAGE_FIGURES: dict[str, Callable[[ImageResults, bool], Figure]] = {
    "fig01_volume_nsfw": lambda r, s: fig01_volume_nsfw(r.monthly, synthetic=s),
    "fig02_level_composition": lambda r, s: fig02_level_composition(r.levels, synthetic=s),
    "fig03_adapter_use": lambda r, s: fig03_adapter_use(r.lora_monthly, r.adapter_monthly,
                                                        r.adapter, synthetic=s),
    "fig04_engagement": lambda r, s: fig04_engagement(r.reaction_counts, synthetic=s),
    "fig05_distinctive_terms": lambda r, s: fig05_distinctive_terms(r.terms, top_n=r.top_terms,
                                                                    synthetic=s),
    "fig06_markers": lambda r, s: fig06_markers(r.markers, synthetic=s),
    "fig07_creator_lorenz": lambda r, s: fig07_creator_lorenz(r.lorenz, r.concentration,
                                                              synthetic=s),
    "fig11_personalisation": lambda r, s: fig11_personalisation(
        r.real_person_adapter_monthly, r.real_person_adapter_nsfw, r.family_nsfw, synthetic=s),
    "fig15_family_nsfw": lambda r, s: fig15_family_nsfw(r.family_nsfw_monthly, r.definition, synthetic=s),
    "fig16_per_user": lambda r, s: fig16_per_user(r.per_user_histogram,
                                                  decomposition_by_definition(r.sensitivity), synthetic=s),
}
#: The figures of notebook 04, each drawn from the notebook's results object.
MODEL_FIGURES: dict[str, Callable[[ModelResults, bool], Figure]] = {
    "fig08_model_types": lambda r, s: fig08_model_types(r.types, r.bases, synthetic=s),
    "fig09_real_person": lambda r, s: fig09_real_person(r.real_person_monthly, r.gender,
                                                        r.nsfw_by_gender, synthetic=s),
    "fig10_top_tags": lambda r, s: fig10_top_tags(r.tags_real, r.tags_all, top_n=r.top_tags,
                                                  synthetic=s),
    "fig12_real_person_label": lambda r, s: fig12_real_person_label(
        r.threshold_curve, r.real_person_corrected, r.model_nsfw_monthly, synthetic=s),
}


def figures_of(results: ImageResults | ModelResults | InterventionResults
               ) -> Mapping[str, Callable[[Any, bool], Figure]]:
    """The figures a results object feeds (:data:`IMAGE_FIGURES`, :data:`MODEL_FIGURES` or
    :data:`INTERVENTION_FIGURES`)."""
    if isinstance(results, InterventionResults):
        return INTERVENTION_FIGURES
    return IMAGE_FIGURES if isinstance(results, ImageResults) else MODEL_FIGURES


def draw(name: str, results: ImageResults | ModelResults, synthetic: bool = False) -> Figure:
    """Figure ``name`` drawn from a notebook's results object."""
    figures = figures_of(results)
    if name not in figures:
        raise ValueError(f"{type(results).__name__} draws no figure {name!r}; "
                         f"valid: {', '.join(figures)}")
    return figures[name](results, synthetic)


def show(name: str, results: ImageResults | ModelResults, paths: RunPaths,
         synthetic: bool = False):
    """Draw figure ``name`` from the results, save it and return the PNG for a notebook."""
    return save_and_show(draw(name, results, synthetic), paths, name)


def save_figures(results: ImageResults | ModelResults, paths: RunPaths,
                 synthetic: bool = False) -> list[str]:
    """Draw and save every figure of a results object; return their names."""
    for name in figures_of(results):
        savefig(draw(name, results, synthetic), paths, name)
    return list(figures_of(results))


# --------------------------------------------------------------------------- subculture
@styled
def fig13_subculture_lineage(lineage_images: pd.DataFrame,
                             lineage_models: pd.DataFrame | NotEstimable,
                             syntax: pd.DataFrame | NotEstimable, synthetic: bool = False) -> Figure:
    """Tools and practices: share of images and of new models from anime/booru-lineage base-model
    families per month (a), and the share of prompts in booru tag syntax by family (b), lineage
    families highlighted, with user-bootstrap 95% intervals.

    Inputs: :func:`~helpers.analyse.subculture.lineage_share_by_month` (``all`` denominator) of
    images and of models, :func:`~helpers.analyse.subculture.syntax_share_by_family`.
    """
    fig, (ax_m, ax_f) = new_figure(3.8, nrows=2)
    ax_m.set_title("a  Booru-lineage base models")
    drawn = False
    for result, colour, label in ((lineage_images, GROUP_COLOURS[0], "images"),
                                  (lineage_models, GROUP_COLOURS[1], "new models")):
        if isinstance(result, NotEstimable):
            continue
        part = result[(result["denominator"] == "all") & (result["n"] > 0)]
        if len(part):
            _share_with_band(ax_m, part, colour, label)
            drawn = True
    if drawn:
        ax_m.set_ylim(0, 1)
        _percent_axis(ax_m)
        _date_axis(ax_m)
        ax_m.legend(loc="upper left")
    else:
        say_not_estimable(ax_m, "no image or model has a known base model")
    ax_m.set_ylabel("share of the month")
    ax_f.set_title("b  Prompts in booru tag syntax, by base model")
    ax_f.set_ylim(0, 1)
    _percent_axis(ax_f)
    ax_f.grid(axis="x", visible=False)
    data = (syntax if isinstance(syntax, NotEstimable)
            else syntax[(syntax["marker"] == "booru") & (syntax["n"] > 0)])
    if isinstance(data, NotEstimable) or data.empty:
        say_not_estimable(ax_f, data if isinstance(data, NotEstimable) else "no image has a prompt")
        ax_f.set_xticks([])
    else:
        x = np.arange(len(data))
        err = np.clip(np.vstack([data["share"] - data["boot_low"], data["boot_high"] - data["share"]]), 0, None)
        colours = [GROUP_COLOURS[0] if v else GROUP_COLOURS[1] for v in data["booru_lineage"]]
        ax_f.bar(x, data["share"], yerr=err, color=colours, error_kw=dict(ERROR_KW))
        ax_f.set_xticks(x, list(data["family"]), rotation=30, ha="right", rotation_mode="anchor")
        from matplotlib.patches import Patch

        handles = [Patch(color=GROUP_COLOURS[0], label="booru lineage"),
                   Patch(color=GROUP_COLOURS[1], label="other")]
        ax_f.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncols=2)
    ax_f.set_ylabel("share of prompts")
    return _finish(fig, synthetic)


FIGURES[fig13_subculture_lineage.__name__] = fig13_subculture_lineage
IMAGE_FIGURES["fig13_subculture_lineage"] = lambda r, s: fig13_subculture_lineage(
    r.lineage_monthly, r.lineage_models_monthly, r.syntax_by_family, synthetic=s)


# --------------------------------------------------------------------------- interventions
#: Harm categories drawn by figure 14, one panel each: (column prefix in the rule table, title).
INTERVENTION_PANELS: tuple[tuple[str, str], ...] = (
    ("real_person_nsfw", "a  Real-person ∧ NSFW images"),
    ("minor_nsfw", "b  Minor-coded ∧ NSFW images"),
)
#: Collateral shares below this are drawn on a linear scale, above it logarithmically, so rules
#: that remove almost nothing else stay apart from each other.
COLLATERAL_LINEAR_BELOW = 0.01


def _rule_points(ax: Axes, rules: pd.DataFrame, category: str, colours: Sequence[Any]) -> None:
    """One point per rule with both intervals; rules at the same place share one label."""
    places: dict[tuple[float, float], list[str]] = {}
    for i, row in enumerate(rules.itertuples(index=False)):
        y, x = getattr(row, f"{category}_removed"), row.collateral
        if not (np.isfinite(y) and np.isfinite(x)):
            continue
        yerr = [[max(0.0, y - getattr(row, f"{category}_removed_low"))],
                [max(0.0, getattr(row, f"{category}_removed_high") - y)]]
        xerr = [[max(0.0, x - row.collateral_low)], [max(0.0, row.collateral_high - x)]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", markersize=3.5, color=colours[i],
                    **ERROR_KW)
        places.setdefault((round(x, 4), round(y, 3)), []).append(str(i + 1))
    for (x, y), numbers in places.items():
        ax.annotate(",".join(numbers), (x, y), xytext=(4, -9 if y > 0.9 else 3),
                    textcoords="offset points", fontsize=6.5)


@styled
def fig14_interventions(rules: pd.DataFrame | NotEstimable, harm: pd.DataFrame | NotEstimable,
                        synthetic: bool = False) -> Figure:
    """Each moderation rule as a point: share of harmful images it removes (y) against the share
    of all other images it removes (x, collateral; linear below 1%, logarithmic above), one panel
    per harm category on common axes, with the intervals of the user and label-error bootstrap;
    points are numbered as the legend below."""
    fig, axes = new_figure(5.0, nrows=2, sharex=True, sharey=True)
    sizes = harm.set_index("category") if isinstance(harm, pd.DataFrame) else None
    colours = sns.color_palette("deep", len(rules) if isinstance(rules, pd.DataFrame) else 1)
    for ax, (category, title) in zip(axes, INTERVENTION_PANELS):
        ax.set_title(title)
        ax.set_ylabel("harmful images removed")
        ax.set_xscale("symlog", linthresh=COLLATERAL_LINEAR_BELOW, linscale=0.6)
        ax.set_xlim(-0.002, 1.3)
        ax.set_ylim(-0.05, 1.08)
        ax.set_xticks([0, 0.01, 0.1, 1])
        _percent_axis(ax, "x")
        _percent_axis(ax, "y")
        if isinstance(rules, NotEstimable):
            say_not_estimable(ax, rules)
        elif sizes is None or category not in sizes.index or sizes.loc[category, "images"] == 0:
            say_not_estimable(ax, "no image of this snapshot is in this category")
        else:
            _rule_points(ax, rules, category, colours)
    axes[-1].set_xlabel("other images removed (collateral)")
    if isinstance(rules, pd.DataFrame):
        handles = [mpl.lines.Line2D([], [], marker="o", linestyle="", markersize=3.5, color=colours[i])
                   for i in range(len(rules))]
        fig.legend(handles, [f"{i + 1}  {label}" for i, label in enumerate(rules["label"])],
                   loc="outside lower center", ncol=1, fontsize=6)
    return _finish(fig, synthetic)


FIGURES.update({"fig14_interventions": fig14_interventions})
FIGURES.update({f.__name__: f for f in (fig15_family_nsfw, fig16_per_user)})
#: The figures of notebook 05, each drawn from the notebook's results object.
INTERVENTION_FIGURES: dict[str, Callable[[InterventionResults, bool], Figure]] = {
    "fig14_interventions": lambda r, s: fig14_interventions(r.rules, r.harm, synthetic=s),
}
