"""The curriculum experiment end to end on tiny-random (the run phase with the text tools
blocked, as on the GPU machine): settings, probes on unseen items with their strata and the
generated sample, resumable cells with raw answers, metrics.json's schema, the claims'
verdicts, and the score phase rerun from the committed fixture alone."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qeu_utils.core.records import read_jsonl
from qeu_utils.experiment.layout import ITEMS, RAW, _read_lines, read_json_gz
from qeu_utils.experiment.metrics import answers_correctly, soft_match
from qeu_utils.experiment.run import run
from qeu_utils.experiment.settings import TEXT_TOOL_MODULES, resolve_settings

FIXTURE = Path(__file__).parent / "data" / "curriculum-fixture"


@pytest.mark.parametrize("answer, expected, kind, hit", [
    ("铁\n解释", ["铁"], "kanji_ja_to_hans", True),
    ("是铁。", ["铁"], "kanji_ja_to_hans", True),
    ("解释\n铁", ["铁"], "kanji_ja_to_hans", False),
    ("It is COFFEE.", ["coffee"], "loanword_to_en", True),
    ("フランス", ["France"], "country_ja_to_en", False),
])
def test_soft_match(answer, expected, kind, hit):
    assert soft_match(answer, expected, kind) is hit


def test_answers_correctly_needs_a_whole_word():
    assert answers_correctly("The capital is Paris.", ["Paris"])
    assert answers_correctly("There are 7 days.", ["seven", "7"])
    assert not answers_correctly("There are 17 days.", ["seven", "7"])


def test_settings_come_from_the_profile_and_refuse_unknown_keys():
    for profile in ("cpu", "t4"):
        settings = resolve_settings(profile)
        assert settings["model"] == "gemma3-270m" and len(settings["seeds"]) >= 5
        assert settings["conditions"] == ["base", "B", "C-changed", "C-swap"]
        assert settings["durability"] is False and settings["generate_per_kind"] == 100
        assert settings["max_new_tokens"] >= 48  # answers may finish (en → polite: ~17 chars)
    assert resolve_settings("cpu")["precision"] == "fp32"
    with pytest.raises(ValueError, match="unknown experiment setting"):
        resolve_settings("cpu", stage3_steps=4)
    with pytest.raises(ValueError, match="conditions must be"):
        resolve_settings("cpu", conditions=["base", "B"])


TINY = ["--profile", "cpu", "--model", "tiny-random", "--seeds", "0", "1", "--stage1-epochs",
        "1", "--stage1-max-steps", "2", "--batch-size", "2", "--probes-per-kind", "3",
        "--generate-per-kind", "4", "--max-new-tokens", "6", "--n-kanji", "6",
        "--n-sentences", "4", "--n-lens", "4", "--init-size", "60", "--dolly-eval-records",
        "3", "--durability", "--stage2-steps", "2", "--gate", "results/gate-gemma3-270m"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """prepare here; run in a fresh process where the text tools cannot be imported (as on
    the GPU machine); score here again."""
    from qeu_utils.__main__ import main

    out = tmp_path_factory.mktemp("exp") / "curriculum"
    gate = ["--gate", str(Path(__file__).parents[1] / "results" / "gate-gemma3-270m")]
    args = [*TINY[:-2], *gate, "--out", str(out)]
    assert main(["experiment", "curriculum", *args, "--phase", "prepare"]) == 0
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in TEXT_TOOL_MODULES)
    argv = ["experiment", "curriculum", *args, "--phase", "run"]
    code = f"import sys; {blocked}; from qeu_utils.__main__ import main; sys.exit(main({argv!r}))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["experiment", "curriculum", *args, "--phase", "score"]) == 0
    return out, done.stdout + done.stderr


def test_metrics_json_schema(experiment):
    out, _ = experiment
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["model"] == "tiny-random" and metrics["seeds"] == [0, 1]
    assert {"base", "B", "C-changed", "C-swap"} == set(metrics["conditions"])
    assert metrics["measured_after"] == "stage 1"
    assert set(metrics["primary"]) == {"recognition", "rule", "representation"}
    for claim, entry in metrics["primary"].items():
        assert {"metric", "difference", "ci_lo", "ci_hi", "method", "verdict"} <= set(entry)
        assert entry["verdict"] in ("supported", "not supported", "not testable on this model")
        assert entry["ci_lo"] <= entry["difference"] <= entry["ci_hi"], claim
        assert "seeds and items resampled together" in entry["method"]
        assert all("p_holm" in r and r["n_seeds"] == 2 for r in entry["comparisons"])
    assert metrics["primary"]["recognition"]["metric"] == "margin_changed"
    assert len(metrics["primary"]["recognition"]["comparisons"]) == 2
    strata = metrics["strata"]
    assert sum(strata["counts"].values()) == metrics["primary"]["recognition"]["comparisons"][
        0]["n_items"]
    assert set(strata["B-C-changed"]) <= {"K", "both", "J", "neither", "outside", "K_minus_rest"}
    for c in ("B", "C-changed", "C-swap"):
        assert len(metrics["stage1"]["final_loss"][c]) == 2
        assert all(x is not None for x in metrics["stage1"]["final_loss"][c])
        assert metrics["stage1"]["tokens_per_epoch"][c]["records"] == 54
    assert metrics["durability"] and metrics["durability"]["B-C-changed"]
    assert {"torch", "transformers", "peft", "trl"} <= set(metrics["environment"]["versions"])
    assert set(metrics["wall_time_s"]) == {"base", *(f"{c}-s{s}" for c in
                                                     ("B", "C-changed", "C-swap") for s in (0, 1))}
    assert metrics["wall_time_s"]["B-s0"]["stage1_s"] > 0
    assert metrics["cost"]["estimate"]["cells"] == 7
    text = (out / "report.md").read_text(encoding="utf-8")
    assert text.index("## Pre-registered primary endpoints") < text.index("## Verdicts")
    assert "## What the comparisons say" in text and "## Caveats" in text
    for claim in metrics["primary"]:
        assert f"- **{claim}: {metrics['primary'][claim]['verdict']}**" in text
    for name in ("differences.png", "stage1_curves.png", "foil_retrieval.png"):
        assert (out / name).stat().st_size > 1000, name


def test_raw_answers_and_margins_are_kept_per_item(experiment):
    out, _ = experiment
    probes = _read_lines(out / "data" / "probes.jsonl.gz")
    for cell in ("base", "B-s0", "C-swap-s1"):
        items = _read_lines(out / "runs" / cell / ITEMS)
        answered = [r for r in items if "answer" in r]
        assert len(answered) == sum(p["generate"] for p in probes)
        assert all(isinstance(r["finished"], bool) for r in answered)
        margins = [r for r in items if "margin" in r]
        assert margins and all(probes[r["i"]]["changed"] for r in margins)
        assert all(r["margin"] == pytest.approx(r["logp"] - r["rival_logp"], abs=2e-4)
                   for r in margins)
    raw = read_json_gz(out / "runs" / "B-s0" / RAW)
    assert raw["after_stage2"]["dolly_loss"] and raw["stage1_tokens"]["tokens"] > 0
    scores = _read_lines(out / "scores.jsonl.gz")
    assert {r["cell"] for r in scores} >= {"base", "B-s0"}
    assert any("exact" in r for r in scores) and any("compliant" in r for r in scores)


def test_probes_carry_strata_and_the_generated_sample_spans_every_direction(experiment):
    out, _ = experiment
    probes = _read_lines(out / "data" / "probes.jsonl.gz")
    assert any(p["stratum"] for p in probes)  # some probe items are in the gate
    generated = [p for p in probes if p["generate"]]
    by_item_kind = {}
    for p in generated:
        by_item_kind.setdefault(p["kind"].split("_")[0], set()).add(p["kind"])
    assert set(by_item_kind) == {"kanji", "country", "loanword", "style"}
    assert all(len(kinds) >= 2 for kinds in by_item_kind.values())  # spread over directions
    assert sum(p["kind"].startswith("kanji") for p in generated) == 4
    for p in probes:
        assert p["changed"] == (p["rival"] not in p["expected"])
    rule = _read_lines(out / "data" / "rule.jsonl")
    assert len(rule) == 8 and {r["register"] for r in rule} == {"plain", "polite"}
    assert all("語" not in r["record"]["instruction"] or "外国語" in r["record"]["instruction"]
               for r in rule)  # names no language


def test_no_probe_item_occurs_in_any_training_split(experiment):
    from qeu_utils.analysis.items import kanji_forms_in

    out, _ = experiment
    data = out / "data"
    train = read_jsonl(data / "init" / "train.jsonl")
    training = train + read_jsonl(data / "init_changed" / "train.jsonl") + read_jsonl(
        data / "init_swap" / "train.jsonl") + read_jsonl(data / "dolly" / "part-1-of-4.jsonl")
    texts = "\n".join(f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in training)
    ids = {r["id"] for r in training}
    taught = kanji_forms_in(train)
    probes = _read_lines(data / "probes.jsonl.gz")
    assert probes
    for probe in probes:
        record = probe["record"]
        assert record["id"] not in ids
        if record["category"] == "kanji":
            assert probe["item"] not in taught
            assert not any(f in taught for f in probe["expected"])
        elif record["category"] == "country":
            assert not any(name in texts for name in probe["expected"])
        elif record["category"] == "katakana":
            assert probe["item"].removeprefix("word:") not in texts
        else:
            assert record["input"] not in texts and record["output"] not in texts
    for row in _read_lines(data / "rule.jsonl"):
        assert row["record"]["input"] not in texts and row["rival"] not in texts


def test_seen_and_unseen_kanji_are_disjoint(experiment):
    from qeu_utils.analysis.items import kanji_forms_in

    out, _ = experiment
    items = json.loads((out / "data" / "items.json").read_text(encoding="utf-8"))
    taught = kanji_forms_in(read_jsonl(out / "data" / "init" / "train.jsonl"))
    seen = {tuple(k) for k in items["kanji_seen"]}
    unseen = {tuple(k) for k in items["kanji_unseen"]}
    assert seen and unseen and not seen & unseen
    assert all(any(f in taught for f in k) for k in seen)
    assert not any(f in taught for k in unseen for f in k)


def test_a_cost_estimate_comes_first_and_a_finished_cell_is_never_rerun(experiment):
    out, log = experiment
    assert "cost estimate: 7 cell(s) to run (6 trained" in log
    assert log.index("cost estimate") < log.index("base: start")
    assert "C-swap-s1: done" in log
    settings = json.loads((out / "data" / "manifest.json").read_text())["settings"]
    assert run(out, settings) == []


def test_prepare_refuses_a_directory_prepared_with_other_data_settings(experiment):
    from qeu_utils.experiment.prepare import prepare

    out, _ = experiment
    settings = json.loads((out / "data" / "manifest.json").read_text())["settings"]
    with pytest.raises(ValueError, match="probes_per_kind"):
        prepare(out, {**settings, "probes_per_kind": 4})
    with pytest.raises(ValueError, match="dolly_eval_records: 3 → None"):
        prepare(out, {**settings, "dolly_eval_records": None})


def test_a_setting_added_later_at_its_default_matches_an_older_manifest(experiment, tmp_path):
    from qeu_utils.experiment.prepare import prepare

    out, _ = experiment
    older = tmp_path / "older"
    shutil.copytree(out / "data", older / "data")
    manifest = json.loads((older / "data" / "manifest.json").read_text())
    del manifest["settings"]["dolly_eval_records"]  # written before the setting existed
    (older / "data" / "manifest.json").write_text(json.dumps(manifest))
    assert prepare(older, {**manifest["settings"], "dolly_eval_records": None}) == manifest


def test_every_condition_starts_stage_1_from_the_same_lora_initialisation(experiment):
    """B and the controls get the same LoRA A matrices from the same seed: the data is the
    only thing that differs."""
    from qeu_utils.experiment.layout import STAGE1_DATA
    from qeu_utils.experiment.run import _train_config
    from qeu_utils.training.trainer import build_trainer

    out, _ = experiment
    settings = json.loads((out / "data" / "manifest.json").read_text())["settings"]

    def lora_a(condition):
        config = _train_config(settings, 0, stage=1, dataset=str(
            out / "data" / STAGE1_DATA[condition]), output_dir=str(out / "scratch"), max_steps=1)
        model = build_trainer(config)["trainer"].model
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}

    b, swap = lora_a("B"), lora_a("C-swap")
    assert b.keys() == swap.keys() and b
    assert all(bool((b[n] == swap[n]).all()) for n in b)


def _cells(effect: float, floor: bool = False):
    """Synthetic per-item values of every cell: B ahead of both controls by ``effect``."""
    from qeu_utils.experiment.score import Cells

    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 40)
    per = {("base", None): {}}
    for condition in ("B", "C-changed", "C-swap"):
        for s in range(5):
            per[(condition, s)] = {}
    for metric in ("margin_changed", "rule_margin", "kanji_gap_unseen"):
        per[("base", None)][metric] = (list(base), [1.0] * 40)
        for (condition, s) in [k for k in per if k[0] != "base"]:
            values = base + (effect if condition == "B" else 0.0) + rng.normal(0, 0.1, 40)
            per[(condition, s)][metric] = (list(values), [1.0] * 40)
    return Cells(per, list(range(5)))


def test_claim_verdicts():
    from qeu_utils.experiment.metrics import MIN_K_SHARE
    from qeu_utils.experiment.score import primary_endpoints

    gate = {"K_share": 0.18, "K_share_ci95": [0.15, 0.21], "K_count": 142, "n_items": 778}
    shown = primary_endpoints(_cells(0.5), gate, {})
    assert {c: e["verdict"] for c, e in shown.items()} == {
        "recognition": "supported", "rule": "supported", "representation": "supported"}
    assert shown["recognition"]["comparison"] == "B-C-changed"
    assert shown["recognition"]["comparisons"][1]["p_holm"] >= \
        shown["recognition"]["comparisons"][1]["p"]
    null = primary_endpoints(_cells(0.0), gate, {})
    assert null["rule"]["verdict"] == "not supported"
    assert "B-C-swap: no clear difference" in null["rule"]["reason"]
    english = {**gate, "K_share": 0.006, "K_share_ci95": [0.001, 0.013]}
    assert MIN_K_SHARE > 0.013
    untestable = primary_endpoints(_cells(0.5), english, {})
    assert all(e["verdict"] == "not testable on this model" for e in untestable.values())
    assert "knowledge gate" in untestable["recognition"]["reason"]


def _close(a, b, path="metrics"):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{k}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


def test_the_score_phase_reruns_from_the_committed_raw_answers_alone(tmp_path):
    """tests/data/curriculum-fixture holds what a result commits (data/manifest.json, the
    probes, each cell's raw.json.gz and items.jsonl.gz, the cost estimate) and the
    metrics.json the score phase made of it: scoring again gives the same metrics.json."""
    from qeu_utils.experiment.score import score

    out = tmp_path / "fixture"
    shutil.copytree(FIXTURE, out)
    expected = json.loads((FIXTURE / "metrics.json").read_text(encoding="utf-8"))
    (out / "metrics.json").unlink()
    result = score(out, command=expected["commands"]["score"])
    _close(json.loads((out / "metrics.json").read_text(encoding="utf-8")), expected)
    assert result["seeds"] == expected["seeds"]
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size < 400_000  # a small fixture


def test_the_report_names_the_result_folder_as_the_score_phase_was_given_it(tmp_path,
                                                                            monkeypatch):
    """A cell run elsewhere with an absolute --out is reported with the relative folder the
    score phase was given, so report.md carries no machine's path; other commands are kept."""
    from qeu_utils.experiment.score import _relative

    monkeypatch.chdir(tmp_path)
    out = Path("results/x")
    typed = f"python -m qeu_utils experiment curriculum --out {tmp_path / 'results' / 'x'}"
    assert _relative(typed, out) == "python -m qeu_utils experiment curriculum --out results/x"
    other = "python -m qeu_utils experiment curriculum --out /elsewhere/results/x"
    assert _relative(other, out) == other
    assert _relative(typed, tmp_path / "results" / "x") == typed
    assert _relative(None, out) is None
