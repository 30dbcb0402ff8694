"""Training on tiny-random: a short stage 1, resume after a crash, chaining, loss masking."""

import json
import math
import re

import pytest
import torch
from transformers import TrainerCallback

from qeu_utils.core.records import read_jsonl
from qeu_utils.training.config import ConfigError, resolve
from qeu_utils.training.runs import lineage_of, load_trained
from qeu_utils.training.train import train
from qeu_utils.training.trainer import build_trainer


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    from qeu_utils.builders.mix import build_init, write_init

    train_records, held_out = build_init(size=60, seed=0, categories=["kanji", "country", "style"])
    return write_init(tmp_path_factory.mktemp("data") / "init", train_records, held_out,
                      seed=0, size=60)


def _config(init_dir, out, **overrides):
    settings = dict(model_name_or_path="tiny-random", dataset=str(init_dir),
                    output_dir=str(out), num_train_epochs=1, max_steps=4,
                    per_device_train_batch_size=4, save_steps=2, logging_steps=1,
                    evaluate=False, learning_rate=1e-3)
    settings.update(overrides)
    return resolve("stage1", **settings)


@pytest.fixture(scope="module")
def stage1(init_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stage1"
    return out, train(_config(init_dir, out))


def test_stage1_writes_adapter_config_state_and_curve(stage1):
    out, summary = stage1
    assert summary["global_step"] == 4
    for name in ["adapter_model.safetensors", "adapter_config.json", "config.yaml",
                 "trainer_state.json", "loss_curve.png", "lineage.json", "summary.json"]:
        assert (out / name).is_file(), name
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    lineage = lineage_of(out)
    assert lineage["base_model"] == "tiny-random" and lineage["merged_adapters"] == []
    assert lineage["template"] == "chat" and lineage["packing"] is False
    state = json.loads((out / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]


def test_plain_progress_prints_one_line_per_logging_step(init_dir, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.setenv("QEU_PROGRESS", "plain")  # what make notebooks sets
    train(_config(init_dir, tmp_path / "out", max_steps=2))
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split(" | ")[0] for line in lines] == ["step 1/2", "step 2/2"]
    assert all(re.fullmatch(r"step \d/2 \| loss \d+\.\d{4} \| lr \d\.\d\de[-+]\d\d", line)
               for line in lines), lines
    assert "{'loss'" not in out  # Trainer's own dict printer is gone


class _Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated Ctrl-C at step 3")


def test_a_killed_run_resumes_from_its_last_checkpoint(init_dir, tmp_path):
    out = tmp_path / "stage1"
    config = _config(init_dir, out, max_steps=6)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[_Crash()])
    assert (out / "checkpoint-2").is_dir() and not (out / "checkpoint-4").exists()
    summary = train(config)
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["global_step"] == 6
    state = json.loads((out / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e][-4:] == [3, 4, 5, 6]


def _lora_b(model):
    return {n.replace(".default", ""): p.detach().clone()
            for n, p in model.named_parameters() if "lora_B" in n}


def test_stage2_continue_keeps_training_stage1s_adapter(init_dir, stage1, tmp_path):
    out1, _ = stage1
    config = _config(init_dir, tmp_path / "stage2", stage=2, init_from=str(out1),
                     chain="continue", max_steps=2)
    stage = build_trainer(config)
    stage1_model, _ = load_trained(out1, device="cpu")
    start = _lora_b(stage["trainer"].model)
    for name, value in _lora_b(stage1_model).items():
        torch.testing.assert_close(start[name], value)  # it starts where stage 1 ended
    summary = train(config)
    lineage = summary["lineage"]
    assert lineage["continued_adapter"] == str(out1.resolve()) and lineage["merged_adapters"] == []
    assert lineage["chain"] == "continue"


def test_stage2_merge_folds_stage1_into_the_base(init_dir, stage1, tmp_path):
    out1, _ = stage1
    out2 = tmp_path / "stage2"
    summary = train(_config(init_dir, out2, stage=2, init_from=str(out1), chain="merge",
                            max_steps=2))
    assert summary["lineage"]["merged_adapters"] == [str(out1.resolve())]
    assert summary["lineage"]["continued_adapter"] is None
    model, tokenizer = load_trained(out2, device="cpu")
    ids = torch.tensor([tokenizer("東京は日本の首都だ。")["input_ids"]])
    stage1_model, _ = load_trained(out1, device="cpu")
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, stage1_model(ids).logits)
    # stage 3 stands on the whole chain
    out3 = tmp_path / "stage3"
    third = train(_config(init_dir, out3, stage=3, init_from=str(out2), chain="merge",
                          max_steps=1))
    assert third["lineage"]["merged_adapters"] == [str(out1.resolve()), str(out2.resolve())]


def test_prompt_tokens_carry_no_loss(init_dir, tmp_path):
    stage = build_trainer(_config(init_dir, tmp_path / "s"))
    trainer, tokenizer = stage["trainer"], stage["tokenizer"]
    from qeu_utils.core.records import read_jsonl

    first = read_jsonl(init_dir / "train.jsonl")[0]
    example = trainer.train_dataset[0]
    batch = trainer.data_collator([example])
    labels = batch["labels"][0]
    supervised = labels[labels != -100]
    assert tokenizer.decode(supervised) == first["output"] + "<|im_end|>\n"
    prompt_len = int((labels == -100).sum())
    assert "<|im_start|>assistant\n" in tokenizer.decode(batch["input_ids"][0][:prompt_len])


def test_bad_configs_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_train_epochz: 3\n")
    with pytest.raises(ConfigError) as err:
        resolve(bad)
    assert str(err.value).startswith(f"{bad}: unknown setting 'num_train_epochz'; did you mean "
                                     "num_train_epochs?")
    assert "\n" not in str(err.value)
    bad.write_text("lora: 16\n")  # the old spelling, and not a mapping either
    with pytest.raises(ConfigError, match=f"{bad}: unknown setting 'lora'; it is now lora_r, "):
        resolve(bad)
    bad.write_text("per_device_train_batch_size: true\n")
    with pytest.raises(ConfigError, match=f"{bad}: per_device_train_batch_size is True, "
                                          "expected int"):
        resolve(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match=f"{bad}: expected a mapping of settings, got list"):
        resolve(bad)
    with pytest.raises(ConfigError, match="overrides: chain is 'stack'; allowed: continue, "
                                          "merge"):
        resolve("stage1", chain="stack")
    with pytest.raises(ConfigError, match="bf16 is not a setting here; set precision"):
        resolve("stage1", bf16=True)
    with pytest.raises(ValueError, match="no such config file"):
        resolve(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="load_in_4bit: true needs a CUDA GPU"):
        build_trainer(resolve("stage1", model_name_or_path="tiny-random", load_in_4bit=True,
                              output_dir=str(tmp_path / "q")))
    with pytest.raises(FileNotFoundError, match="no lineage.json"):
        build_trainer(resolve("stage1", model_name_or_path="tiny-random",
                              init_from=str(tmp_path)))


def test_shipped_configs_load_by_name_or_path():
    from qeu_utils.core.resources import config_path

    for stage in (1, 2, 3):
        assert resolve(f"stage{stage}").stage.stage == stage
    assert resolve(config_path("stage2")).stage.init_from == "runs/stage1"
    with pytest.raises(ValueError, match=r"unknown config 'stage9': the package has stage1, "
                                         r"stage2, stage3"):
        resolve("stage9")


def test_profiles_and_overrides_reach_trls_classes():
    config = resolve("stage2", "t4", learning_rate=3e-4, lora_r=8)
    assert config.sft.learning_rate == 3e-4  # the override wins
    assert config.sft.per_device_train_batch_size == 8  # the profile's over the config's 4
    assert config.sft.num_train_epochs == 3  # the profile's stage 2
    assert config.sft.activation_checkpointing is True
    assert config.model.model_name_or_path == "gemma3-270m"
    lora = config.peft_config()
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.target_modules) == \
        (8, 32, 0.05, "all-linear")
    assert config.stage.init_from == "runs/stage1" and config.stage.chain == "continue"


