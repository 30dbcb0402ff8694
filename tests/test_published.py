"""The committed results the package carries (notebooks 00 and 10 quote them on Colab)."""

import json
from pathlib import Path

import pytest

from qeu_utils.experiment.published import PUBLISHED, comparison_table, load, publish, summarize

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize("name", PUBLISHED)
def test_each_packaged_summary_is_the_one_made_from_results_now(name):
    # A stale copy fails here: rerun publish("results") after changing a committed result.
    assert load(name) == json.loads(json.dumps(summarize(RESULTS / name)))


def test_publish_writes_one_file_per_result(tmp_path):
    written = publish(RESULTS, out=tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{n}.json" for n in PUBLISHED)


def test_the_gate_summaries_carry_the_primary_numbers():
    gemma, smol = load("gate-gemma3-270m"), load("gate-smollm2-135m-instruct")
    assert (gemma["model"], gemma["n_items"]) == ("gemma3-270m", 778)
    assert gemma["primary"]["K_count"] == 142
    assert smol["primary"]["K_count"] == 5
    assert gemma["by_kind"]["kanji"] == {"items": 382, "K": 124}


def test_the_curriculum_table_shows_difference_interval_and_verdict():
    saved = load("curriculum-smollm2-135m-cpu")
    table = comparison_table(saved, ["forgetting_kept", "probe_exact_changed"]).splitlines()
    assert table[0] == "| metric | B-A [95% CI] | verdict | B-C [95% CI] | verdict |"
    assert table[2] == ("| forgetting_kept | -0.419 [-0.591, -0.258] | B worse | "
                        "-0.215 [-0.344, -0.097] | B worse |")
    assert table[3].startswith("| probe_exact_changed | +0.000 [+0.000, +0.000] |")
    assert saved["reading"][0].startswith("- **the answer format")


def test_unknown_names_and_folders_are_errors(tmp_path):
    with pytest.raises(ValueError, match="no published result 'curriculum-x'.*gate-gemma3-270m"):
        load("curriculum-x")
    with pytest.raises(ValueError, match="not a committed result"):
        summarize(tmp_path)
    with pytest.raises(FileNotFoundError, match="summary.json: missing"):
        summarize(tmp_path / "gate-nothing")
