"""Matplotlib set up for labels in Japanese, Traditional *and* Simplified Chinese.

IPAexGothic (what matplotlib-fontja / japanize-matplotlib ship) lacks most Simplified-only
characters (铁 图 泽 卖 …), so we look for a full Noto Sans CJK / Source Han Sans font at run
time: an installed system font first (Debian ``fonts-noto-cjk``), then the OTF shipped by
the PyPI package ``cvttf-NotoSansCJK-Regular`` (in requirements.txt).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import warnings
from pathlib import Path

# Family names that cover Japanese, Traditional and Simplified Chinese in one font.
FULL_CJK_FAMILIES = (
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "Source Han Sans JP",
    "Source Han Sans",
    "Noto Serif CJK JP",
)

# A string to check a font against: kana, Japanese shinjitai, Simplified and Traditional forms.
GLYPH_CHECK = "あア日本語铁图泽卖鐵圖澤賣"


@functools.cache
def cjk_font_path() -> Path | None:
    """The file of a font that renders Japanese, Simplified and Traditional Chinese, or None."""
    from matplotlib import font_manager

    for entry in font_manager.fontManager.ttflist:
        if entry.name in FULL_CJK_FAMILIES:
            return Path(entry.fname)
    spec = importlib.util.find_spec("cvttf_NotoSansCJK_Regular")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            for found in sorted(Path(loc).glob("*.otf")):
                return found
    return None


@functools.cache
def use_cjk_font() -> str | None:
    """Make the CJK font matplotlib's default sans-serif font; return its family name.

    Warns (once) and returns None when no such font is installed: plots then show tofu boxes.
    """
    import matplotlib
    from matplotlib import font_manager

    path = cjk_font_path()
    if path is None:
        warnings.warn(
            "No font covering Japanese + Simplified + Traditional Chinese was found; CJK labels "
            "will render as boxes. Install `pip install cvttf-NotoSansCJK-Regular` or Debian's "
            "`fonts-noto-cjk`.",
            stacklevel=2,
        )
        return None
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = [family, "DejaVu Sans"]
    # The font's minus sign is fine, but keep ASCII hyphen-minus for consistency with code.
    matplotlib.rcParams["axes.unicode_minus"] = False
    return family


def missing_glyphs(text: str, font_path: Path | None = None) -> str:
    """The characters of ``text`` that the font has no glyph for (empty when all render)."""
    from matplotlib.ft2font import FT2Font

    path = font_path or cjk_font_path()
    if path is None:
        return "".join(ch for ch in text if not ch.isspace())
    font = FT2Font(str(path))
    charmap = font.get_charmap()
    return "".join(ch for ch in text if not ch.isspace() and ord(ch) not in charmap)


def save_png(fig, path, dpi: int = 110) -> None:
    """Save ``fig`` as a PNG with a 256-colour palette: plots are flat colours and anti-aliased
    text, so the picture looks the same at about a third of the bytes, and the notebooks that
    show it stay small enough to read on GitHub."""

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(256).save(path, format="PNG", optimize=True)


def pyplot():
    """``matplotlib.pyplot`` with the CJK font set up: the one way the package plots.

    No ``matplotlib.use("Agg")``: that would switch a notebook's inline backend off for good;
    without a display matplotlib falls back to Agg by itself."""
    import matplotlib.pyplot as plt

    use_cjk_font()
    return plt