def test_the_command_line_reaches_sftconfig(tmp_path, monkeypatch):
    from qeu_utils.cli import main as cli

    seen = {}
    monkeypatch.setattr("qeu_utils.training.train.train",
                        lambda config: seen.setdefault("config", config) and {
                            "global_step": 0, "train_loss": 0.0, "output_dir": "x"})
    assert cli.main(["train", "--config", "stage1", "--learning_rate", "3e-4", "--lora_r", "8",
                     "--max_steps", "5", "--evaluate", "false", "--debug"]) == 0
    config = seen["config"]
    assert config.sft.learning_rate == 3e-4 and config.sft.max_steps == 5
    assert config.model.lora_r == 8 and config.stage.evaluate is False
    assert cli.main(["train", "--config", "stage1", "--learnig_rate", "3e-4"]) == 1


@pytest.mark.slow
def test_single_process_accelerate_launch(init_dir, tmp_path, tmp_cache):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent
    config = tmp_path / "stage1.yaml"
    config.write_text(yaml.safe_dump({
        "model_name_or_path": "tiny-random", "dataset": str(init_dir),
        "output_dir": str(tmp_path / "out"), "max_steps": 2, "per_device_train_batch_size": 4,
        "save_steps": 2, "evaluate": False}))
    accelerate = Path(sys.executable).parent / "accelerate"
    result = subprocess.run(
        [str(accelerate), "launch", "--config_file",
         str(root / "configs" / "accelerate" / "cpu_single.yaml"),
         "-m", "qeu_utils", "train", "--config", str(config)],
        capture_output=True, text=True, env=os.environ | {"QEU_CACHE": str(tmp_cache)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stage 1: 2 steps" in result.stdout
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_overrides_keep_the_other_lora_settings_and_reject_unknown_names():
    lora = resolve("stage1", lora_r=4).peft_config()
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.target_modules) == \
        (4, 32, 0.05, "all-linear")
    with pytest.raises(ConfigError, match="overrides: unknown setting 'epoch'; did you mean "
                                          "num_train_epochs\\? Settings are "):
        resolve("stage1", epoch=3)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_completion_only_head_gives_the_models_own_loss(init_dir, tmp_path, grad_accum):
    """The trainer applies the LM head only on labelled positions; its loss must equal the
    model's own masked cross-entropy on the same batch."""
    stage = build_trainer(_config(init_dir, tmp_path / "s",
                                  gradient_accumulation_steps=grad_accum))
    trainer = stage["trainer"]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    n_items = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n_items)
        reference = trainer.model(**batch).loss
        ours_unscaled = trainer.compute_loss(trainer.model, dict(batch))
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_unscaled, reference, rtol=1e-5, atol=1e-5)


