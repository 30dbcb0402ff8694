"""Greedy answers to records, batched, with the prompts rendered exactly as in training.

:func:`generate_answers` does the whole job; :func:`add_special_tokens`, :func:`pad_id` and
:func:`eos_ids` are the tokenization and stopping rules it shares with the held-out loss and
with ``qeu_utils.sharing.chat``, so every caller sees a prompt as training showed it.
"""

from __future__ import annotations

from qeu_utils.core.log import progress as progress_bar
from qeu_utils.core.records import validate
from qeu_utils.model.prompting import cut_at_stop, render, resolve_template, stop_strings

__all__ = [
    "generate_answers",
    "add_special_tokens",
    "pad_id",
    "eos_ids",
    "check_records",
    "index_batches",
]


# --- input -------------------------------------------------------------------------------


def check_records(records) -> list[dict]:
    """The records as a list; a clear error for an empty list or a record off the schema."""
    records = list(records)
    if not records:
        raise ValueError("no records to evaluate: the records list is empty")
    for i, record in enumerate(records):
        validate(record, where=f"records[{i}]")
    return records


def index_batches(order: list[int], size: int):
    """``order`` cut into consecutive lists of at most ``size`` indices."""
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    for start in range(0, len(order), size):
        yield order[start:start + size]


def add_special_tokens(template: str) -> bool:
    # As TRL tokenizes: a chat-rendered text already holds its special tokens; a plain
    # text prompt gets the tokenizer's usual ones (a BOS for Llama-style tokenizers).
    return template != "chat"


def pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id
    return tokenizer.eos_token_id if pad is None else pad


# --- generation --------------------------------------------------------------------------


def generate_answers(model, tokenizer, records, *, template: str = "auto",
                     max_new_tokens: int = 48, batch_size: int = 8, progress=False,
                     finished: list | None = None) -> list[str]:
    """Greedy answers, one string per record, in the records' order. Prompts are rendered as
    in training, batched with LEFT padding (prompts of similar length together); only the new
    tokens are decoded (special tokens skipped, whitespace and a character cut off at
    ``max_new_tokens`` stripped). ``progress``: a tqdm bar (a string labels it). ``finished``:
    a list to fill with one flag per record, whether its answer ended (an end token or a stop
    string) before ``max_new_tokens``."""
    import torch
    from transformers import GenerationConfig

    records = check_records(records)
    template = resolve_template(tokenizer, template)
    special = add_special_tokens(template)
    prompts = [tokenizer(render(r, tokenizer, template)[0], add_special_tokens=special)
               ["input_ids"] for r in records]
    pad = pad_id(tokenizer)
    eos = eos_ids(model, tokenizer)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=pad, eos_token_id=eos,
                              stop_strings=stop_strings(template) or None)
    answers = [""] * len(records)
    ended = [False] * len(records)
    order = sorted(range(len(records)), key=lambda i: -len(prompts[i]))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in progress_bar(index_batches(order, batch_size), progress,
                                   -(-len(order) // batch_size)):
                width = max(len(prompts[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    seq = prompts[i]
                    ids[row, width - len(seq):] = torch.tensor(seq)
                    mask[row, width - len(seq):] = 1
                out = model.generate(input_ids=ids.to(model.device),
                                     attention_mask=mask.to(model.device),
                                     generation_config=config, tokenizer=tokenizer)
                new = out[:, width:]
                texts = tokenizer.batch_decode(new, skip_special_tokens=True)
                stops = stop_strings(template)
                for row, i in enumerate(batch):
                    ended[i] = (any(int(t) in eos for t in new[row])
                                or any(s in texts[row] for s in stops))
                    # A character cut by max_new_tokens decodes to U+FFFD: drop that stub.
                    answers[i] = cut_at_stop(texts[row], template).rstrip("\ufffd").strip()
    finally:
        model.train(was_training)
    if finished is not None:
        finished[:] = ended
    return answers


def eos_ids(model, tokenizer) -> list[int]:
    """Every id that ends an answer: the model's generation eos ids and the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
