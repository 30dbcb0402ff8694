import math

import pytest

from qeu_utils.ablation import mean_ci, summarize, to_markdown


def test_mean_ci_uses_student_t():
    mean, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert hi - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0)


def test_summary_reads_lower_is_better_metrics_the_right_way():
    runs = {
        "with": [{"dolly_loss": 1.0, "kanji_gap": 0.30}, {"dolly_loss": 1.1, "kanji_gap": 0.31},
                 {"dolly_loss": 0.9, "kanji_gap": 0.29}],
        "without": [{"dolly_loss": 2.0, "kanji_gap": 0.30}, {"dolly_loss": 2.1, "kanji_gap": 0.32},
                    {"dolly_loss": 1.9, "kanji_gap": 0.28}],
    }
    rows = {r["metric"]: r for r in summarize(runs)}
    assert rows["dolly_loss"]["difference"] == pytest.approx(-1.0)
    assert rows["dolly_loss"]["verdict"] == "stage 1 helps"
    assert rows["kanji_gap"]["verdict"] == "no clear difference"
    text = to_markdown({"seeds": [0, 1, 2], "kanji_layer": 7, "table": list(rows.values())})
    assert "| dolly_loss | 1.0000 | 2.0000 | -1.0000" in text
    assert "Stage 1 helps on: dolly_loss" in text


def test_all_unclear_says_the_claim_is_not_supported():
    runs = {"with": [{"kanji_gap": 0.1}, {"kanji_gap": 0.3}],
            "without": [{"kanji_gap": 0.2}, {"kanji_gap": 0.2}]}
    text = to_markdown({"seeds": [0, 1], "kanji_layer": 3, "table": summarize(runs)})
    assert "do not support the claim" in text
