"""Embedding analysis: does the curriculum pull Japanese and Chinese (and English) together?

The question of the QEU project — "日本語のベクトル＝中国語のベクトル" — asked with plain tools:

- Representations: :func:`pooled_states` (one item, e.g. a kanji, inside a short context,
  mean over exactly the tokens that cover it) and :func:`sentence_states` (mean over a whole
  sentence), for every layer, shape ``[n_layers + 1, n, hidden]``.
- Metrics per layer: :func:`alignment` (matched vs. random cosine, the gap with a bootstrap
  95% CI, retrieval top-1/top-10/MRR) and :func:`style_linkage` (is plain Japanese closer to
  Chinese, polite Japanese closer to English?). Raw cosines by default; ``center=True``
  removes the common direction all hidden states share first.
- :func:`logit_lens`: what each layer would answer (:func:`next_token_distributions`), the
  probability of the expected answer's first token and the probability mass on English,
  Chinese and Japanese tokens (:func:`token_languages`).
- Per item rather than averaged (for paired statistics over items): :func:`alignment_items`,
  :func:`style_linkage_items`, :func:`answer_probabilities`.
- Items from the project's real sources: :func:`kanji_items`, :func:`country_items`,
  :func:`loanword_items`, :func:`sentence_items`; :func:`chat_prompt` wraps an instruction in
  the tokenizer's chat template. Items a model was trained on are told apart from the rest
  with :func:`kanji_forms_in` and :func:`split_seen`: a model that has seen 鉄 → 铁 in training
  proves nothing about recognition when it aligns them.
- Plots: :func:`plot_layer_curves`, :func:`plot_projection`, :func:`plot_similarity_heatmap`,
  :func:`plot_logit_lens` — each writes a PNG with a font that renders Japanese, Traditional and
  Simplified Chinese.

Layer 0 is the embedding output, layer ``n_layers`` the final (normalized) hidden state, as
``output_hidden_states=True`` returns them. Every text is read after a BOS (or EOS) token
that is never pooled: it absorbs the first position's outsized "attention sink" activations.
"""

from __future__ import annotations

import os
import random
import re
import weakref

import numpy as np
import torch

from qeu_utils.core.log import progress as progress_bar
from qeu_utils.core.plotting import pyplot, save_png

