"""One run on a GPU machine: what the profiles decide there, and the estimator checked against
real LoRA training steps.

Prints the hardware report (device, capability, memory, precision, chosen profile), then for
each profile (``cpu``, ``t4``, ``l4``, ``a100``) a few LoRA training steps with that profile's
batch, max length, precision and gradient checkpointing on a *randomly initialized* model of
the profile model's architecture and size (built from its config: nothing is downloaded),
using the training loop's completion-only loss (half of each sequence masked as prompt):
measured tokens/s and peak memory next to ``qeu_utils.training.estimate``'s prediction, as ratios.
The fp16 of the t4 profile runs as Trainer runs it (autocast + gradient scaling).

With no CUDA GPU it prints the report and exits 0; ``--device cpu`` runs the cpu profile's
case on this CPU (short sequences) to try the script. ``--out FILE`` also writes the results
as JSON. Run: python bench/gpu_check.py [--steps 6] [--profiles cpu,t4] [--out results.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def random_model(profile_model: str, dtype, device: str):
    """A random model with the architecture and size of ``profile_model`` (no download)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Olmo2Config

    from qeu_utils.training.estimate import shape_of

    s = shape_of(profile_model)
    kind = Olmo2Config if "OLMo-2" in profile_model else LlamaConfig
    config = kind(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                  num_hidden_layers=s.layers, num_attention_heads=s.heads,
                  num_key_value_heads=s.kv_heads, tie_word_embeddings=s.tied,
                  max_position_embeddings=4096)
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype), s


def completion_loss(model, ids, labels):
    """The training loop's loss for Llama-style models: the LM head on labelled positions only
    (qeu_utils.training.train's CompletionOnlySFTTrainer)."""
    import torch.nn.functional as F

    base = model.get_base_model()
    hidden = base.get_decoder()(input_ids=ids).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = base.get_output_embeddings()(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep])


def run_case(name: str, device: str, steps: int, warmup: int, seq_len: int | None,
             batch_size: int | None) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from qeu_utils.training import estimate as est
    from qeu_utils.training.profiles import load_profile

    profile = load_profile(name)
    precision = est.profile_precision(profile)
    batch = batch_size or profile.training["per_device_train_batch_size"]
    length = seq_len or profile.training["max_length"]
    ckpt = profile.training["activation_checkpointing"]
    dtype = getattr(torch, DTYPES[precision])
    cuda = device == "cuda"
    # Trainer keeps fp16 weights and trains fp32 adapters under autocast with a loss scaler;
    # bf16 needs no scaler; fp32 neither.
    model, shape = random_model(profile.model, dtype, device)
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=profile.training["lora_r"],
                                             lora_alpha=profile.training["lora_alpha"],
                                             lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    ids = torch.randint(0, shape.vocab, (batch, length), device=device)
    labels = ids.clone()
    labels[:, : length // 2] = -100  # the prompt half carries no loss

    def step():
        with torch.autocast(device_type=device, dtype=dtype, enabled=precision != "fp32"):
            loss = completion_loss(model, ids, labels)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        where = torch.cuda.get_device_name(0)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        where = "cpu"
    predicted = est.estimate(shape, seq_len=length, batch_size=batch, precision=precision,
                             lora_r=profile.training["lora_r"], gradient_checkpointing=ckpt,
                             loss_fraction=0.5, device=where)
    tokens_per_s = steps * batch * length / seconds
    result = {
        "profile": name, "model_shape_of": profile.model, "precision": precision,
        "batch_size": batch, "seq_len": length, "gradient_checkpointing": ckpt,
        "steps": steps, "last_loss": round(loss.item(), 3),
        "tokens_per_s": round(tokens_per_s), "estimated_tokens_per_s":
            round(predicted["tokens_per_s"]),
        "tokens_per_s_ratio": round(tokens_per_s / predicted["tokens_per_s"], 2),
        "peak_memory_gib": round(peak, 2),
        "estimated_peak_memory_gib": round(predicted["peak_memory_gib"], 2),
        "memory_ratio": round(peak / predicted["peak_memory_gib"], 2),
        "achieved_tflops": round(tokens_per_s * predicted["flops_per_token"] / 1e12, 2),
    }
    model = optimizer = None  # free the GPU memory before the next case
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def line(r: dict) -> str:
    if "error" in r:
        return f"{r['profile']:>5}: failed — {r['error']}"
    return (f"{r['profile']:>5}: {r['model_shape_of'].split('/')[-1]} shape, {r['precision']}, "
            f"{r['batch_size']}×{r['seq_len']}{' ckpt' if r['gradient_checkpointing'] else ''}: "
            f"{r['tokens_per_s']:,} tok/s (est {r['estimated_tokens_per_s']:,}, "
            f"×{r['tokens_per_s_ratio']}), peak {r['peak_memory_gib']} GiB "
            f"(est {r['estimated_peak_memory_gib']}, ×{r['memory_ratio']}), "
            f"{r['achieved_tflops']} TFLOP/s, loss {r['last_loss']}")


def main() -> int:
    import torch

    from qeu_utils.training.profiles import hardware_markdown, hardware_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profiles", default="cpu,t4,l4,a100")
    parser.add_argument("--device", choices=("auto", "cpu"), default="auto")
    parser.add_argument("--seq-len", type=int, help="override the profiles' max_length")
    parser.add_argument("--batch-size", type=int, help="override the profiles' batch size")
    parser.add_argument("--out", help="also write the results here as JSON")
    args = parser.parse_args()

    report = hardware_report()
    print(hardware_markdown(report))
    if args.device == "auto" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; nothing to measure (run it on a GPU machine, or "
              "try the script with --device cpu --profiles cpu --seq-len 64).")
        return 0
    device = "cuda" if args.device == "auto" else "cpu"
    results = []
    for name in args.profiles.split(","):
        started = time.perf_counter()
        try:
            r = run_case(name.strip(), device, args.steps, args.warmup, args.seq_len,
                         args.batch_size)
        except Exception as err:  # an OOM in one case should not hide the others
            r = {"profile": name, "error": f"{type(err).__name__}: {str(err)[:200]}"}
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
        r["wall_s"] = round(time.perf_counter() - started, 1)
        results.append(r)
        print(line(r), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({"hardware": report, "results": results}, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
