"""Completion-only cross-entropy with the LM head applied only where a label is set.

Training and the held-out loss both score the answer, never the prompt, so the prompt's
logits are never needed. With a vocabulary of 49k–150k entries the LM head and the logits it
writes are a large part of a forward pass. ``bench/loss_bench.py`` (SmolLM2-135M, 2 CPU cores,
the held-out Dolly sample, two runs): 1.15-1.24x faster than the full forward, 1.45-1.57x than the
``[batch, vocab, length]`` cross-entropy used before, which was also further from the float64
value. The result is the model's own token-level cross-entropy — for the architectures in
``FAST_LOSS_MODEL_TYPES``, whose logits are the LM head's output and nothing more. Any other
model (Gemma-2's soft-capping, Cohere's logit scale) goes through its own forward.
"""

from __future__ import annotations

# Architectures whose causal-LM forward is exactly ``lm_head(decoder(x))`` then the plain
# token cross-entropy (checked in transformers' modeling_<type>.py). Others post-process
# logits — Gemma-2 soft-caps them, Cohere multiplies by logit_scale, Granite divides by
# logits_scaling — and go through the model's own forward. Gemma 3 (``gemma3_text``,
# Gemma3ForCausalLM) soft-caps only when its config sets ``final_logit_softcapping``, which
# Google's configs leave null (its embedding scaling is inside the decoder); a config that
# sets it is caught by the check below. tests/test_gemma.py compares both losses.
FAST_LOSS_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "olmo2", "gemma3_text")
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling",
                        "output_logit_scale", "logit_softcapping")


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def fast_loss_ok(model) -> bool:
    """Whether applying the LM head to the labelled positions only gives the model's loss."""
    base = _base(model)
    config = base.config
    if config.model_type not in FAST_LOSS_MODEL_TYPES:
        return False
    # A config may carry such a setting even for an allowed type (a fine-tune's edited config).
    for name in LOGIT_POSTPROCESSING:
        value = getattr(config, name, None)
        if value is not None and value != 1:
            return False
    return callable(getattr(base, "get_decoder", None)) and base.get_output_embeddings() is not None


def token_nll(model, labels, **inputs):
    """Cross-entropy of every labelled next token: ``(nll, keep)``. ``inputs`` are the
    model's (``input_ids``, ``attention_mask``, optionally ``position_ids``); ``keep`` is the
    ``[batch, length - 1]`` mask of positions with a label (not -100), and ``nll`` holds their
    losses in float32, in the row-major order of ``keep``."""
    import torch.nn.functional as F

    targets = labels[:, 1:]
    keep = targets != -100
    if fast_loss_ok(model):
        base = _base(model)
        hidden = base.get_decoder()(**inputs, use_cache=False).last_hidden_state
        logits = base.get_output_embeddings()(hidden[:, :-1][keep])
    else:
        logits = model(**inputs, use_cache=False).logits[:, :-1][keep]
    return F.cross_entropy(logits.float(), targets[keep], reduction="none"), keep
