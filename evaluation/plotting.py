"""What every figure of the suite shares: the off-screen backend, legible font sizes, PNG bytes.

The report (:mod:`evaluation.report`), Fig. 2 (:mod:`evaluation.fig2`) and the applications
(:mod:`evaluation.applications`) draw with matplotlib through these three pieces, so that every
figure is rendered the same way: off screen (the Agg backend, no display needed), with text of at
least 10 pt at 100 % zoom (:data:`RC`), and written as PNG bytes that the caller stores atomically.
matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import io

__all__ = ["DPI", "RC", "png_bytes", "pyplot"]

#: Resolution of every figure: sizes in inches x 100 = pixels, so 10 pt text is about 14 px high.
DPI = 100
#: Font sizes of every figure (matplotlib rc parameters, used with ``plt.rc_context(RC)``).
RC = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
      "xtick.labelsize": 10, "ytick.labelsize": 10, "figure.titlesize": 12}


def pyplot():
    """``matplotlib.pyplot`` on the off-screen Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig, *, tight: bool = False) -> bytes:
    """The figure as a PNG file's content at :data:`DPI`; the figure is closed.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    tight : bool
        Grow or trim the canvas to what is drawn (e.g. a legend outside the axes).

    Returns
    -------
    bytes
        The PNG file's content.
    """
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, **({"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}))
    finally:
        pyplot().close(fig)
    return buf.getvalue()
