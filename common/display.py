"""Showing things: a table (Markdown in a notebook, aligned text in a terminal) and a block
diagram of a network block (matplotlib), so that a notebook cell shows the idea, not the plumbing.

    common.table([("ResNet-20", 0.27e6), ("ResNet-56", 0.85e6)], header=("model", "params"))
    common.block_diagram(["3x3 conv, 64", "3x3 conv, 64"], shortcut="identity", merge="+")
"""
from __future__ import annotations

import functools
import io
import numbers
from typing import Iterable, Sequence


class Table:
    """Rows under a header: shown as a Markdown table in a notebook (``_repr_markdown_``) and as
    aligned text by ``print`` or in a terminal. Numbers are right-aligned; every cell is
    ``str(value)``, so format numbers before (``f"{x:.3f}"``) where the default is too long."""

    def __init__(self, rows: Iterable[Sequence], header: Sequence | None = None):
        self.rows = [tuple(r) for r in rows]
        self.header = tuple(header) if header is not None else None
        widths = {len(r) for r in self.rows} | ({len(self.header)} if self.header else set())
        if len(widths) > 1:
            raise ValueError(f"Every row (and the header) needs the same number of cells; got "
                             f"rows of {sorted(widths)} cells.")
        n = widths.pop() if widths else 0
        self._numeric = [bool(self.rows) and all(
            isinstance(r[i], numbers.Number) and not isinstance(r[i], bool) for r in self.rows)
            for i in range(n)]

    def __str__(self) -> str:
        lines = [self.header] if self.header else []
        cells = [[str(v) for v in r] for r in lines + self.rows]
        if not cells:
            return ""
        widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
        out = ["  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(r, widths, self._numeric)).rstrip() for r in cells]
        if self.header:
            out.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(out)

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        def row(r):
            return "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ")
                                     for v in r) + " |"
        header = self.header or ("",) * len(self._numeric)
        rule = "|" + "|".join("---:" if num else "---" for num in self._numeric) + "|"
        return "\n".join([row(header), rule, *map(row, self.rows)])


def table(rows: Iterable[Sequence], header: Sequence | None = None) -> Table:
    """A table to show as the last line of a notebook cell (Markdown) or to ``print`` (text):
    ``common.table([("ResNet-20", 20, 0.27e6)], header=("model", "layers", "params"))``."""
    return Table(rows, header)


# Block diagrams ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _figure_class():
    from matplotlib.figure import Figure  # optional here: heavy to import, only to draw

    class ShownFigure(Figure):
        """A Figure outside pyplot (nothing shown twice, nothing kept open) that a notebook shows
        as a PNG when it is a cell's last value; in a script, ``fig.savefig(path)``."""

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=100, bbox_inches="tight")
            return buf.getvalue()

    return ShownFigure


def _figure(**kwargs):
    return _figure_class()(**kwargs)


MERGES = {"+": "+", "x": "×", "×": "×", "*": "×", "concat": "C"}
_PITCH, _BOX_H, _GAP, _R = 1.3, 0.7, 0.6, 0.3          # in data units; 1 unit = _INCH inches
_INCH = 0.42
_LAYER_COLOUR, _SHORTCUT_COLOUR = "#dbe9f6", "C3"


def _box(ax, x, y_top, width, label, fontsize):
    """A layer: a box of ``width`` centred on x, its top at y_top; returns its bottom."""
    from matplotlib.patches import FancyBboxPatch  # optional here: heavy to import, only to draw

    ax.add_patch(FancyBboxPatch((x - width / 2, y_top - _BOX_H), width, _BOX_H,
                                boxstyle="round,pad=0,rounding_size=0.08", fc=_LAYER_COLOUR,
                                ec="k", lw=1, gid="layer"))
    ax.text(x, y_top - _BOX_H / 2, label, ha="center", va="center", fontsize=fontsize)
    return y_top - _BOX_H


def _arrow(ax, start, end, colour="k", gid="arrow"):
    from matplotlib.patches import FancyArrowPatch  # optional here: heavy to import, only to draw

    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=colour,
                                 lw=1.3, shrinkA=0, shrinkB=0, gid=gid))


def _geometry(layers, shortcut, after, notes, output_label, fontsize) -> dict:
    """Sizes in data units: the layer boxes' width, the shortcut's boxes' width and x, the half
    width and the height of the whole drawing."""
    side = [] if shortcut is None or isinstance(shortcut, str) else list(shortcut)
    char = 0.62 * fontsize / 72 / _INCH                     # the width of a character, in units
    width = max(2.4, char * max(map(len, [*layers, *after])) + 0.6)
    side_w = max([char * len(s) + 0.5 for s in side] + [0.0])
    note_w = max([char * len(n) for n in notes] + [0.0])
    x_short = width / 2 + 0.7 + side_w / 2                 # where the shortcut runs down
    rows = len(layers) + len(after) + (shortcut is not None)
    return dict(side=side, width=width, side_w=side_w, x_short=x_short,
                half=max(width / 2 + note_w + 0.4, x_short + side_w / 2 + 0.6),
                height=1.4 + rows * _PITCH + (0.5 if output_label else 0))


