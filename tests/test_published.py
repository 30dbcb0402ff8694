"""The committed results the package carries (notebooks 00 and 10 quote them on Colab)."""

import json
from pathlib import Path

import pytest

from qeu_utils.experiment.published import (
    PUBLISHED,
    comparison_table,
    load,
    primary_table,
    publish,
    summarize,
)

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


FIXTURE = Path(__file__).parent / "data" / "curriculum-fixture"


def _scored_fixture(tmp_path, drop_seed=None):
    """The committed tiny-random experiment, scored into ``curriculum-fixture`` (optionally with
    one seed's cells removed, as an interrupted run leaves them)."""
    import shutil

    from qeu_utils.experiment.score import score

    out = tmp_path / "curriculum-fixture"
    shutil.copytree(FIXTURE, out)
    if drop_seed is not None:
        for cell in out.glob(f"runs/*-s{drop_seed}"):
            shutil.rmtree(cell)
    return out, score(out, command="python -m qeu_utils experiment curriculum --phase score")


def test_a_redesigned_result_is_summarized_by_its_primary_endpoints(tmp_path):
    out, result = _scored_fixture(tmp_path)
    saved = summarize(out)
    assert (saved["seeds"], saved["seeds_planned"], saved["measured_after"]) == (
        [0, 1], [0, 1], "stage 1")
    assert list(saved["primary"]) == ["recognition", "rule", "representation"]
    recognition = saved["primary"]["recognition"]
    assert recognition["verdict"] == result["primary"]["recognition"]["verdict"]
    assert [r["comparison"] for r in recognition["comparisons"]] == ["B-C-changed", "B-C-swap"]
    assert saved["strata"]["counts"] == result["strata"]["counts"]
    table = primary_table(saved).splitlines()
    first = recognition["comparisons"][0]
    assert table[2] == (
        f"| recognition | margin_changed | B-C-changed | {first['difference']:+.3f} "
        f"[{first['ci_lo']:+.3f}, {first['ci_hi']:+.3f}] | {first['p_holm']:.3g} | "
        f"{first['verdict']} | {recognition['verdict']} |")
    assert saved["reading"][0].startswith("- **the model recognises unseen items")
    with pytest.raises(ValueError, match="first-design result has no primary endpoints"):
        primary_table(load("curriculum-smollm2-135m-cpu"))


def test_an_unfinished_run_is_scored_as_an_interim_look_without_verdicts(tmp_path):
    out, result = _scored_fixture(tmp_path, drop_seed=1)
    assert (result["seeds"], result["seeds_planned"]) == ([0], [0, 1])
    assert {e["verdict"] for e in result["primary"].values()} == {"pending (1 of 2 seeds)"}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "**Interim: 1 of the 2 planned seeds are finished (0; not yet: 1).**" in report
    assert "- **the model recognises unseen items through their other form (認識)**: pending " \
           "(1 of 2 seeds)" in report


def test_the_margin_is_reported_with_its_two_terms(tmp_path):
    # margin = log p(right) − log p(copy), per item; the terms are secondary rows of their own.
    _, result = _scored_fixture(tmp_path)
    means = result["conditions"]
    for condition in ("base", "B", "C-changed", "C-swap"):
        margin = sum(means[condition]["margin_changed"]) / len(means[condition]["margin_changed"])
        right = sum(means[condition]["logp_changed"]) / len(means[condition]["logp_changed"])
        copy = sum(means[condition]["logp_copy"]) / len(means[condition]["logp_copy"])
        assert margin == pytest.approx(right - copy, abs=1e-3)
    rows = {(r["metric"], r["comparison"]) for r in result["secondary"]["B-C-changed"]}
    assert {("logp_changed", "B-C-changed"), ("logp_copy", "B-C-changed")} <= rows


def test_the_strata_table_shows_each_gate_stratum_with_items_and_k_minus_rest(tmp_path):
    from qeu_utils.experiment.published import strata_table

    out, result = _scored_fixture(tmp_path)
    table = strata_table(summarize(out)).splitlines()
    assert table[0] == ("| stratum | items | B-C-changed [95% CI] | B-C-swap [95% CI] | "
                        "B-base [95% CI] |")
    # strata with no items (J, outside in the fixture) are left out; K minus the rest is last
    assert [line.split(" | ")[0] for line in table[2:]] == [
        "| K", "| both", "| neither", "| K_minus_rest"]
    k = result["strata"]["B-C-swap"]["K"]
    assert table[2].startswith("| K | 3 | ")
    assert f"{k['difference']:+.2f} [{k['ci_lo']:+.2f}, {k['ci_hi']:+.2f}]" in table[2]
