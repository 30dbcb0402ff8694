"""The offline default model: provisioned from the PyPI wheel, it answers and it trains."""

import time
from pathlib import Path

import pytest
import torch

from qeu_utils.model import models
from qeu_utils.model.models import load_model, resolve_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m-instruct", device="cpu")


def test_offline_copy_is_a_plain_safetensors_model():
    directory = Path(resolve_model("smollm2-135m-instruct"))
    assert (directory / "model.safetensors").is_file()
    assert (directory / "chat_template.jinja").is_file() or "chat_template" in (
        directory / "tokenizer_config.json"
    ).read_text()
    config = (directory / "config.json").read_text()
    assert "quantization_config" not in config
    assert '"num_hidden_layers": 30' in config


def test_second_load_reuses_the_converted_directory(monkeypatch):
    resolve_model("smollm2-135m-instruct")

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(models, "convert_gguf", must_not_convert)
    started = time.perf_counter()
    resolve_model("smollm2-135m-instruct")
    assert time.perf_counter() - started < 5


def test_greedy_answer_is_sensible(smollm2):
    model, tokenizer = smollm2
    assert getattr(model.config, "quantization_config", None) is None
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_a_lora_training_step_runs(smollm2, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = smollm2
    rows = [
        ("東京は日本の首都だ。を中国語に訳してください。", "东京是日本的首都。"),
        ("東京は日本の首都です。を英語に訳してください。", "Tokyo is the capital of Japan."),
        ("「鉄」の簡体字は？", "铁"),
        ("コーヒーの英語は？", "coffee"),
    ]
    data = Dataset.from_list([
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in rows
    ])
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(
            output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
            learning_rate=1e-3, logging_steps=1, report_to=[], save_strategy="no",
            use_cpu=True, max_length=64,
            activation_checkpointing=False,  # TRL turns it on by default: ~1/3 more time
        ),
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"),
    )
    lora_b = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert lora_b
    result = trainer.train()
    assert result.global_step == 2
    assert torch.isfinite(torch.tensor(result.training_loss))
    changed = [n for n, p in trainer.model.named_parameters() if n in lora_b
               and not torch.equal(p.detach(), lora_b[n])]
    assert changed, "LoRA weights did not move"
    trainer.model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_a_streamed_answer_cut_by_the_token_limit_prints_whole_characters(capsys):
    """24 tokens end inside a character of this answer (its bytes alone decode to U+FFFD):
    neither the printed stream nor the returned answer may show that stub."""
    from qeu_utils.sharing.chat import reply

    # A model of its own: the module's fixture has a LoRA adapter trained into it above.
    model, tokenizer = load_model("smollm2-135m-instruct", device="cpu")
    answer = reply(model, tokenizer, "この文を中国語に訳して。今日は雨だ。", max_new_tokens=24,
                   stream=True)
    printed = capsys.readouterr().out
    assert answer == "この文を中国語に訳してくだっ"
    assert printed.strip() == answer
