import warnings

import matplotlib

matplotlib.use("Agg")

from qeu_utils.core.plotting import GLYPH_CHECK, cjk_font_path, missing_glyphs, use_cjk_font  # noqa: E402


def test_a_full_cjk_font_is_found():
    path = cjk_font_path()
    assert path is not None and path.is_file()
    assert missing_glyphs(GLYPH_CHECK) == ""


def test_missing_glyphs_names_what_a_font_lacks():
    from matplotlib import font_manager

    dejavu = font_manager.findfont("DejaVu Sans")
    assert missing_glyphs("aあ铁", font_path=dejavu) == "あ铁"


def test_japanese_and_chinese_labels_render_without_missing_glyphs(tmp_path):
    import matplotlib.pyplot as plt

    assert use_cjk_font()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title("日本語 鉄 / 简体 铁图泽卖 / 繁體 鐵圖澤賣")
        ax.set_xlabel("カタカナ")
        fig.savefig(tmp_path / "cjk.png")
        plt.close(fig)
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert (tmp_path / "cjk.png").stat().st_size > 0
