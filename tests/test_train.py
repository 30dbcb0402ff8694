"""Training on tiny-random: a short stage 1, resume after a crash, chaining, loss masking."""

import json

import pytest
import torch
from transformers import TrainerCallback

from qeu_utils.train import build_trainer, lineage_of, load_config, load_trained, train


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    from qeu_utils.build.mix import build_init, write_init

    train_records, held_out = build_init(size=60, seed=0, categories=["kanji", "country", "style"])
    return write_init(tmp_path_factory.mktemp("data") / "init", train_records, held_out,
                      seed=0, size=60)


def _config(init_dir, out, **overrides):
    settings = dict(model="tiny-random", dataset=str(init_dir), output_dir=str(out), epochs=1,
                    max_steps=4, batch_size=4, save_steps=2, logging_steps=1, evaluate=False,
                    learning_rate=1e-3)
    settings.update(overrides)
    return load_config(None, **settings)


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
    from qeu_utils.records import read_jsonl

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
    bad.write_text("epochz: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown settings \['epochz'\]"):
        load_config(bad)
    with pytest.raises(ValueError, match="chain must be continue or merge"):
        load_config(None, chain="stack")
    with pytest.raises(FileNotFoundError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="qlora: true needs a CUDA GPU"):
        build_trainer(load_config(None, model="tiny-random", qlora=True,
                                  output_dir=str(tmp_path / "q")))
    with pytest.raises(FileNotFoundError, match="no lineage.json"):
        build_trainer(load_config(None, model="tiny-random", init_from=str(tmp_path)))


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "configs"
    for stage in (1, 2, 3):
        config = load_config(root / f"stage{stage}.yaml")
        assert config["stage"] == stage
    assert load_config(root / "stage2.yaml")["init_from"] == "runs/stage1"


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
        "model": "tiny-random", "dataset": str(init_dir), "output_dir": str(tmp_path / "out"),
        "max_steps": 2, "batch_size": 4, "save_steps": 2, "evaluate": False}))
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


def test_overrides_merge_lora_settings_and_reject_unknown_names():
    config = load_config(None, lora={"r": 4})
    assert config["lora"] == {"r": 4, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        load_config(None, epoch=3)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_completion_only_head_gives_the_models_own_loss(init_dir, tmp_path, grad_accum):
    """The trainer applies the LM head only on labelled positions; its loss must equal the
    model's own masked cross-entropy on the same batch."""
    stage = build_trainer(_config(init_dir, tmp_path / "s", grad_accum=grad_accum))
    trainer = stage["trainer"]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    n_items = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n_items)
        reference = trainer.model(**batch).loss
        ours_unscaled = trainer.compute_loss(trainer.model, dict(batch))
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_unscaled, reference, rtol=1e-5, atol=1e-5)
