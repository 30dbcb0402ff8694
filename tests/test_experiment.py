"""The curriculum experiment: the link-broken control, probes on unseen items, statistics, and
the three phases end to end on tiny-random (the run phase with the text tools blocked, as on
the GPU machine)."""

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict

import pytest

from qeu_utils.core.records import read_jsonl
from qeu_utils.experiment.metrics import answers_correctly, soft_match
from qeu_utils.experiment.run import run
from qeu_utils.experiment.settings import TEXT_TOOL_MODULES, resolve_settings
from qeu_utils.experiment.stats import compare, paired_bootstrap


def test_paired_bootstrap_covers_a_constant_shift_exactly():
    row = paired_bootstrap([[1.5] * 20], [[1.0] * 20])
    assert row["ci_lo"] == pytest.approx(0.5) and row["ci_hi"] == pytest.approx(0.5)
    row = paired_bootstrap([[0.0, 1.0] * 20], [[0.0] * 40])
    assert row["ci_lo"] < 0.5 < row["ci_hi"]


def test_compare_reads_lower_is_better_and_needs_the_interval_to_exclude_zero():
    per_item = {("B", 0): {"dolly_loss": ([1.0, 1.1, 0.9], [1, 1, 1]),
                           "probe_exact": ([1.0, 0.0, 1.0], [1, 1, 1])},
                ("A", 0): {"dolly_loss": ([2.0, 2.1, 1.9], [1, 1, 1]),
                           "probe_exact": ([0.0, 1.0, 1.0], [1, 1, 1])}}
    rows = {r["metric"]: r for r in compare(per_item, "B", "A", [0])}
    assert rows["dolly_loss"]["difference"] == pytest.approx(-1.0)
    assert rows["dolly_loss"]["verdict"] == "B better"
    assert rows["probe_exact"]["verdict"] == "no clear difference"


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
    settings = resolve_settings("cpu")
    assert settings["model"] == "gemma3-270m" and settings["precision"] == "fp32"
    assert settings["stage1_epochs"] == 10 and settings["conditions"] == ["A", "B", "C"]
    assert settings["probes_per_kind"] >= 200
    with pytest.raises(ValueError, match="unknown experiment setting"):
        resolve_settings("cpu", stage3_steps=4)
    with pytest.raises(ValueError, match="must include A, B and C"):
        resolve_settings("cpu", conditions=["A", "B"])


TINY = ["--profile", "cpu", "--model", "tiny-random", "--seeds", "0", "--stage1-epochs", "1",
        "--stage1-max-steps", "2", "--stage2-steps", "2", "--batch-size", "2",
        "--probes-per-kind", "2", "--max-new-tokens", "4", "--n-kanji", "5", "--n-sentences",
        "4", "--n-lens", "3", "--init-size", "60", "--dolly-eval-records", "3"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """prepare here; run in a fresh process where the text tools cannot be imported (as on
    the GPU machine); score here again."""
    from qeu_utils.__main__ import main

    out = tmp_path_factory.mktemp("exp") / "curriculum"
    assert main(["experiment", "curriculum", *TINY, "--out", str(out), "--phase", "prepare"]) == 0
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in TEXT_TOOL_MODULES)
    argv = ["experiment", "curriculum", *TINY, "--out", str(out), "--phase", "run"]
    code = f"import sys; {blocked}; from qeu_utils.__main__ import main; sys.exit(main({argv!r}))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["experiment", "curriculum", *TINY, "--out", str(out), "--phase", "score"]) == 0
    return out, done.stdout + done.stderr


