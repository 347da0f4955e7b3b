"""The stages' plots, made off screen and saved the same way.

In: a figure size (and any other ``plt.subplots`` argument). Out: :func:`subplots` gives a figure and
axes drawn with matplotlib's file-only backend (stages run on servers without a display);
:func:`finish` adds the grid and legend every stage plot has, tightens the layout and saves it.
"""

from __future__ import annotations

from pathlib import Path


def subplots(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` on the Agg backend: ``(figure, axes)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def finish(fig, axes, path: str | Path | None = None, legend: bool = True):
    """Light grid on each of ``axes`` (one or many), a legend on the first, tight layout; saved to ``path`` if given."""
    axes = list(getattr(axes, "flat", [axes]))
    for ax in axes:
        ax.grid(alpha=0.3)
    if legend:
        axes[0].legend()
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig
