"""Before training: how much memory a LoRA step needs and how long a stage takes.

A back-of-the-envelope model, good to a factor of ~1.5 — enough to pick a batch size or know
whether a stage takes minutes or hours, not a benchmark (``bench/gpu_check.py`` measures it):

- **memory** = frozen weights (2 bytes/param in bf16/fp16, 4 in fp32, ~0.52 for 4-bit QLoRA
  linears) + LoRA parameters with their gradients and two Adam moments (fp32: 16 bytes each)
  + activations kept for the backward pass (per token and layer ≈ 22·hidden + 7·intermediate
  values; with gradient checkpointing only each layer's input plus one layer recomputed)
  + logits of the loss-bearing tokens (compute dtype, an fp32 copy and its gradient);
- **time** = tokens × FLOPs per token ÷ the device's achieved FLOP/s, where FLOPs per token
  ≈ 4·N (forward 2N, backward through frozen weights 2N; +2N when checkpointing recomputes
  the forward) + causal attention + 6 per LoRA parameter, and the achieved FLOP/s is the
  device's dense peak × an efficiency (``DEVICES``); the CPU figure is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qeu_utils.model.models import choose_precision, model_type_of
from qeu_utils.training.profiles import PROFILES, Profile, load_profile


@dataclass(frozen=True)
class Shape:
    """The sizes of a decoder-only transformer that the estimate needs."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool  # input embeddings shared with the LM head
    head_dim: int | None = None  # None: hidden / heads (Gemma 3's is wider: 256 for 640 / 4)


# The profiles' models, so the README table needs no download (values from their config.json).
KNOWN_SHAPES = {
    "gemma3-270m": Shape(18, 640, 2048, 4, 1, 262144, True, head_dim=256),
    "google/gemma-3-270m": Shape(18, 640, 2048, 4, 1, 262144, True, head_dim=256),
    "smollm2-135m-instruct": Shape(30, 576, 1536, 9, 3, 49152, True),
    "HuggingFaceTB/SmolLM2-135M-Instruct": Shape(30, 576, 1536, 9, 3, 49152, True),
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": Shape(24, 2048, 8192, 32, 32, 49152, True),
    "allenai/OLMo-2-1124-7B-Instruct": Shape(32, 4096, 11008, 32, 32, 100352, False),
}

# Dense peak FLOP/s by precision and the fraction a LoRA step reaches (small matrices, frozen
# weights, kernel launches); the Hopper ones are measured, the others assumed (check them with
# bench/gpu_check.py). The CPU figures are per thread and per architecture, fp32, LoRA r=16
# on all linear layers, 2 idle cores:
# - llama (SmolLM2-135M, stage-1 batches of ~120 tokens, bench/train_bench.py's bare steps):
#   ~250 tokens/s, i.e. ~0.49 GFLOP/token × 250 / 2 ≈ 61 GFLOP/s per thread; the figure for any
#   architecture not listed;
# - gemma3_text (Gemma 3 270M): a whole stage 1 of the curriculum experiment (B-s0 in
#   results/curriculum-gemma3-270m-cpu, checkpoints and logging included), 340 steps in 1,421 s,
#   GEMMA_STEP_S each; the estimator counts ~0.49 GFLOP/token × 584 tokens per step for it.
GEMMA_STEP_S = 4.18
CPU_FLOPS_PER_THREAD = {"llama": 60e9, "gemma3_text": 34e9}
DEVICES = {
    "T4": ({"fp16": 65e12, "fp32": 8.1e12}, 0.30),
    "L4": ({"bf16": 121e12, "fp16": 121e12, "fp32": 30e12}, 0.35),
    "A10G": ({"bf16": 70e12, "fp16": 70e12, "fp32": 31e12}, 0.35),
    "A100": ({"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}, 0.35),
    "L40S": ({"bf16": 362e12, "fp16": 362e12, "fp32": 91e12}, 0.35),
    # Measured on an H200 (bench/gpu_check.py): 20-24% for 1.7B, 28% for 7B, 23% fp32 135M.
    "H100": ({"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}, 0.25),
    "H200": ({"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}, 0.25),
}
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
NF4_BYTES = 0.516  # 4-bit NF4 with double-quantized scales: ~4.13 bits per parameter
CPU_RUNTIME_GIB = 0.6  # Python, torch and the tokenizer, resident before the model loads
# All seven projections of a Llama-style layer; "all-linear" in PEFT means these.
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def shape_of(model_or_config) -> Shape:
    """The shape of a model, a transformers config, or a model name in ``KNOWN_SHAPES``."""
    if isinstance(model_or_config, str):
        if model_or_config not in KNOWN_SHAPES:
            raise ValueError(f"no known shape for {model_or_config!r}; pass its config "
                             f"(AutoConfig.from_pretrained) or one of {sorted(KNOWN_SHAPES)}")
        return KNOWN_SHAPES[model_or_config]
    config = getattr(model_or_config, "config", model_or_config)
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = config.hidden_size
    heads = config.num_attention_heads
    return Shape(layers=config.num_hidden_layers, hidden=hidden,
                 intermediate=getattr(config, "intermediate_size", None) or 4 * hidden,
                 heads=heads, kv_heads=getattr(config, "num_key_value_heads", None) or heads,
                 vocab=config.vocab_size,
                 tied=bool(getattr(config, "tie_word_embeddings", False)),
                 head_dim=_wide_head(config))


def _wide_head(config) -> int | None:
    """``head_dim`` when it is not hidden / heads (Gemma 3), else None (the Shape default)."""
    head_dim = getattr(config, "head_dim", None)
    return None if head_dim in (None, config.hidden_size // config.num_attention_heads) \
        else head_dim


def _linears(s: Shape) -> dict[str, tuple[int, int]]:
    head_dim = s.head_dim or s.hidden // s.heads
    q, kv = s.heads * head_dim, s.kv_heads * head_dim
    h, i = s.hidden, s.intermediate
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def parameter_counts(s: Shape) -> dict[str, int]:
    """``linear`` (the layers' projections), ``embedding`` (input embeddings and, untied, the
    LM head), ``total`` — norms included."""
    linear = s.layers * sum(a * b for a, b in _linears(s).values())
    embedding = s.vocab * s.hidden * (1 if s.tied else 2)
    norms = (2 * s.layers + 1) * s.hidden
    return {"linear": linear, "embedding": embedding, "total": linear + embedding + norms}


def lora_parameters(s: Shape, r: int, targets="all-linear") -> int:
    names = ALL_LINEAR if targets == "all-linear" else [t for t in targets if t in ALL_LINEAR]
    if not names:
        raise ValueError(f"LoRA targets {targets!r} name none of {', '.join(ALL_LINEAR)}")
    return s.layers * sum(r * (a + b) for n, (a, b) in _linears(s).items() if n in names)


def device_flops(device: str, precision: str, threads: int | None = None,
                 model_type: str | None = None) -> float:
    """Achieved FLOP/s: ``"cpu"`` (measured per thread for ``model_type``'s architecture ×
    ``threads``, default torch's), or a GPU name containing a key of ``DEVICES``
    ("NVIDIA A100-SXM4-80GB" → A100)."""
    if device == "cpu":
        if threads is None:
            import torch

            threads = torch.get_num_threads()
        return CPU_FLOPS_PER_THREAD.get(model_type, CPU_FLOPS_PER_THREAD["llama"]) * threads
    # Longest name first: "NVIDIA L40S" contains "L4" too.
    for key in sorted(DEVICES, key=len, reverse=True):
        if key in device:
            peaks, efficiency = DEVICES[key]
            return peaks.get(precision, peaks["fp32"]) * efficiency
    raise ValueError(f"no throughput figure for device {device!r}; known: cpu, "
                     f"{', '.join(DEVICES)}")


def estimate(shape: Shape, *, seq_len: int, batch_size: int, precision: str,
             grad_accum: int = 1, lora_r: int = 16, lora_targets="all-linear",
             gradient_checkpointing: bool = False, qlora: bool = False,
             loss_fraction: float = 1.0, device: str = "cpu", threads: int | None = None,
             n_params: int | None = None, model_type: str | None = None) -> dict:
    """Peak memory (GiB, with its parts) and seconds per optimizer step for LoRA training
    with micro-batches of ``batch_size`` × ``seq_len`` tokens. ``loss_fraction``: the share
    of tokens that carry the loss (the LM head runs only on those in the completion-only
    path). ``n_params`` overrides the count from the shape (a loaded model knows its own);
    ``model_type`` picks the CPU's measured figure."""
    if precision not in BYTES:
        raise ValueError(f"precision must be one of {', '.join(BYTES)}, got {precision!r}")
    if seq_len < 1 or batch_size < 1 or grad_accum < 1:
        raise ValueError("seq_len, batch_size and grad_accum must be at least 1, got "
                         f"{seq_len}, {batch_size}, {grad_accum}")
    if not 0 < loss_fraction <= 1:
        raise ValueError(f"loss_fraction must be in (0, 1], got {loss_fraction}")
    counts = parameter_counts(shape)
    total = n_params or counts["total"]
    frozen_other = total - counts["linear"]  # embeddings, LM head, norms: never quantized
    a = BYTES[precision]
    lora = lora_parameters(shape, lora_r, lora_targets)
    h, i, layers = shape.hidden, shape.intermediate, shape.layers

    weights = (counts["linear"] * NF4_BYTES + frozen_other * 2) if qlora else total * a
    lora_states = lora * 16
    tokens = batch_size * seq_len
    # Coefficients fitted on an H200 (bench/gpu_check.py): SmolLM2-135M fp32 8×1024.
    per_layer = a * (22 * h + 7 * i) * tokens
    if gradient_checkpointing:
        activations = a * h * tokens * layers + per_layer
    else:
        activations = per_layer * layers
    logits = tokens * loss_fraction * shape.vocab * (a + 8)
    gib = 2**30
    overhead = CPU_RUNTIME_GIB * gib if device == "cpu" else 0
    peak = weights + lora_states + activations + logits + overhead

    head = shape.vocab * shape.hidden
    matmul = counts["linear"] + head * loss_fraction
    passes = 6 if gradient_checkpointing else 4  # in units of N: fwd 2, bwd 2, recompute 2
    # Causal attention, per token and layer: forward 2·s·h, backward twice that.
    attention = layers * seq_len * h * (8 if gradient_checkpointing else 6)
    flops_per_token = passes * matmul + attention + 6 * lora
    throughput = device_flops(device, precision, threads, model_type)
    step_tokens = tokens * grad_accum
    seconds = step_tokens * flops_per_token / throughput
    return {
        "n_params": total, "lora_params": lora, "precision": precision, "qlora": qlora,
        "tokens_per_step": step_tokens, "records_per_step": batch_size * grad_accum,
        "memory_gib": {"weights": weights / gib, "lora_and_adam": lora_states / gib,
                       "activations": activations / gib, "logits": logits / gib,
                       "runtime": overhead / gib},
        "peak_memory_gib": peak / gib,
        "flops_per_token": flops_per_token, "device": device, "device_flops": throughput,
        "tokens_per_s": throughput / flops_per_token, "seconds_per_step": seconds,
    }


def stage_minutes(est: dict, *, records: int, epochs: float, max_steps: int = -1) -> dict:
    """Steps and minutes per epoch and for the stage, from an ``estimate`` made at the
    stage's typical (mean padded) sequence length."""
    if records < 1:
        raise ValueError(f"records must be at least 1, got {records}")
    steps_per_epoch = math.ceil(records / est["records_per_step"])
    steps = max_steps if max_steps > 0 else math.ceil(steps_per_epoch * epochs)
    return {"steps_per_epoch": steps_per_epoch, "steps": steps,
            "epoch_minutes": steps_per_epoch * est["seconds_per_step"] / 60,
            "stage_minutes": steps * est["seconds_per_step"] / 60}


# What the stages train on, counted by tokenizer with the template the model trains with
# (python bench/stage_tokens.py). SmolLM2's English-centric tokenizer and chat template: stage 1
# is the default init build (270 records, mean 90 tokens, longest 200, 16% of tokens carry
# the loss); stage 2 is one Dolly part, about 3,400 records after the revision, mean ~500
# tokens (~280 characters), the longest beyond any max_length, about half of it the response.
# Models with other tokenizers use these figures as upper bounds, except Gemma 3's: one token
# for most kanji and a base model's Alpaca template — stage 1 mean 66, longest 115, 9% loss
# (the Japanese Alpaca preamble is long); on the revised Dolly sample it needs 0.48× SmolLM2's
# tokens, 34% of them in the response (SmolLM2: 43%), so stage 2 scales to 240 tokens, 40%.
STAGES = {
    "stage1": {"records": 270, "mean_tokens": 90, "max_tokens": 200, "loss_fraction": 0.16},
    "stage2": {"records": 3400, "mean_tokens": 500, "max_tokens": 8192, "loss_fraction": 0.5},
}
GEMMA3_STAGES = {
    "stage1": {"records": 270, "mean_tokens": 66, "max_tokens": 115, "loss_fraction": 0.09},
    "stage2": {"records": 3400, "mean_tokens": 240, "max_tokens": 3900, "loss_fraction": 0.40},
}


def stage_data(model: str) -> dict:
    """``STAGES`` as counted with ``model``'s tokenizer (Gemma 3) or as an upper bound."""
    return GEMMA3_STAGES if model_type_of(model) in ("gemma3_text", "gemma3") else STAGES


PAD_FACTOR = 1.1  # padded over real tokens in length-grouped batches
# The card each GPU profile is sized for, and the CPU's threads for the cpu profile.
REFERENCE_DEVICE = {"cpu": "cpu", "t4": "T4", "l4": "L4", "a100": "A100"}
REFERENCE_CPU_THREADS = 2


def profile_precision(profile: Profile) -> str:
    """The precision the one rule (``models.choose_precision``) picks for the profile's model on
    its reference card."""
    if profile.precision != "auto":
        return profile.precision
    return choose_precision(cuda=bool(profile.gpu),
                            bf16_native=bool(profile.gpu) and profile.gpu["min_capability"] >= 8.0,
                            model_type=model_type_of(profile.model))


def estimate_profile(name_or_path) -> dict:
    """Peak memory and minutes per stage for a profile on its reference device, with the
    profile's model, batch, length, precision and epochs and the stages' data (``stage_data``)."""
    profile = load_profile(name_or_path)
    shape = shape_of(profile.model)
    precision = profile_precision(profile)
    device = REFERENCE_DEVICE.get(profile.name, "A100" if profile.gpu else "cpu")
    t = profile.training
    common = {"batch_size": t["per_device_train_batch_size"],
              "grad_accum": t["gradient_accumulation_steps"], "precision": precision,
              "lora_r": t["lora_r"], "gradient_checkpointing": t["activation_checkpointing"],
              "qlora": t["load_in_4bit"], "device": device, "threads": REFERENCE_CPU_THREADS,
              "model_type": model_type_of(profile.model)}
    result = {"profile": profile.name, "model": profile.model, "device": device,
              "precision": precision, "peak_memory_gib": 0.0}
    for stage, data in stage_data(profile.model).items():
        longest = min(data["max_tokens"], t["max_length"])
        typical = min(round(data["mean_tokens"] * PAD_FACTOR), t["max_length"])
        peak = estimate(shape, seq_len=longest, loss_fraction=data["loss_fraction"], **common)
        typical_step = estimate(shape, seq_len=typical, loss_fraction=data["loss_fraction"],
                                **common)
        timing = stage_minutes(typical_step, records=data["records"],
                               epochs=profile.stages[stage]["num_train_epochs"])
        result[f"{stage}_minutes"] = timing["stage_minutes"]
        result[f"{stage}_steps"] = timing["steps"]
        result[f"{stage}_peak_gib"] = peak["peak_memory_gib"]
        result["peak_memory_gib"] = max(result["peak_memory_gib"], peak["peak_memory_gib"])
    result["run_dir_gib"] = run_dir_gib(shape, profile.training["lora_r"])
    return result


# What the series leaves in RUN_DIR (on Drive when USE_DRIVE): per stage the adapter and
# Trainer's last `save_total_limit` (3) checkpoints, each the adapter and Adam's two moments, all
# fp32, and a tokenizer.json beside each; then notebook 09's export, a merged model in bf16 and
# an f16 GGUF. Measured on the stored cpu-full run (Gemma 3 270M): 274 MiB per stage (its
# tokenizer.json is 33.4 MB, ~127 bytes per vocabulary entry), export 1,066 MiB.
CHECKPOINTS_KEPT = 3
TOKENIZER_BYTES_PER_ENTRY = 128


def run_dir_gib(shape: Shape, lora_r: int, stages: int = 3, export: bool = True) -> float:
    """GiB that ``stages`` trained stages (and the merged + GGUF export) take on disk."""
    tokenizer = TOKENIZER_BYTES_PER_ENTRY * shape.vocab
    per_stage = ((1 + CHECKPOINTS_KEPT) * tokenizer
                 + lora_parameters(shape, lora_r) * 4 * (1 + 3 * CHECKPOINTS_KEPT))
    exported = 2 * 2 * parameter_counts(shape)["total"] if export else 0
    return (stages * per_stage + exported) / 2**30


def describe(est: dict, timing: dict | None = None) -> str:
    """One line to print before training."""
    m = est["memory_gib"]
    parts = (f"weights {m['weights']:.1f} + LoRA/Adam {m['lora_and_adam']:.2f} + activations "
             f"{m['activations']:.1f} + logits {m['logits']:.1f}")
    if m["runtime"]:
        parts += f" + runtime {m['runtime']:.1f}"
    line = (f"estimate: {_count(est['n_params'])} params, LoRA {_count(est['lora_params'])}, "
            f"{est['precision']}{' QLoRA' if est['qlora'] else ''}: peak ≈ "
            f"{est['peak_memory_gib']:.1f} GiB ({parts}); ≈ {est['tokens_per_s']:,.0f} tokens/s "
            f"on {est['device']}, {est['seconds_per_step']:.1f} s/step")
    if timing:
        line += (f", {timing['steps']} steps ≈ {_duration(timing['stage_minutes'])} "
                 f"({_duration(timing['epoch_minutes'])}/epoch)")
    return line


def _count(n: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}" if n < 10 * size else f"{n / size:.0f}{unit}"
    return f"{n:.0f}"


def _duration(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def profiles_table() -> str:
    """Markdown: each profile's GPU, model, batch and the estimator's minutes and peak memory
    per stage (stage 1: the init data, 10 epochs; stage 2: one Dolly part) on the card the
    profile is sized for (``estimate.REFERENCE_DEVICE``), and what the series leaves in RUN_DIR
    (three stages, the merged model and an f16 GGUF: ``run_dir_gib``)."""
    rows = ["| profile | GPU | model | precision | batch × accum × length | stage 1 | stage 2 "
            "| RUN_DIR |",
            "|---|---|---|---|---|---|---|---|"]
    for name in PROFILES:
        p = load_profile(name)
        e = estimate_profile(name)
        t = p.training
        gpu = (f"≥ {p.gpu['memory_gb']} GB, capability ≥ {p.gpu['min_capability']}"
               if p.gpu else "none (CPU)")
        model = p.model + (" (QLoRA)" if t["load_in_4bit"] else "")
        stages = " | ".join(f"{_minutes(e[f'{s}_minutes'])}, {e[f'{s}_peak_gib']:.1f} GiB"
                            for s in ("stage1", "stage2"))
        rows.append(f"| {name} | {gpu} | {model} | {e['precision']} | "
                    f"{t['per_device_train_batch_size']} × {t['gradient_accumulation_steps']} × "
                    f"{t['max_length']} | {stages} | {e['run_dir_gib']:.1f} GiB |")
    return "\n".join(rows)


def _minutes(m: float) -> str:
    if m < 1:
        return "< 1 min"
    return f"~{m:.0f} min" if m < 120 else f"~{m / 60:.1f} h"