def test_metrics_json_schema(experiment):
    out, _ = experiment
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for key in ("model", "seeds", "stage1_epochs", "probes", "conditions", "comparisons",
                "environment", "wall_time_s", "command"):
        assert key in metrics, key
    assert metrics["model"] == "tiny-random" and metrics["seeds"] == [0]
    assert set(metrics["conditions"]) == {"A", "B", "C"}
    for condition in "ABC":
        values = metrics["conditions"][condition]
        assert {"probe_exact", "dolly_loss", "kanji_gap_unseen", "kanji_gap_seen",
                "lens_p_answer_unseen", "plain_zh_gap"} <= set(values)
        assert all(len(v) == 1 for v in values.values())
    assert set(metrics["comparisons"]) == {"B-A", "B-C"}
    for rows in metrics["comparisons"].values():
        assert rows
        for row in rows:
            assert {"metric", "difference", "ci_lo", "ci_hi", "verdict"} <= set(row)
            assert row["ci_lo"] <= row["difference"] <= row["ci_hi"]
    assert set(metrics["probes"]) and all(n == 2 for n in metrics["probes"].values())
    manifest = json.loads((out / "data" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["dolly"]["eval"] == 3
    raw = json.loads((out / "runs" / "A-s0" / "raw.json").read_text(encoding="utf-8"))
    assert len(raw["dolly_loss"]) == 3
    assert {"torch", "transformers", "peft", "trl"} <= set(metrics["environment"]["versions"])
    assert metrics["environment"]["device"] == "cpu"
    assert set(metrics["wall_time_s"]) == {"base", "A-s0", "B-s0", "C-s0"}
    assert metrics["wall_time_s"]["B-s0"]["stage1_s"] > 0
    assert "experiment curriculum" in metrics["command"]
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "| probe_exact |" in text and "## What the comparisons say" in text
    assert "the answer format (one form, the asked script) carries to unseen items" in text
    assert "the model produces the other form of items it never trained on" in text
    for name in ("metrics_by_condition.png", "differences.png", "stage1_curves.png"):
        assert (out / name).stat().st_size > 1000, name


def test_the_control_is_a_derangement_of_bs_answers_within_each_task(experiment):
    out, _ = experiment
    b = read_jsonl(out / "data" / "init" / "train.jsonl")
    c = read_jsonl(out / "data" / "init_broken" / "train.jsonl")
    manifest = json.loads((out / "data" / "manifest.json").read_text(encoding="utf-8"))
    assert [(r["task"], r["instruction"], r["input"]) for r in b] == \
        [(r["task"], r["instruction"], r["input"]) for r in c]
    outputs = defaultdict(lambda: (Counter(), Counter()))
    for rb, rc in zip(b, c, strict=True):
        key = f"{rb['category']}/{rb['task']}"
        outputs[key][0][rb["output"]] += 1
        outputs[key][1][rc["output"]] += 1
        if rb["output"] == rc["output"]:
            assert manifest["derangement"][key]["kept_own_answer"] > 0, key
            assert manifest["derangement"][key]["note"], key
    for key, (before, after) in outputs.items():
        assert before == after, key
    swapped = sum(rb["output"] != rc["output"] for rb, rc in zip(b, c, strict=True))
    assert swapped > 0.8 * len(b)


def test_no_probe_item_occurs_in_any_training_split(experiment):
    from qeu_utils.analysis.items import kanji_forms_in

    out, _ = experiment
    data = out / "data"
    train = read_jsonl(data / "init" / "train.jsonl")
    training = train + read_jsonl(data / "init_broken" / "train.jsonl") + \
        read_jsonl(data / "dolly" / "part-1-of-4.jsonl")
    texts = "\n".join(f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in training)
    ids = {r["id"] for r in training}
    taught = kanji_forms_in(train)
    probes = [json.loads(line) for line in (data / "probes.jsonl").read_text().splitlines()]
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


def test_a_finished_cell_is_never_rerun(experiment):
    out, log = experiment
    assert "base: start" in log and "C-s0: done" in log
    settings = json.loads((out / "data" / "manifest.json").read_text())["settings"]
    assert run(out, settings) == []


def test_prepare_refuses_a_directory_prepared_with_other_data_settings(experiment):
    from qeu_utils.experiment.prepare import prepare

    out, _ = experiment
    settings = json.loads((out / "data" / "manifest.json").read_text())["settings"]
    with pytest.raises(ValueError, match="probes_per_kind"):
        prepare(out, {**settings, "probes_per_kind": 3})
    with pytest.raises(ValueError, match="dolly_eval_records: 3 → None"):
        prepare(out, {**settings, "dolly_eval_records": None})


def test_a_setting_added_later_at_its_default_matches_an_older_manifest(experiment, tmp_path):
    import shutil

    from qeu_utils.experiment.prepare import prepare

    out, _ = experiment
    older = tmp_path / "older"
    shutil.copytree(out / "data", older / "data")
    manifest = json.loads((older / "data" / "manifest.json").read_text())
    del manifest["settings"]["dolly_eval_records"]  # written before the setting existed
    (older / "data" / "manifest.json").write_text(json.dumps(manifest))
    assert prepare(older, {**manifest["settings"], "dolly_eval_records": None}) == manifest


def test_conditions_start_stage_2_from_the_same_lora_initialisation(experiment):
    """A (fresh adapter on the base) and B (fresh adapter on base + merged stage 1) get the
    same LoRA A matrices, and B is the only thing that differs: the merged weights."""
    from qeu_utils.experiment.run import _train_config
    from qeu_utils.training.trainer import build_trainer

    out, _ = experiment
    settings = json.loads((out / "data" / "manifest.json").read_text())["settings"]
    dolly = str(out / "data" / "dolly" / "part-1-of-4.jsonl")

    def lora_a(init_from):
        config = _train_config(settings, 0, stage=2, dataset=dolly, output_dir=str(
            out / "scratch"), max_steps=1, init_from=init_from, chain="merge")
        model = build_trainer(config)["trainer"].model
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}

    a = lora_a(None)
    b = lora_a(str(out / "runs" / "B-s0" / "stage1"))
    assert a.keys() == b.keys() and a
    assert all(bool((a[n] == b[n]).all()) for n in a)


def test_asked_form_is_the_input_or_the_quoted_text():
    from qeu_utils.experiment.metrics import METRICS, asked_form

    assert asked_form({"input": "鉄", "instruction": "次の日本の漢字を簡体字に直して。"}) == "鉄"
    quoted = {"input": "", "instruction": "日本の漢字「山」を中国語の簡体字で書いて。"}
    assert asked_form(quoted) == "山"
    assert asked_form({"input": "", "instruction": "国名を答えて。"}) == ""
    # copying the asked form shows the format; producing a different form is the claim
    assert METRICS["probe_exact_copy"][1] == "format"
    assert METRICS["probe_exact_changed"][1] == "transfer"
