"""Training curves: ``plot_histories`` draws one or more runs' histories side by side, wherever
the code runs (inline in a notebook, in a window, or as a PNG file from a headless script), and
``fit`` redraws a live plot in a notebook as it trains. matplotlib and IPython are imported
only where a figure is drawn or shown: ``import common`` never pays for them.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

from common import runtime


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (where figures are shown inline)."""
    try:
        from IPython import get_ipython  # optional: only Jupyter has it
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"



#: What a plot of smoke-mode runs says about its curves.
SMOKE_NOISE = "the curves are noise (a tiny subset, a couple of epochs), not results"


def _mode_text(histories: Mapping[str, Mapping]) -> str:
    """'quick mode: 8 of 182 epochs' (and the like) for the runs not trained in full; for smoke
    runs, that their curves are noise."""
    parts = []
    for h in histories.values():
        mode = h.get("mode") or ("smoke" if h.get("smoke") else "full")
        if mode != "full":
            text = f"{mode} mode: {h.get('epochs_run', '?')} of " \
                   f"{h.get('recipe', {}).get('epochs', '?')} epochs"
            if text not in parts:
                parts.append(text)
    if any((h.get("mode") or ("smoke" if h.get("smoke") else "full")) == "smoke"
           for h in histories.values()):
        parts.append(SMOKE_NOISE)
    return "; ".join(parts)


def _figure(histories: Mapping[str, Mapping], metrics, figure=None, title: str | None = None):
    if figure is None:
        from matplotlib.figure import Figure  # optional here: heavy, only to draw or show
        figure = Figure
    fig = figure(figsize=(4.2 * len(metrics), 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for label, h in histories.items():
            if h.get(metric):
                ax.plot(h["epoch"], h[metric], label=label, marker="." if len(h[metric]) < 20
                        else None)
        if metric.startswith("val_") and not any(h.get(metric) for h in histories.values()):
            ax.text(0.5, 0.5, "no validation set\n(val_fraction=0)", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
        ax.set_xlabel("epoch")
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        if "acc" in metric:
            ax.set_ylim(0, 1)
    if len(histories) > 1 or not all(h.get("offline") is False for h in histories.values()):
        if any(ax.get_lines() for ax in axes):
            axes[0].legend(fontsize="small")
    lines = [title] if title else []
    sets = {h.get("dataset") for h in histories.values() if h.get("dataset")}
    if sets:
        lines.append("data: " + ", ".join(sorted(sets)))
    if _mode_text(histories):
        lines.append(_mode_text(histories))
    if lines:
        fig.suptitle("\n".join(lines), fontsize="small")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def show_live(history, handle):
    """The live plot of a run in a notebook: shown once (``handle`` None), then updated in
    place; returns the display handle to pass next time."""
    from IPython.display import Image, display  # optional: only in a notebook

    metrics = ("train_loss", "val_loss", "val_acc") if history.get("val_acc") or \
        history.get("validation", True) else ("train_loss", "train_acc")
    img = Image(data=_png(_figure({history.get("model", "run"): history}, metrics)))
    if handle is None:
        return display(img, display_id=True)
    handle.update(img)
    return handle


def _interactive_backend() -> bool:
    """Whether matplotlib's backend opens windows (not Agg, PDF, SVG... of a headless run)."""
    import matplotlib  # optional here: heavy, only to draw or show

    try:
        from matplotlib.backends import (  # optional here: heavy, only to draw or show
            BackendFilter,
            backend_registry,
        )
        interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:                                     # matplotlib before 3.9
        interactive = matplotlib.rcsetup.interactive_bk
    return matplotlib.get_backend().lower() in {b.lower() for b in interactive}


def plot_histories(histories: Mapping[str, Mapping] | Mapping, metrics=("train_loss", "val_acc"),
                   show: bool = True, path: str | Path | None = None, title: str | None = None):
    """Curves of one or more runs side by side: ``{"label": history, ...}`` (or one history).

    title: the figure's first line, above the lines it always carries (the data; the mode of the
    runs not trained in full, and for smoke runs that their curves are noise).

    show=False returns the matplotlib Figure and shows nothing. With show (the default) the
    figure is shown wherever the code runs, and None returned: inline in a notebook; in a
    window from a script with a window-opening matplotlib backend (``plt.show()``, which waits
    until the window is closed); and from a headless script (matplotlib's Agg backend) it is
    saved as a PNG, whose path is printed: ``path``, else runs/plots/<first label>.png.
    ``path`` also saves the figure in the other cases."""
    if "epoch" in histories:          # a single history
        histories = {histories.get("model", "run"): histories}
    if not show:
        fig = _figure(histories, metrics, title=title)
        if path is not None:
            _save_png(fig, path)
        return fig
    if in_notebook():
        fig = _figure(histories, metrics, title=title)
        from IPython.display import Image, display  # optional here: heavy, only to draw or show
        display(Image(data=_png(fig)))
        if path is not None:
            _save_png(fig, path)
        return None
    if _interactive_backend():
        import matplotlib.pyplot as plt  # optional here: heavy, only to draw or show
        fig = _figure(histories, metrics, figure=plt.figure, title=title)
        if path is not None:
            _save_png(fig, path)
        plt.show()
        return None
    fig = _figure(histories, metrics, title=title)
    if path is None:
        label = "".join(c if c.isalnum() or c in "-_." else "_" for c in next(iter(histories)))
        path = runtime.runs_dir("plots", f"{label or 'run'}.png")
    _save_png(fig, path)
    print(f"plot saved to {path} (no display here: matplotlib's backend is "
          f"{__import__('matplotlib').get_backend()})")
    return None


def _save_png(fig, path: str | Path) -> None:
    """The figure as a PNG file at ``path``, written atomically."""
    runtime.atomic_write(Path(path), _png(fig))
