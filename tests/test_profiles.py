"""Hardware profiles, the automatic choice on simulated GPUs, and the estimator's formula."""

import itertools

import pytest
import torch

from qeu_utils.core.resources import profile_path
from qeu_utils.text.sources import SourceError
from qeu_utils.training import estimate as est
from qeu_utils.training.estimate import profiles_table
from qeu_utils.training.profiles import (
    PROFILES,
    TRAINING_KEYS,
    choose_profile,
    hardware_markdown,
    hardware_report,
    load_profile,
)

GIB = 2**30


class _Props:
    def __init__(self, name, memory_gib, capability):
        self.name = name
        self.total_memory = int(memory_gib * GIB)
        self.major, self.minor = capability


def simulate_gpu(monkeypatch, name, capability, memory_gib, bf16_supported=True):
    """Make torch.cuda describe a GPU this machine does not have. ``bf16_supported`` is what
    ``is_bf16_supported`` answers — True even on a T4, where bf16 is only emulated."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: _Props(name, memory_gib, capability))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: bf16_supported)


@pytest.mark.parametrize("name", PROFILES)
def test_packaged_profiles_load_with_every_key(name):
    from qeu_utils.training.config import resolve

    profile = load_profile(name)
    assert profile.name == name and set(TRAINING_KEYS) <= set(profile.training)
    assert (profile.gpu is None) == (name == "cpu")
    # Every setting it holds is a real one, with the right type, at both stages.
    for stage in ("stage1", "stage2"):
        config = resolve(stage, profile)
        assert config.sft.per_device_train_batch_size == \
            profile.training["per_device_train_batch_size"]
        assert config.sft.num_train_epochs == profile.stages[stage]["num_train_epochs"]


def test_cpu_profile_holds_the_demo_notebook_parameters():
    notebooks = load_profile("cpu").notebooks
    assert notebooks["common"] == {"MODEL": "gemma3-270m"}
    assert notebooks["08_stage1_finetune"]["MAX_STEPS"] == 20
    assert load_profile("t4").notebooks == {}


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(SourceError, match=r"unknown profile 'h100': the package has "
                                          r"a100, cpu, cpu-full, l4, t4"):
        load_profile("h100")


def test_cpu_full_is_cpu_with_the_recipes_notebook_budgets():
    cpu, full = load_profile("cpu"), load_profile("cpu-full")
    assert (full.name, full.training, full.stages) == ("cpu-full", cpu.training, cpu.stages)
    assert full.stages["stage1"]["num_train_epochs"] == 10
    # 08 gets no step limit: the stored notebook trains the profile's 10 epochs
    assert "08_stage1_finetune" not in full.notebooks
    assert "MAX_STEPS" in cpu.notebooks["08_stage1_finetune"]


def test_extends_chains_and_names_an_unknown_parent(tmp_path):
    chained = tmp_path / "a.yaml"
    chained.write_text("extends: cpu-full\n")
    assert load_profile(chained).name == "cpu-full"
    (tmp_path / "b.yaml").write_text("extends: h100\n")
    with pytest.raises(SourceError, match="unknown profile 'h100'"):
        load_profile(tmp_path / "b.yaml")


def test_a_profile_file_with_a_missing_or_mistyped_key_is_named(tmp_path):
    from qeu_utils.core.resources import profile_path

    text = profile_path("t4").read_text(encoding="utf-8")
    missing = tmp_path / "missing.yaml"
    missing.write_text(text.replace("  gradient_accumulation_steps: 1\n", ""), encoding="utf-8")
    with pytest.raises(ValueError, match=r"missing.yaml: training lacks "
                                         r"gradient_accumulation_steps"):
        load_profile(missing)
    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("per_device_train_batch_size: 8",
                                 "per_device_train_batch_size: true"), encoding="utf-8")
    from qeu_utils.training.config import ConfigError, resolve

    with pytest.raises(ConfigError, match=r"typo.yaml \(training\): "
                                          r"per_device_train_batch_size is True, expected int"):
        resolve("stage1", load_profile(typo))
    typo.write_text(text.replace("stage1: {", "stage1: {num_train_epochz: 3, "), "utf-8")
    with pytest.raises(ConfigError, match=r"typo.yaml \(stage1\): unknown setting "
                                          r"'num_train_epochz'; did you mean num_train_epochs"):
        resolve("stage1", typo)
    typo.write_text(text.replace("notebooks: {}", "notebook: {}"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"typo.yaml: missing profile key\(s\) notebooks"):
        load_profile(typo)
    with pytest.raises(SourceError, match="no such profile file"):
        load_profile(tmp_path / "absent.yaml")


@pytest.mark.parametrize("info, expected", [
    ({"cuda": False}, "cpu"),
    ({"cuda": True, "capability": (7, 5), "memory_gib": 14.6}, "t4"),   # Tesla T4
    ({"cuda": True, "capability": (7, 0), "memory_gib": 31.7}, "t4"),   # V100 32 GB: no bf16
    ({"cuda": True, "capability": (8, 6), "memory_gib": 9.8}, "t4"),    # RTX 3080 10 GB
    ({"cuda": True, "capability": (8, 9), "memory_gib": 22.5}, "l4"),   # L4
    ({"cuda": True, "capability": (8, 6), "memory_gib": 23.7}, "l4"),   # RTX 3090
    ({"cuda": True, "capability": (8, 0), "memory_gib": 39.4}, "a100"),  # A100 40 GB
    ({"cuda": True, "capability": (9, 0), "memory_gib": 139.8}, "a100"),  # H200
])
def test_choose_profile_from_capability_and_memory(info, expected):
    assert choose_profile(info) == expected


def test_simulated_t4_with_emulated_bf16_gets_fp16_and_the_t4_profile(monkeypatch):
    from qeu_utils.model.models import default_dtype
    from qeu_utils.training.config import resolve
    from qeu_utils.training.trainer import precision_for

    simulate_gpu(monkeypatch, "Tesla T4", (7, 5), 14.6, bf16_supported=True)
    assert default_dtype("cuda") is torch.float16
    smollm2 = resolve("stage1", "t4", model_name_or_path="smollm2-135m-instruct")
    assert precision_for(smollm2, "cuda") == "fp16"
    assert choose_profile() == "t4"
    report = hardware_report()
    assert report == {"device": "cuda", "gpu": "Tesla T4", "capability": "7.5",
                      "memory_gib": 14.6, "precision": "fp16", "profile": "t4",
                      "reason": "compute capability 7.5 < 8.0 (no native bf16)"}
    assert hardware_markdown(report) == (
        "GPU: Tesla T4 (compute capability 7.5, 14.6 GiB); precision **fp16**; profile **t4** "
        "(compute capability 7.5 < 8.0 (no native bf16)).")


def test_simulated_t4_trains_gemma3_in_fp32_because_it_overflows_fp16(monkeypatch, tmp_path):
    from qeu_utils.model.models import default_dtype
    from qeu_utils.training.config import resolve
    from qeu_utils.training.trainer import precision_for

    simulate_gpu(monkeypatch, "Tesla T4", (7, 5), 14.6, bf16_supported=True)
    assert default_dtype("cuda", "gemma3_text") is torch.float32
    assert precision_for(resolve("stage1"), "cuda") == "fp32"  # the stage's model: gemma3-270m
    assert precision_for(resolve("stage1", "t4"), "cuda") == "fp32"
    # A local copy of Gemma 3 is known by its config.json, not its name.
    (tmp_path / "config.json").write_text('{"model_type": "gemma3_text"}', encoding="utf-8")
    assert precision_for(resolve("stage1", model_name_or_path=str(tmp_path)), "cuda") == "fp32"
    # An explicit precision is the user's decision and is kept.
    assert precision_for(resolve("stage1", precision="fp16"), "cuda") == "fp16"
    report = hardware_report(model="gemma3-270m")
    assert (report["precision"], report["profile"]) == ("fp32", "t4")
    assert "precision **fp32**" in hardware_markdown(report)


@pytest.mark.parametrize("cuda, bf16_native, model_type, expected", [
    (False, False, "gemma3_text", "fp32"),
    (False, False, None, "fp32"),
    (True, True, "gemma3_text", "bf16"),
    (True, True, "llama", "bf16"),
    (True, False, "llama", "fp16"),
    (True, False, None, "fp16"),
    (True, False, "gemma3_text", "fp32"),
    (True, False, "gemma3", "fp32"),
])
def test_the_one_precision_rule(cuda, bf16_native, model_type, expected):
    from qeu_utils.model.models import choose_precision

    assert choose_precision(cuda=cuda, bf16_native=bf16_native,
                            model_type=model_type) == expected


@pytest.mark.parametrize("memory_gib", [39.4, 79.3])
def test_simulated_a100_gets_bf16_and_the_a100_profile(monkeypatch, memory_gib):
    from qeu_utils.model.models import default_dtype
    from qeu_utils.training.config import resolve
    from qeu_utils.training.trainer import precision_for

    simulate_gpu(monkeypatch, "NVIDIA A100-SXM4-80GB", (8, 0), memory_gib)
    assert default_dtype("cuda") is torch.bfloat16
    assert precision_for(resolve("stage1"), "cuda") == "bf16"
    report = hardware_report()
    assert (report["precision"], report["profile"], report["capability"]) == ("bf16", "a100",
                                                                              "8.0")


def test_no_gpu_report(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = hardware_report()
    assert (report["device"], report["precision"], report["profile"]) == ("cpu", "fp32", "cpu")
    assert hardware_markdown(report) == ("No CUDA GPU: training runs on the CPU; precision "
                                         "**fp32**; profile **cpu** (no CUDA GPU).")


# --- the estimator ----------------------------------------------------------------------

SMOL = est.KNOWN_SHAPES["smollm2-135m-instruct"]


def _meta_llama(shape):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden,
                         intermediate_size=shape.intermediate,
                         num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                         num_key_value_heads=shape.kv_heads,
                         tie_word_embeddings=shape.tied)
    with torch.device("meta"):
        return LlamaForCausalLM(config)


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct"])
def test_parameter_and_lora_counts_match_a_real_model_of_that_shape(name):
    from peft import LoraConfig, get_peft_model

    shape = est.KNOWN_SHAPES[name]
    model = _meta_llama(shape)
    assert est.shape_of(model) == shape
    assert est.parameter_counts(shape)["total"] == sum(p.numel() for p in model.parameters())
    lora = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear"))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert est.lora_parameters(shape, 16) == trainable


def test_smollm2_135m_known_values():
    assert est.parameter_counts(SMOL)["total"] == 134_515_008
    e = est.estimate(SMOL, seq_len=128, batch_size=8, precision="fp32", loss_fraction=1.0,
                     device="cpu", threads=2)
    linear, head, lora = 106_168_320, 49152 * 576, 4_884_480
    assert e["lora_params"] == lora
    assert e["flops_per_token"] == 4 * (linear + head) + 30 * 128 * 576 * 6 + 6 * lora
    assert e["tokens_per_step"] == 1024 and e["records_per_step"] == 8
    assert e["seconds_per_step"] == pytest.approx(1024 * e["flops_per_token"] / 120e9)
    m = e["memory_gib"]
    assert m["weights"] == pytest.approx(134_515_008 * 4 / GIB)
    assert m["lora_and_adam"] == pytest.approx(lora * 16 / GIB)
    assert m["activations"] == pytest.approx(4 * (22 * 576 + 7 * 1536) * 1024 * 30 / GIB)
    assert m["logits"] == pytest.approx(1024 * 49152 * 12 / GIB)
    assert e["peak_memory_gib"] == pytest.approx(sum(m.values()))


@pytest.mark.parametrize("key, values", [("batch_size", [1, 2, 8]), ("seq_len", [64, 256, 1024])])
def test_estimate_grows_with_batch_and_length(key, values):
    settings = dict(seq_len=128, batch_size=4, precision="bf16", device="A100")
    results = [est.estimate(SMOL, **{**settings, key: v}) for v in values]
    for small, big in itertools.pairwise(results):
        assert big["peak_memory_gib"] > small["peak_memory_gib"]
        assert big["seconds_per_step"] > small["seconds_per_step"]


def test_checkpointing_trades_memory_for_time_and_qlora_shrinks_weights():
    shape = est.KNOWN_SHAPES["allenai/OLMo-2-1124-7B-Instruct"]
    settings = dict(seq_len=2048, batch_size=4, precision="bf16", device="A100")
    plain = est.estimate(shape, **settings)
    ckpt = est.estimate(shape, gradient_checkpointing=True, **settings)
    assert ckpt["memory_gib"]["activations"] < plain["memory_gib"]["activations"] / 5
    assert ckpt["seconds_per_step"] > plain["seconds_per_step"] * 1.4
    qlora = est.estimate(shape, qlora=True, **settings)
    assert qlora["memory_gib"]["weights"] < plain["memory_gib"]["weights"] / 2.5
    assert est.estimate(shape, loss_fraction=0.25, **settings)["memory_gib"]["logits"] == \
        pytest.approx(plain["memory_gib"]["logits"] / 4)


def test_estimator_rejects_bad_input():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, got 'int8'"):
        est.estimate(SMOL, seq_len=8, batch_size=1, precision="int8")
    with pytest.raises(ValueError, match="no throughput figure for device 'Radeon VII'"):
        est.estimate(SMOL, seq_len=8, batch_size=1, precision="fp16", device="Radeon VII")
    with pytest.raises(ValueError, match="seq_len, batch_size and grad_accum must be at least 1"):
        est.estimate(SMOL, seq_len=8, batch_size=0, precision="fp32")
    with pytest.raises(ValueError, match="no known shape for 'org/unknown'"):
        est.shape_of("org/unknown")


def test_device_throughput_by_gpu_name():
    assert est.device_flops("NVIDIA L40S", "bf16") == 362e12 * 0.35
    assert est.device_flops("NVIDIA L4", "bf16") == 121e12 * 0.35
    assert est.device_flops("Tesla T4", "fp16") == 65e12 * 0.30
    assert est.device_flops("Tesla T4", "bf16") == 8.1e12 * 0.30  # no bf16 units: fp32 rate
    llama = est.CPU_FLOPS_PER_THREAD["llama"]
    assert est.device_flops("cpu", "fp32", threads=4) == 4 * llama
    assert est.device_flops("cpu", "fp32", threads=2, model_type="olmo2") == 2 * llama
    gemma = est.device_flops("cpu", "fp32", threads=2, model_type="gemma3_text")
    assert gemma == 2 * est.CPU_FLOPS_PER_THREAD["gemma3_text"] < 2 * llama


def test_the_cpu_stage_1_estimate_for_gemma_is_the_measured_pace():
    # 340 steps at the pace measured in the experiment's stage 1 (results/curriculum-gemma3-*).
    minutes = est.estimate_profile("cpu")["stage1_minutes"]
    assert minutes == pytest.approx(340 * est.GEMMA_STEP_S / 60, rel=0.01)


def test_the_loss_tokens_are_read_from_the_labels_trl_builds():
    from datasets import Dataset

    from qeu_utils.training.trainer import loss_tokens

    labelled = Dataset.from_dict({"input_ids": [[1, 2, 3, 4], [5, 6]],
                                  "labels": [[-100, -100, 3, 4], [-100, 6]]})
    assert loss_tokens(labelled) == 3
    masked = Dataset.from_dict({"input_ids": [[1, 2, 3]], "completion_mask": [[0, 1, 1]]})
    assert loss_tokens(masked) == 2
    assert loss_tokens(Dataset.from_dict({"input_ids": [[1, 2, 3], [4]]})) == 4


def test_stage_minutes_counts_steps_from_records_and_epochs():
    e = est.estimate(SMOL, seq_len=100, batch_size=8, grad_accum=2, precision="fp32", threads=2)
    timing = est.stage_minutes(e, records=270, epochs=10)
    assert (timing["steps_per_epoch"], timing["steps"]) == (17, 170)
    assert timing["stage_minutes"] == pytest.approx(170 * e["seconds_per_step"] / 60)
    assert est.stage_minutes(e, records=270, epochs=10, max_steps=20)["steps"] == 20


@pytest.mark.parametrize("name", ["t4", "l4", "a100"])
def test_each_gpu_profile_fits_its_card(name):
    profile, result = load_profile(name), est.estimate_profile(name)
    assert result["peak_memory_gib"] < profile.gpu["memory_gb"] * 0.9
    # Gemma 3 overflows fp16, so the T4 (no native bf16) trains it in fp32.
    assert result["precision"] == ("fp32" if name == "t4" else "bf16")


def test_profiles_table_has_a_row_per_profile():
    lines = profiles_table().splitlines()
    assert lines[0].startswith("| profile | GPU | model | precision |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| cpu", "| t4", "| l4", "| a100"]
    assert "| cpu | none (CPU) | gemma3-270m | fp32 | 4 × 2 × 1024 |" in lines[2]
    assert "gemma3-270m | fp32 | 8 × 1 × 1024" in lines[3]
    assert lines[3].endswith("| 1.8 GiB |")  # three stages, a merged model and an f16 GGUF


def test_run_dir_size_counts_adapters_checkpoints_tokenizers_and_the_export():
    shape = est.shape_of("gemma3-270m")
    lora = est.lora_parameters(shape, 16)
    assert lora == 3_796_992
    # per stage: the adapter + 3 checkpoints of adapter and Adam's two moments, all fp32, and
    # four tokenizer.json files
    stage = lora * 4 * 10 + 4 * 128 * 262_144
    assert est.run_dir_gib(shape, 16, stages=1, export=False) * 2**30 == stage
    # the stored cpu-full run measured 274 MiB per stage
    assert 265 < stage / 2**20 < 285
    total = est.parameter_counts(shape)["total"]
    assert est.run_dir_gib(shape, 16) * 2**30 == 3 * stage + 4 * total


def test_a_profile_with_a_llama_model_on_a_t4_keeps_fp16(tmp_path):
    text = (profile_path("t4").read_text(encoding="utf-8")
            .replace("model_name_or_path: gemma3-270m",
                     "model_name_or_path: HuggingFaceTB/SmolLM2-1.7B-Instruct"))
    (tmp_path / "t4-smollm2.yaml").write_text(text, encoding="utf-8")
    result = est.estimate_profile(tmp_path / "t4-smollm2.yaml")
    assert (result["model"], result["precision"]) == ("HuggingFaceTB/SmolLM2-1.7B-Instruct",
                                                      "fp16")


def test_gemma3_shape_matches_the_real_architecture():
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    shape = est.KNOWN_SHAPES["gemma3-270m"]
    config = Gemma3TextConfig(vocab_size=262144, hidden_size=640, intermediate_size=2048,
                              num_hidden_layers=18, num_attention_heads=4,
                              num_key_value_heads=1, head_dim=256)
    with torch.device("meta"):
        model = Gemma3ForCausalLM(config)
    assert est.shape_of(model) == shape
    real = sum(p.numel() for p in model.parameters())
    assert real == 268_098_176  # what load_model("gemma3-270m") reports
    # The estimate counts two norms per layer; Gemma 3 has four plus q/k norms (32,256 values).
    assert real - est.parameter_counts(shape)["total"] == 32_256
    lora = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear"))
    assert est.lora_parameters(shape, 16) == sum(p.numel() for p in lora.parameters()
                                                 if p.requires_grad)