def test_a_rerun_with_changed_settings_moves_the_old_run_aside(init_dir, tmp_path, caplog):
    out = tmp_path / "stage1"
    settings = dict(max_steps=2, evaluate=True, eval_limit=1, probe_max_new_tokens=2)
    first = train(_config(init_dir, out, **settings))
    assert first["resumed_from"] is None and (out / "checkpoint-2").is_dir()
    # Mark the saved "before" evaluation, to see whether a rerun reuses it.
    before = json.loads((out / "evaluation_before.json").read_text())
    before["marker"] = "from the first run"
    (out / "evaluation_before.json").write_text(json.dumps(before))
    caplog.clear()

    second = train(_config(init_dir, out, learning_rate=2e-3, **settings))
    notice = caplog.text
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("stage1.old-")]
    assert len(moved) == 1 and (moved[0] / "checkpoint-2").is_dir()
    assert f"{out}: not resuming the run there — its settings differ from this run's " \
           f"(learning_rate 0.001 → 0.002). Moved it to {moved[0]}; starting afresh." in notice
    assert second["resumed_from"] is None
    assert "marker" not in json.loads((out / "evaluation_before.json").read_text())
    assert json.loads((out / "run_config.json").read_text())["learning_rate"] == 2e-3


def test_an_identical_rerun_still_resumes(init_dir, tmp_path):
    out = tmp_path / "stage1"
    settings = dict(max_steps=2, evaluate=True, eval_limit=1, probe_max_new_tokens=2)
    train(_config(init_dir, out, **settings))
    before = json.loads((out / "evaluation_before.json").read_text())
    before["marker"] = "from the first run"
    (out / "evaluation_before.json").write_text(json.dumps(before))
    # Logging and checkpoint frequency do not change the result: still the same run.
    again = train(_config(init_dir, out, logging_steps=5, save_steps=7, **settings))
    assert again["resumed_from"].endswith("checkpoint-2")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("stage1.old-")]
    assert json.loads((out / "evaluation_before.json").read_text())["marker"] == \
        "from the first run"
    # A different probe budget keeps the checkpoint but re-measures the start point.
    third = train(_config(init_dir, out, **{**settings, "probe_max_new_tokens": 3}))
    assert third["resumed_from"].startswith(str(out / "checkpoint-"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("stage1.old-")]
    assert "marker" not in json.loads((out / "evaluation_before.json").read_text())
    # So does evaluating on the first 5 eval records only: both evaluations see those 5.
    fourth = train(_config(init_dir, out, **{**settings, "eval_size": 5}))
    assert fourth["resumed_from"].startswith(str(out / "checkpoint-"))
    first_five = [r["id"] for r in read_jsonl(init_dir / "eval.jsonl")[:5]]
    for when in ("before", "after"):
        evaluation = fourth["evaluation"][when]
        assert evaluation["records"] == 5 and evaluation["loss"]["overall"]["records"] == 5
        assert {s["id"] for s in evaluation["samples"]} <= set(first_five)


def test_a_rebuilt_dataset_at_the_same_path_is_a_change(init_dir, tmp_path):
    import shutil

    from qeu_utils.training.runs import config_changes, run_record

    data = tmp_path / "init"
    shutil.copytree(init_dir, data)
    config = _config(data, tmp_path / "out")
    old = run_record(config)
    with open(data / "train.jsonl", "a", encoding="utf-8") as fh:
        fh.write((data / "train.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n")
    assert [c[0] for c in config_changes(old, run_record(config))] == ["dataset_sha256"]


def test_invalid_precision_is_named():
    with pytest.raises(ConfigError, match="overrides: precision is 'fp8'; allowed: auto, bf16, "
                                          "fp16, fp32"):
        resolve("stage1", precision="fp8")


@pytest.fixture(scope="module")
def tiny_gemma2(tmp_path_factory):
    """A 2-layer Gemma-2 with random weights (large, so the logits reach the soft-cap) with the
    tiny-random tokenizer."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from qeu_utils.model.models import load_model

    _, tokenizer = load_model("tiny-random", device="cpu")
    torch.manual_seed(0)
    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                          head_dim=16, final_logit_softcapping=2.0, initializer_range=1.0,
                          pad_token_id=tokenizer.pad_token_id,
                          bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    target = tmp_path_factory.mktemp("gemma2") / "tiny-gemma2"
    Gemma2ForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def test_gemma2_softcapped_logits_use_the_models_own_loss(init_dir, tmp_path, tiny_gemma2):
    import torch.nn.functional as F

    from qeu_utils.model.loss import fast_loss_ok

    config = _config(init_dir, tmp_path / "g", model_name_or_path=str(tiny_gemma2), max_steps=1)
    stage = build_trainer(config)
    trainer = stage["trainer"]
    assert not fast_loss_ok(trainer.model)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, dict(batch))
        reference = trainer.model(**batch).loss
        # What the head-only shortcut would give: the logits without their soft-cap.
        base = trainer.model.get_base_model()
        hidden = base.get_decoder()(input_ids=batch["input_ids"],
                                    attention_mask=batch["attention_mask"]).last_hidden_state
        targets = batch["labels"][:, 1:]
        keep = targets != -100
        uncapped = F.cross_entropy(base.get_output_embeddings()(hidden[:, :-1][keep]).float(),
                                   targets[keep])
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    assert abs(uncapped.item() - reference.item()) > 0.1  # the shortcut would be wrong here
    summary = train(config, prepared=stage)
    assert summary["global_step"] == 1 and math.isfinite(summary["train_loss"])


def test_heldout_loss_of_a_softcapped_model_is_its_own_loss(init_dir, tiny_gemma2):
    from qeu_utils.core.records import read_jsonl
    from qeu_utils.evaluation.heldout import encode_for_loss, heldout_loss
    from qeu_utils.model.models import load_model
    from qeu_utils.model.prompting import resolve_template

    model, tokenizer = load_model(str(tiny_gemma2), device="cpu")
    record = read_jsonl(init_dir / "eval.jsonl")[0]
    ids, prompt_len = encode_for_loss(record, tokenizer, resolve_template(tokenizer, "auto"))
    labels = torch.tensor([[-100] * prompt_len + ids[prompt_len:]])
    with torch.no_grad():
        reference = model(input_ids=torch.tensor([ids]), labels=labels).loss.item()
    ours = heldout_loss(model, tokenizer, [record])["overall"]
    assert ours["tokens"] == len(ids) - prompt_len
    assert ours["loss"] == pytest.approx(reference, abs=1e-5)


def test_llama_style_models_keep_the_fast_path(init_dir, tmp_path):
    from qeu_utils.model.loss import fast_loss_ok

    trainer = build_trainer(_config(init_dir, tmp_path / "s"))["trainer"]
    assert fast_loss_ok(trainer.model)
    trainer.model.get_base_model().config.logit_scale = 0.5  # as Cohere's config has
    assert not fast_loss_ok(trainer.model)
