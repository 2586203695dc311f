"""What every plot of a run shares: matplotlib without a display, and PNGs written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NO_MATPLOTLIB = "no plot: matplotlib is not installed (pip install 'pytest-inferlab[plot]')"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display on CI or GPU hosts); ImportError if absent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: Path) -> Path:
    """Write ``figure`` to ``path`` through a temporary file: a reader never sees half a PNG."""
    plt = pyplot()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".tmp-{path.name}")
    figure.savefig(temp, format="png")
    plt.close(figure)
    temp.replace(path)
    return path


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def table_and_plot(items: Any, format_lines: Any, plot: Any, path: Path) -> tuple[list[str], Path | None, str | None]:
    """(table lines, PNG path or None, why no PNG) of a run's summary; nothing when ``items`` is empty."""
    if not items:
        return [], None, None
    if not has_matplotlib():
        return format_lines(items), None, NO_MATPLOTLIB
    return format_lines(items), plot(items, path), None