def block_diagram(layers: Sequence[str], shortcut: str | Sequence[str] | None = "identity",
                  merge: str = "+", after: Sequence[str] = (), notes: Sequence[str] = (),
                  title: str | None = None, input_label: str = "x",
                  output_label: str | None = None, ax=None, fontsize: float = 9):
    """Draw one block, top to bottom: ``input_label``, an arrow into the first of ``layers``
    (one box each), the merge node (a circle: ``merge`` "+" for a residual addition, "x" for
    SE-Net's channel scaling, "concat" for DenseNet's concatenation), the ``after`` layers (e.g.
    ``["ReLU"]``) and an arrow out, labelled ``output_label``. ``shortcut`` leaves the input
    arrow on the right and enters the merge node: a label for a plain line ("identity"), a list
    of layers drawn as boxes on it (a projection), or None for no shortcut and no merge (a plain
    block). ``notes[i]`` is written beside the arrow that leaves layer i ("BN, ReLU").
    Returns a new Figure sized to fit, or draws into ``ax`` (then choose its size so the text
    fits; ``block_diagrams`` does that for several blocks side by side). ResNet's Figure 5,
    left::

        block_diagram(["3x3, 64", "3x3, 64"], notes=["BN, ReLU", "BN"], after=["ReLU"])
    """
    if merge not in MERGES:
        raise ValueError(f"Unknown merge {merge!r}: choose one of {', '.join(map(repr, MERGES))}.")
    if not layers:
        raise ValueError("A block needs at least one layer to draw.")
    if len(notes) > len(layers):
        raise ValueError(f"{len(notes)} notes for {len(layers)} layers: one note at most per "
                         "layer (beside the arrow that leaves it).")
    g = _geometry(layers, shortcut, after, notes, output_label, fontsize)
    if ax is None:
        fig = _figure(figsize=(2 * g["half"] * _INCH, g["height"] * _INCH + (0.3 if title else 0)),
                     layout="constrained")
        ax = fig.add_subplot()

    y = 0.0
    ax.text(0, y + 0.05, input_label, ha="center", va="bottom", fontsize=fontsize + 1)
    split = y - _GAP / 2                                    # where the shortcut leaves
    _arrow(ax, (0, y), (0, y - _GAP))
    y -= _GAP
    for i, label in enumerate(layers):
        y = _box(ax, 0, y, g["width"], label, fontsize)
        if i < len(notes) and notes[i]:
            ax.text(-0.15, y - _GAP / 2, notes[i], ha="right", va="center",
                    fontsize=fontsize - 1, color="0.35")
        if i < len(layers) - 1:
            _arrow(ax, (0, y), (0, y - _GAP))
            y -= _GAP
    if shortcut is not None:
        from matplotlib.patches import Circle  # optional here: heavy to import, only to draw

        centre, x_short = y - _GAP - _R, g["x_short"]
        _arrow(ax, (0, y), (0, centre + _R))
        ax.add_patch(Circle((0, centre), _R, fc="w", ec="k", lw=1.2, gid="merge"))
        ax.text(0, centre, MERGES[merge], ha="center", va="center", fontsize=fontsize + 3)
        if merge == "concat":
            ax.text(-_R - 0.1, centre, "concat", ha="right", va="center",
                    fontsize=fontsize - 1, color="0.35")
        ax.plot([0, x_short, x_short], [split, split, centre], color=_SHORTCUT_COLOUR, lw=1.5,
                zorder=1, gid="shortcut")
        ax.plot([0], [split], "o", color=_SHORTCUT_COLOUR, ms=3)
        _arrow(ax, (x_short, centre), (_R, centre), _SHORTCUT_COLOUR)
        if g["side"]:                                       # boxes on the shortcut
            n = len(g["side"])
            y_side = (split + centre) / 2 + (n * _PITCH - _GAP) / 2
            for label in g["side"]:
                _box(ax, x_short, y_side, g["side_w"], label, fontsize)
                y_side -= _PITCH
        else:
            ax.text(x_short + 0.15, (split + centre) / 2, shortcut, rotation=90, ha="left",
                    va="center", fontsize=fontsize - 1, color=_SHORTCUT_COLOUR)
        y = centre - _R
    for label in after:
        _arrow(ax, (0, y), (0, y - _GAP))
        y = _box(ax, 0, y - _GAP, g["width"], label, fontsize)
    _arrow(ax, (0, y), (0, y - _GAP))
    if output_label:
        ax.text(0, y - _GAP - 0.05, output_label, ha="center", va="top", fontsize=fontsize + 1)
    ax.set_xlim(-g["half"], g["half"])
    ax.set_ylim(0.6 - g["height"], 0.6)
    ax.set_aspect("equal")                                  # the merge node stays a circle
    ax.set_anchor("N")                                      # panels side by side align at the top
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    return ax.figure


def block_diagrams(*blocks: dict, title: str | None = None, fontsize: float = 9):
    """Several blocks side by side, one panel each, on one scale so that every label fits its
    box. Each block is a dict of ``block_diagram``'s arguments. Returns the Figure::

        block_diagrams(dict(layers=["3x3, 64", "3x3, 64"], title="basic"),
                       dict(layers=["1x1, 64", "3x3, 64", "1x1, 256"], title="bottleneck"),
                       title="ResNet, Figure 5")
    """
    if not blocks:
        raise ValueError("Give at least one block: a dict of block_diagram's arguments.")
    sizes = []
    for b in blocks:
        if "layers" not in b:
            raise ValueError(f"Each block needs 'layers'; got the keys {sorted(b)}.")
        sizes.append(_geometry(b["layers"], b.get("shortcut", "identity"), b.get("after", ()),
                               b.get("notes", ()), b.get("output_label"),
                               b.get("fontsize", fontsize)))
    titled = any(b.get("title") for b in blocks) + bool(title)
    fig = _figure(figsize=(sum(2 * s["half"] for s in sizes) * _INCH,
                          max(s["height"] for s in sizes) * _INCH + 0.3 * titled),
                 layout="constrained")
    axes = fig.subplots(1, len(blocks), squeeze=False,
                        width_ratios=[s["half"] for s in sizes])[0]
    for ax, b in zip(axes, blocks):
        block_diagram(**{"fontsize": fontsize, **b}, ax=ax)
    if title:
        fig.suptitle(title, fontsize=fontsize + 2)
    return fig
