"""The logit lens: what each layer would answer, read through the model's final norm and head.

:func:`logit_lens` gives, per layer, the probability of the expected answer's first token and
the probability mass on English, Chinese and Japanese tokens (:func:`token_languages`);
:func:`answer_probabilities` the answer's probability per prompt (for paired statistics);
:func:`next_token_distributions` one batch of distributions. :func:`chat_prompt` wraps an
instruction in the tokenizer's chat template.
"""

from __future__ import annotations

import re
import weakref

import numpy as np
import torch

from qeu_utils.analysis.hidden_states import decoder_of, device_of
from qeu_utils.core.log import progress as progress_bar

__all__ = [
    "token_languages",
    "next_token_distributions",
    "logit_lens",
    "answer_probabilities",
    "chat_prompt",
]

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile("[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f\U0001b000-\U0001b16f]")
# Anything East Asian: Han, kana, Hangul, CJK punctuation, full-width forms.
_CJK = re.compile(
    "[\u1100-\u11ff\u3000-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
    "\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)
_ASCII_LETTER = re.compile("[A-Za-z]")

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
    decoder = decoder_of(model)
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
    device = device_of(model)
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
