"""The one way the training tools draw and save a figure (matplotlib, Agg backend, imported lazily so that
the modules that plot stay importable without matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: Path, dpi: int = 110) -> None:
    """Lay out ``fig``, write it to ``out`` (its folder created) and close it."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    pyplot().close(fig)