__all__ = [
    "pooled_states",
    "sentence_states",
    "alignment",
    "alignment_items",
    "style_linkage",
    "style_linkage_items",
    "answer_probabilities",
    "token_languages",
    "next_token_distributions",
    "logit_lens",
    "chat_prompt",
    "kanji_items",
    "country_items",
    "loanword_items",
    "sentence_items",
    "kanji_forms_in",
    "split_seen",
    "plot_layer_curves",
    "plot_projection",
    "plot_similarity_heatmap",
    "plot_logit_lens",
]

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile("[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f\U0001b000-\U0001b16f]")
# Anything East Asian: Han, kana, Hangul, CJK punctuation, full-width forms.
_CJK = re.compile(
    "[\u1100-\u11ff\u3000-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
    "\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)
_ASCII_LETTER = re.compile("[A-Za-z]")


# --- representations ---------------------------------------------------------------------


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def _decoder(model):
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
    device = _device_of(model)
    body = _decoder(model)
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


# --- metrics -----------------------------------------------------------------------------


def _layers(x) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    return x.unsqueeze(0) if x.dim() == 2 else x  # a 2-D input is one layer


def _unit(x) -> torch.Tensor:
    return torch.nn.functional.normalize(_layers(x), dim=-1)


def _units(*xs, center: bool) -> list[torch.Tensor]:
    """Unit vectors of each input; with ``center``, after subtracting (per layer) the mean of
    all rows of all inputs. Hidden states share a large common direction (anisotropy) that
    puts every cosine near 1; centering removes it, so the cosines spread out."""
    xs = [_layers(x) for x in xs]
    if center:
        mean = torch.cat(xs, dim=1).mean(dim=1, keepdim=True)
        xs = [x - mean for x in xs]
    return [torch.nn.functional.normalize(x, dim=-1) for x in xs]


def _ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap 95% CI of the mean over items (axis 1), per layer (axis 0)."""
    rng = np.random.default_rng(seed)
    n = values.shape[1]
    idx = rng.integers(0, n, size=(n_boot, n))
    means = values[:, idx].mean(axis=2)  # [layers, n_boot]
    return np.percentile(means, 2.5, axis=1), np.percentile(means, 97.5, axis=1)


def alignment(a, b, *, n_boot: int = 1000, seed: int = 0, center: bool = False) -> list[dict]:
    """Per layer, how well row ``i`` of ``a`` matches row ``i`` of ``b`` (``[layers, n, H]``).

    - ``matched``: mean cosine of the matched pairs; ``random``: mean cosine of all pairs
      ``i != j``; ``gap`` = matched − random, with ``gap_lo``/``gap_hi`` a bootstrap 95% CI over
      items (each item's own gap is its matched cosine minus the mean of its row's others, whose
      average is exactly ``random``).
    - Retrieval of ``b[i]`` among all rows of ``b`` by cosine to ``a[i]``: ``top1``, ``top10``
      and ``mrr`` (ties count in the item's favour).

    ``center=True`` measures cosines after removing the mean of all rows of ``a`` and ``b``
    (per layer), which spreads out the crowded raw cosines of anisotropic hidden states.
    """
    items = alignment_items(a, b, center=center)
    gap, rank, matched, others = items["gap"], items["rank"], items["matched"], items["others"]
    n = gap.shape[1]
    lo, hi = _ci(gap, n_boot, seed)
    rows = []
    for layer in range(gap.shape[0]):
        rows.append({
            "layer": layer, "n": n, "matched": float(matched[layer].mean()),
            "random": float(others[layer].mean()), "gap": float(gap[layer].mean()),
            "gap_lo": float(lo[layer]), "gap_hi": float(hi[layer]),
            "top1": float((rank[layer] == 1).mean()),
            "top10": float((rank[layer] <= 10).mean()),
            "mrr": float((1.0 / rank[layer]).mean()),
        })
    return rows


def alignment_items(a, b, *, center: bool = False) -> dict[str, np.ndarray]:
    """:func:`alignment` per item, ``[layers, n]`` arrays: ``matched`` (cosine of ``a[i]`` and
    ``b[i]``), ``others`` (mean cosine of ``a[i]`` with every other row of ``b``), ``gap`` (their
    difference) and ``rank`` (1 = ``b[i]`` is the nearest row of ``b`` to ``a[i]``; ties count
    in the item's favour). Per-item values are what a paired comparison of two models needs."""
    if _layers(a).shape != _layers(b).shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(_layers(a).shape)} and "
                         f"{tuple(_layers(b).shape)}")
    a, b = _units(a, b, center=center)
    n = a.shape[1]
    if n < 2:
        raise ValueError(f"alignment needs at least 2 items to compare against, got {n}")
    sim = torch.einsum("lih,ljh->lij", a, b).double().numpy()  # [L, n, n]
    diag = np.diagonal(sim, axis1=1, axis2=2)  # [L, n]
    others = (sim.sum(axis=2) - diag) / (n - 1)  # each row's mean non-matching cosine
    rank = 1 + (sim > diag[:, :, None]).sum(axis=2)
    return {"matched": diag.copy(), "others": others, "gap": diag - others, "rank": rank}


def style_linkage(plain, polite, zh, en, *, n_boot: int = 1000, seed: int = 0,
                  center: bool = False) -> list[dict]:
    """Per layer, the curriculum's link: plain Japanese ⇄ Chinese, polite Japanese ⇄ English.

    ``plain_zh_gap`` is the mean over sentences of cos(plain, zh) − cos(polite, zh);
    ``polite_en_gap`` the mean of cos(polite, en) − cos(plain, en); both with bootstrap 95% CIs
    (``_lo``, ``_hi``). Positive means the link holds. The four mean cosines come along.
    ``center`` as in :func:`alignment` (the mean of all four inputs' rows).
    """
    items = style_linkage_items(plain, polite, zh, en, center=center)
    gaps = {key: items[key] for key in ("plain_zh_gap", "polite_en_gap")}
    cis = {key: _ci(values, n_boot, seed) for key, values in gaps.items()}
    rows = []
    for layer in range(gaps["plain_zh_gap"].shape[0]):
        row = {"layer": layer, "n": gaps["plain_zh_gap"].shape[1]}
        for key, values in gaps.items():
            row[key] = float(values[layer].mean())
            row[f"{key}_lo"] = float(cis[key][0][layer])
            row[f"{key}_hi"] = float(cis[key][1][layer])
        row.update({f"cos_{k}": float(items[f"cos_{k}"][layer].mean())
                    for k in ("plain_zh", "polite_zh", "polite_en", "plain_en")})
        rows.append(row)
    return rows


def style_linkage_items(plain, polite, zh, en, *, center: bool = False) -> dict[str, np.ndarray]:
    """:func:`style_linkage` per sentence: ``[layers, n]`` arrays ``plain_zh_gap``,
    ``polite_en_gap`` and the four cosines ``cos_plain_zh`` … ``cos_plain_en``."""
    shapes = {tuple(_layers(x).shape) for x in (plain, polite, zh, en)}
    if len(shapes) != 1:
        raise ValueError(f"plain, polite, zh and en must have the same shape, got {shapes}")
    plain, polite, zh, en = _units(plain, polite, zh, en, center=center)

    def cos(x, y):
        return (x * y).sum(-1).double().numpy()  # [L, n]

    pairs = {"plain_zh": cos(plain, zh), "polite_zh": cos(polite, zh),
             "polite_en": cos(polite, en), "plain_en": cos(plain, en)}
    result = {f"cos_{k}": v for k, v in pairs.items()}
    result["plain_zh_gap"] = pairs["plain_zh"] - pairs["polite_zh"]
    result["polite_en_gap"] = pairs["polite_en"] - pairs["plain_en"]
    return result


# --- logit lens --------------------------------------------------------------------------

_LANGUAGE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_languages(tokenizer) -> dict[str, torch.Tensor]:
    """Boolean masks over the vocabulary (``len(tokenizer)``), by the script of each token.

    Each id is decoded on its own. ``en``: ASCII letters and nothing East Asian; ``ja``: any
    kana; ``zh``: Han characters and no kana — which includes tokens for kanji that Japanese
    writes the same way, so ``zh`` is "Chinese characters", not "Chinese only"; ``other``:
    the rest (digits, punctuation, other scripts, special tokens, and byte pieces of a
    multi-byte character, which decode to U+FFFD alone). The four masks partition the
    vocabulary. Cached per tokenizer object.
    """
    cached = _LANGUAGE_CACHE.get(tokenizer)
    if cached is not None and cached[0] == len(tokenizer):
        return cached[1]
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    special = set(tokenizer.all_special_ids)
    masks = {key: torch.zeros(size, dtype=torch.bool) for key in ("en", "ja", "zh", "other")}
    for i, text in enumerate(texts):
        text = text.replace("\ufffd", "")  # a partial character says nothing about language
        if i in special or not text.strip():
            key = "other"
        elif _KANA.search(text):
            key = "ja"
        elif _HAN.search(text):
            key = "zh"
        elif _ASCII_LETTER.search(text) and not _CJK.search(text):
            key = "en"
        else:
            key = "other"
        masks[key][i] = True
    _LANGUAGE_CACHE[tokenizer] = (size, masks)
    return masks


def _final_norm(model):
    """The norm applied before the LM head, found on common architectures (PEFT unwrapped)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.norm", "model.final_layernorm", "transformer.ln_f",
                 "gpt_neox.final_layer_norm", "model.decoder.final_layer_norm"):
        module = base
        for name in path.split("."):
            module = getattr(module, name, None)
        if module is not None:
            return module
    decoder = _decoder(model)
    for name in ("norm", "final_layernorm", "ln_f", "final_layer_norm"):
        if getattr(decoder, name, None) is not None:
            return getattr(decoder, name)
    raise AttributeError(f"cannot find the final norm of {type(base).__name__}")


def next_token_distributions(model, tokenizer, prompts: list[str]) -> torch.Tensor:
    """Every layer's next-token distribution at the last position of each prompt:
    ``[n_layers + 1, len(prompts), vocab]`` float32 on CPU — one batch of :func:`logit_lens`.

    Layers before the last go through the model's final norm and LM head; the last layer is the
    model's own output (the final norm is already applied there), so its distribution is
    exactly the model's next-token distribution. Prompts are full strings, encoded without
    adding special tokens, right-padded.
    """
    head, norm = model.get_output_embeddings(), _final_norm(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    enc = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in prompts]
    if not all(enc):
        raise ValueError("every prompt must encode to at least one token")
    width = max(len(x) for x in enc)
    input_ids = torch.full((len(enc), width), pad, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for row, x in enumerate(enc):
        input_ids[row, :len(x)], mask[row, :len(x)] = torch.tensor(x), 1
    device = _device_of(model)
    rows, last = torch.arange(len(enc), device=device), torch.tensor([len(x) - 1 for x in enc])
    last = last.to(device)
    model.eval()
    with torch.no_grad():
        out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                    output_hidden_states=True)
        logits = [head(norm(h[rows, last])).float().cpu() for h in out.hidden_states[:-1]]
        logits.append(out.logits[rows, last].float().cpu())
    return torch.stack(logits).softmax(dim=-1)


def logit_lens(model, tokenizer, prompts: list[str], answers: list[str], *,
               batch_size: int = 8, progress=False) -> dict:
    """What each layer would say next, averaged over prompts (see
    :func:`next_token_distributions`).

    ``prompts`` are full strings (chat-templated, ending with the generation prompt; see
    :func:`chat_prompt`). Per layer: ``answer_prob`` (probability of the first token of the
    expected answer, encoded without special tokens — with a byte-level tokenizer that can be a
    byte shared by many characters) and ``mass_en``/``mass_zh``/``mass_ja`` (probability on
    each language's tokens, see :func:`token_languages`); ``top_tokens`` is each layer's most
    likely token for the first prompt.
    """
    answer_ids = _first_tokens(tokenizer, prompts, answers)
    langs = token_languages(tokenizer)
    sums: dict[str, torch.Tensor] = {}
    top_tokens: list[str] = []
    starts = range(0, len(prompts), batch_size)
    for start in progress_bar(starts, progress, len(starts)):
        probs = next_token_distributions(model, tokenizer, prompts[start:start + batch_size])
        rows = torch.arange(probs.shape[1])
        expected = torch.tensor(answer_ids[start:start + probs.shape[1]])
        stats = {"answer_prob": probs[:, rows, expected]}
        for key in ("en", "zh", "ja"):
            stats[f"mass_{key}"] = probs @ _fit(langs[key], probs.shape[-1]).float()
        for key, value in stats.items():
            sums[key] = sums.get(key, 0) + value.sum(dim=1)
        if start == 0:
            top_tokens = [tokenizer.decode([int(i)]) for i in probs[:, 0].argmax(dim=-1)]
    result = {"layers": len(top_tokens)}
    result.update({key: (value / len(prompts)).tolist() for key, value in sums.items()})
    result["top_tokens"] = top_tokens
    return result


def _first_tokens(tokenizer, prompts: list[str], answers: list[str]) -> list[int]:
    if len(prompts) != len(answers) or not prompts:
        raise ValueError(f"need as many answers as prompts (>0), got {len(prompts)} prompts "
                         f"and {len(answers)} answers")
    answer_ids = []
    for answer in answers:
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"answer {answer!r} encodes to no tokens")
        answer_ids.append(ids[0])
    return answer_ids


def answer_probabilities(model, tokenizer, prompts: list[str], answers: list[str], *,
                         batch_size: int = 8, progress=False) -> np.ndarray:
    """The logit lens's ``answer_prob`` per prompt: ``[n_layers + 1, len(prompts)]``, the
    probability each layer gives the first token of each expected answer."""
    answer_ids = _first_tokens(tokenizer, prompts, answers)
    columns = []
    starts = range(0, len(prompts), batch_size)
    for start in progress_bar(starts, progress, len(starts)):
        probs = next_token_distributions(model, tokenizer, prompts[start:start + batch_size])
        rows = torch.arange(probs.shape[1])
        expected = torch.tensor(answer_ids[start:start + probs.shape[1]])
        columns.append(probs[:, rows, expected].double().numpy())
    return np.concatenate(columns, axis=1)


def _fit(mask: torch.Tensor, size: int) -> torch.Tensor:
    """A vocabulary mask cut or padded (False) to the LM head's size, which is often rounded up
    past ``len(tokenizer)``."""
    if mask.shape[0] >= size:
        return mask[:size]
    return torch.cat([mask, torch.zeros(size - mask.shape[0], dtype=torch.bool)])


def chat_prompt(tokenizer, instruction: str) -> str:
    """``instruction`` as one user turn in the tokenizer's chat template, ending with the
    generation prompt; the bare instruction when the tokenizer has no template."""
    if not getattr(tokenizer, "chat_template", None):
        return instruction
    return tokenizer.apply_chat_template([{"role": "user", "content": instruction}],
                                         tokenize=False, add_generation_prompt=True)


# --- items -------------------------------------------------------------------------------


def _sample(rows: list, n: int | None, seed: int) -> list:
    """A seeded sample of ``n`` rows kept in their original order (all rows when None)."""
    if n is None or n >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def kanji_items(n: int | None = None, seed: int = 0, *,
                differ: str = "all") -> list[tuple[str, str, str]]:
    """``(japanese, simplified, traditional)`` for Jōyō kanji whose Traditional form is not
    ambiguous, in code point order: with ``differ="all"`` those whose three forms are all
    different (鉄 铁 鐵), with ``differ="hans"`` every one whose Japanese and Simplified forms
    differ (国 国 國 is out, 説 说 說 in). Characters written alike are left out: identical
    strings would be trivially identical vectors."""
    from qeu_utils.text.kanji import joyo_kanji, variants

    if differ not in ("all", "hans"):
        raise ValueError(f"differ must be 'all' or 'hans', got {differ!r}")
    rows = []
    for char in joyo_kanji():
        v = variants(char)
        forms = (v.japanese, v.simplified, v.traditional)
        keep = len(set(forms)) == 3 if differ == "all" else v.japanese != v.simplified
        if not v.ambiguous and keep:
            rows.append(forms)
    return _sample(rows, n, seed)


def country_items(n: int | None = None, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """``(ja, zh_hans, zh_hant, en)`` names of the 195 sovereign countries, by ISO code."""
    from qeu_utils.text.countries import countries

    return _sample([(c.ja, c.zh_hans, c.zh_hant, c.en) for c in countries()], n, seed)


def loanword_items(n: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """``(katakana, english)`` loanwords harvested from the project's texts, as the katakana
    dataset builder finds them (same order)."""
    from qeu_utils.text.katakana import harvest_loanwords
    from qeu_utils.text.sources import loanword_texts

    found = harvest_loanwords(loanword_texts())
    return _sample(list(found.items()), n, seed)


def sentence_items(n: int | None = None, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """``(plain, polite, zh, en)`` rows of the project's trilingual sentences."""
    from qeu_utils.text.sources import read_trilingual

    rows = [(r["plain"], r["polite"], r["zh"], r["en"]) for r in read_trilingual()]
    return _sample(rows, n, seed)


_QUOTED = re.compile("「([^「」]+)」")


def kanji_forms_in(records) -> set[str]:
    """Every kanji form a set of records asks about or answers in its ``kanji`` category: the
    quoted 「x」 or the ``input`` of the question and each form of the answer
    (``辨・辯・瓣・弁（…）`` gives four). Words of the instructions do not count; kanji inside
    sentences of other categories do not either (they are text, not the item taught)."""
    from qeu_utils.text.kanji import answer_forms

    forms: set[str] = set()
    for record in records:
        if record["category"] != "kanji":
            continue
        forms.update(_QUOTED.findall(record["instruction"]))
        if record["input"]:
            forms.add(record["input"])
        forms.update(answer_forms(record["output"]))
    return forms


def split_seen(items: list[tuple], seen: set[str]) -> tuple[list[tuple], list[tuple]]:
    """``(seen_items, unseen_items)``: an item (a tuple of forms, e.g. from
    :func:`kanji_items`) is seen when any of its forms is in ``seen``; order is kept, and no
    item is on both sides."""
    seen_items = [item for item in items if any(form in seen for form in item)]
    unseen_items = [item for item in items if not any(form in seen for form in item)]
    return seen_items, unseen_items


# --- plots -------------------------------------------------------------------------------




def _save(plt, fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)


def plot_layer_curves(series: dict[str, list[dict]], key: str, path: str | os.PathLike,
                      title: str, ylabel: str) -> None:
    """``key`` per layer for each labelled run ("base", "stage 1", …), with a shaded CI band
    where the rows carry ``{key}_lo``/``{key}_hi``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for label, rows in series.items():
        layers = [r["layer"] for r in rows]
        line, = ax.plot(layers, [r[key] for r in rows], marker="o", markersize=3, label=label)
        if rows and f"{key}_lo" in rows[0]:
            ax.fill_between(layers, [r[f"{key}_lo"] for r in rows],
                            [r[f"{key}_hi"] for r in rows], color=line.get_color(), alpha=0.2)
    ax.axhline(0, color="gray", linewidth=0.6)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    _save(plt, fig, path)


def plot_projection(states_by_form: dict, labels, path: str | os.PathLike, title: str) -> None:
    """All forms' vectors (``{form: [n, H]}``, e.g. 日本/繁体/簡体) projected together onto
    their first two principal components; one colour per form, each point annotated, and a
    faint line joining the forms of one item.

    ``labels``: a list of ``n`` strings shared by every form, or ``{form: [n strings]}`` so each
    point shows its own character (鉄, 鐵, 铁)."""
    plt = pyplot()
    forms = list(states_by_form)
    arrays = [np.asarray(torch.as_tensor(states_by_form[f], dtype=torch.float32))
              for f in forms]
    n = arrays[0].shape[0]
    stacked = np.concatenate(arrays)
    centered = stacked - stacked.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    xy = (centered @ vt[:2].T).reshape(len(forms), n, 2)
    fig, ax = plt.subplots(figsize=(7, 6))
    for i in range(n):
        ax.plot(xy[:, i, 0], xy[:, i, 1], color="gray", linewidth=0.4, alpha=0.4)
    for k, form in enumerate(forms):
        texts = labels[form] if isinstance(labels, dict) else labels
        ax.scatter(xy[k, :, 0], xy[k, :, 1], s=14, label=form, color=f"C{k}")
        for i in range(n):
            ax.annotate(texts[i], xy[k, i], fontsize=8, color=f"C{k}",
                        xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    ax.legend()
    _save(plt, fig, path)


def plot_similarity_heatmap(a, b, labels: list[str], path: str | os.PathLike, title: str, *,
                            col_labels: list[str] | None = None) -> None:
    """Cosine similarity of every row of ``a`` ([n, H]) with every row of ``b``, at most 20
    rows, ticks labelled with the characters (``col_labels`` for ``b`` when they differ)."""
    plt = pyplot()
    a, b = _unit(a)[0], _unit(b)[0]
    if a.shape[0] > 20 or b.shape[0] > 20:
        raise ValueError(f"a heatmap is readable for at most 20 rows, got {a.shape[0]} and "
                         f"{b.shape[0]}: pass a subset")
    sim = (a @ b.T).numpy()
    fig, ax = plt.subplots(figsize=(1.2 + 0.38 * len(sim[0]), 1.0 + 0.38 * len(sim)))
    image = ax.imshow(sim, cmap="viridis")
    ax.set_xticks(range(sim.shape[1]), col_labels or labels)
    ax.set_yticks(range(sim.shape[0]), labels)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="cosine")
    _save(plt, fig, path)


def plot_logit_lens(results: dict[str, dict], path: str | os.PathLike, title: str) -> None:
    """:func:`logit_lens` results per label: the answer's probability and the probability mass
    on English / Chinese / Japanese tokens, per layer (one line style per label)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    styles = ["-", "--", ":", "-."]
    colors = {"mass_en": "C0", "mass_zh": "C3", "mass_ja": "C2"}
    for k, (label, result) in enumerate(results.items()):
        layers = range(result["layers"])
        style = styles[k % len(styles)]
        left.plot(layers, result["answer_prob"], style, marker="o", markersize=3, label=label)
        for key, color in colors.items():
            right.plot(layers, result[key], style, color=color,
                       label=f"{key.removeprefix('mass_')} ({label})")
    left.set(xlabel="layer", ylabel="p(answer's first token)", title="answer")
    right.set(xlabel="layer", ylabel="probability mass", title="language of the next token")
    left.legend()
    right.legend(fontsize=8)
    fig.suptitle(title)
    _save(plt, fig, path)
