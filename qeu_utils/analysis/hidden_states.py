"""Hidden states of every layer, pooled over an item or a whole sentence.

:func:`pooled_states` reads one item (e.g. a kanji) inside a short context and averages over
exactly the tokens that cover it; :func:`sentence_states` averages over a whole sentence. Both
return ``[n_layers + 1, n, hidden]``: layer 0 is the embedding output, layer ``n_layers`` the
final (normalized) hidden state, as ``output_hidden_states=True`` returns them. Every text is
read after a BOS (or EOS) token that is never pooled: it absorbs the first position's outsized
"attention sink" activations.
"""

from __future__ import annotations

import torch

from qeu_utils.core.log import progress as progress_bar

__all__ = ["pooled_states", "sentence_states", "device_of", "decoder_of"]


def device_of(model) -> torch.device:
    """Where the model's (first) parameters live, so inputs go to the same device."""
    return next(model.parameters()).device


def decoder_of(model):
    """The transformer body without the LM head, so a forward pass computes no logits
    (the head is ~a quarter of a small model's compute). LoRA layers are injected in place,
    so the body of a ``PeftModel`` runs with its adapter."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return base.get_decoder()
    except (AttributeError, NotImplementedError, ValueError):
        return base


def _sink_id(tokenizer) -> int | None:
    """The token every sequence starts with: BOS, or EOS for tokenizers without one.

    A causal LM piles huge activations onto its first position (an "attention sink": in
    SmolLM2-135M its middle-layer norm is ~25,000 against ~200 elsewhere), whatever token is
    there. Left to the text's first token, that one position would swamp every mean it is part
    of, so a special token takes the position and is never pooled. Models trained with a BOS
    (Llama, Gemma) get exactly what they expect."""
    if tokenizer.bos_token_id is not None:
        return tokenizer.bos_token_id
    return tokenizer.eos_token_id


def _encode(tokenizer, texts: list[str]) -> tuple[list[list[int]], list[list[tuple]], int]:
    """Token ids and character offsets (no special tokens but the sink token, whose offset
    (0, 0) overlaps no character), and how many tokens were prepended (0 or 1)."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("pooling needs a fast tokenizer (offsets mapping); got "
                        f"{type(tokenizer).__name__}")
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    ids = [list(x) for x in enc["input_ids"]]
    offsets = [[tuple(o) for o in x] for x in enc["offset_mapping"]]
    sink = _sink_id(tokenizer)
    if sink is None:
        return ids, offsets, 0
    return [[sink, *x] for x in ids], [[(0, 0), *x] for x in offsets], 1


def _pooled(model, tokenizer, ids: list[list[int]], weights: list[list[float]],
            batch_size: int, progress=False) -> torch.Tensor:
    """Weighted mean of every layer's hidden states: ``[layers + 1, n, hidden]``, float32, CPU.

    Sequences are batched by length (less padding, same results) and right-padded; with a
    causal mask, padding on the right cannot change the states of the real tokens."""
    if not ids:
        raise ValueError("no items to encode")
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    device = device_of(model)
    body = decoder_of(model)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: torch.Tensor | None = None
    model.eval()
    with torch.no_grad():
        starts = range(0, len(order), batch_size)
        for start in progress_bar(starts, progress, len(starts)):
            batch = order[start:start + batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            w = torch.zeros((len(batch), width), dtype=torch.float32)
            for row, i in enumerate(batch):
                n = len(ids[i])
                input_ids[row, :n] = torch.tensor(ids[i])
                mask[row, :n] = 1
                w[row, :n] = torch.tensor(weights[i], dtype=torch.float32)
            w = w / w.sum(dim=1, keepdim=True)
            hidden = body(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                          output_hidden_states=True).hidden_states
            stacked = torch.stack([h.float().cpu() for h in hidden])  # [L+1, B, T, H]
            pooled = torch.einsum("lbth,bt->lbh", stacked, w)
            if out is None:
                out = torch.empty((pooled.shape[0], len(ids), pooled.shape[2]))
            out[:, batch] = pooled
    return out


def pooled_states(model, tokenizer, items: list[str], *, context: str = "「{x}」",
                  batch_size: int = 32, progress=False) -> torch.Tensor:
    """Every layer's hidden state of each item, read inside ``context``.

    Each item is put into ``context`` (``{x}`` marks its place; the brackets make a kanji read
    as a word rather than a sentence start) and the hidden states are averaged over exactly the
    tokens whose character offsets overlap the item — byte-level tokenizers split one kanji
    into several tokens, and a token shared with the context still carries the item. The text
    is encoded without special tokens except a leading BOS (EOS when there is none), which is
    never pooled (see :func:`_sink_id`).
    Returns ``[n_layers + 1, len(items), hidden]``, float32 on CPU. ``progress``: show a bar
    (a string labels it).
    """
    if "{x}" not in context:
        raise ValueError(f"context {context!r} has no '{{x}}' placeholder for the item")
    prefix, suffix = context.split("{x}", 1)
    texts = [prefix + item + suffix for item in items]
    ids, offsets, _ = _encode(tokenizer, texts)
    weights = []
    for item, offs in zip(items, offsets, strict=True):
        lo, hi = len(prefix), len(prefix) + len(item)
        w = [1.0 if start < hi and end > lo else 0.0 for start, end in offs]
        if not any(w):
            raise ValueError(f"item {item!r} covers no token in {prefix + item + suffix!r}")
        weights.append(w)
    return _pooled(model, tokenizer, ids, weights, batch_size, progress)


def sentence_states(model, tokenizer, sentences: list[str], *,
                    batch_size: int = 32, progress=False) -> torch.Tensor:
    """Every layer's hidden state of each sentence, the mean over all of its tokens, read after
    a BOS/EOS token that is not pooled (see :func:`_sink_id`: without it the first token's
    outsized activations make every sentence look alike, cosine ~0.998).
    Returns ``[n_layers + 1, len(sentences), hidden]``."""
    ids, _, sink = _encode(tokenizer, list(sentences))
    weights = [[0.0] * sink + [1.0] * (len(x) - sink) for x in ids]
    for sentence, w in zip(sentences, weights, strict=True):
        if not any(w):
            raise ValueError(f"sentence {sentence!r} encodes to no tokens")
    return _pooled(model, tokenizer, ids, weights, batch_size, progress)
