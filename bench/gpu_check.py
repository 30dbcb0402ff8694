"""Stage-1 training steps on a CUDA GPU with a randomly initialized model of realistic size
(a ≈1.1B Llama-style config, nothing downloaded), in bf16 with LoRA on all linear layers:
tokens per second, peak memory, and model FLOPs utilization (MFU).

MFU counts 4·N FLOPs per token (forward 2N + backward through frozen weights 2N; LoRA's
own weights are negligible) against the GPU's dense bf16 peak. With no GPU it says so and
exits 0. Run: python bench/gpu_check.py [--steps 20] [--batch-size 8] [--seq-len 1024]
"""

from __future__ import annotations

import argparse
import sys
import time

# Dense bf16 peak FLOP/s (no sparsity) by device name.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12,
             "L4": 121e12, "RTX 4090": 165e12}


def realistic_config():
    from transformers import LlamaConfig

    # TinyLlama-1.1B's shape: 22 layers, hidden 2048, grouped-query attention (32 q / 4 kv).
    return LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                       num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                       max_position_embeddings=4096, tie_word_embeddings=False)


def main() -> int:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=1024)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; nothing to measure (run it on a GPU machine).")
        return 0

    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    name = torch.cuda.get_device_name(0)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(realistic_config()).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    ids = torch.randint(0, 32000, (args.batch_size, args.seq_len), device="cuda")
    labels = ids.clone()
    labels[:, : args.seq_len // 2] = -100  # prompt half masked, as in completion-only loss

    def step():
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens_per_s = args.steps * args.batch_size * args.seq_len / seconds
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    print(f"device: {name}")
    print(f"model: {n_params / 1e9:.2f}B parameters (random init), bf16, LoRA r=16 all-linear")
    print(f"batch {args.batch_size} x {args.seq_len} tokens, {args.steps} steps, "
          f"last loss {loss.item():.3f}")
    print(f"tokens/s: {tokens_per_s:,.0f}")
    print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if peak:
        print(f"MFU (4·N FLOPs/token vs {peak / 1e12:.0f} TFLOP/s): "
              f"{4 * n_params * tokens_per_s / peak:.1%}")
    else:
        print("MFU: unknown peak FLOP/s for this device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
