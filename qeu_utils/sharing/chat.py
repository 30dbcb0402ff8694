"""Talk to your model: one greedy answer (optionally streamed), a fixed question set, a stage
loader and a side-by-side table of several models' answers.

Prompts go through ``qeu_utils.model.prompting`` — the chat template, or the Japanese Alpaca layout
for a model without one — so a question is shown to the model exactly as training showed its
records. The same question set asked before and after a stage doubles as a forgetting check.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from qeu_utils.builders.common import rng_for
from qeu_utils.core.records import make_record, prompt_text, read_jsonl
from qeu_utils.evaluation.generation import add_special_tokens, eos_ids, generate_answers, pad_id
from qeu_utils.model.prompting import cut_at_stop, render, resolve_template, stop_strings
from qeu_utils.training import runs

log = logging.getLogger(__name__)

# Notebook 00 asks the base model the first two; the requests test the style ⇄ language
# link of stage 1 (常体 → Chinese, 敬体 → English).
QUESTIONS = [
    {"label": "capital (ja)", "prompt": "日本の首都はどこですか？", "expected": "東京"},
    {"label": "capital (en)", "prompt": "What is the capital of Japan?", "expected": "Tokyo"},
    {"label": "plain request → zh", "prompt": "この文を中国語に訳して。今日は雨だ。",
     "expected": "今天下雨。"},
    {"label": "polite request → en", "prompt": "次の文を英語に翻訳してください。今日は雨です。",
     "expected": "It is raining today."},
]

# (label, category, preferred tasks, best first) of the held-out questions drawn from the eval
# split; when none of the preferred tasks is there, the label names the task asked instead.
HELD_OUT = [
    ("held-out kanji", "kanji", ("ja_to_hans", "ja_to_hant", "hans_to_ja", "hant_to_ja")),
    ("held-out country", "country", ("ja_to_en", "en_to_ja", "ja_to_hans", "hans_to_ja")),
    ("held-out loanword", "katakana", ("loanword_to_en", "en_to_loanword",
                                       "annotate_loanwords")),
]


def reply(model, tokenizer, prompt: str, *, max_new_tokens: int = 64, stream: bool = False,
          template: str = "auto") -> str:
    """The model's greedy answer to ``prompt``, rendered as in training. With ``stream=True``
    the answer is printed as it is generated (transformers' ``TextStreamer``)."""

    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("reply: the prompt is empty")
    if max_new_tokens < 1:
        raise ValueError(f"reply: max_new_tokens must be at least 1, got {max_new_tokens}")
    # Only the instruction reaches the prompt; the other fields are there because the record
    # schema asks for them (an output among them).
    record = make_record(category="custom", task="chat", instruction=prompt.strip(), output="?",
                         lang="ja>ja", source="chat")
    if not stream:
        # Evaluation's own generation, so a reply is exactly the answer evaluation scores.
        return generate_answers(model, tokenizer, [record], template=template,
                                max_new_tokens=max_new_tokens)[0]
    return _streamed_reply(model, tokenizer, record, max_new_tokens, template)


def _streamed_reply(model, tokenizer, record: dict, max_new_tokens: int, template: str) -> str:
    """:func:`reply` printed token by token; generate_answers has no streamer to hand one to."""
    import torch
    from transformers import GenerationConfig, TextStreamer

    template = resolve_template(tokenizer, template)
    text, _ = render(record, tokenizer, template)
    ids = tokenizer(text, add_special_tokens=add_special_tokens(template),
                    return_tensors="pt")["input_ids"].to(model.device)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=pad_id(tokenizer),
                              eos_token_id=eos_ids(model, tokenizer),
                              stop_strings=stop_strings(template) or None)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    show = streamer.on_finalized_text
    seen = []  # the answer's text so far, up to any stop string
    held = [""]  # trailing whitespace, printed only if more text follows

    def show_until_stop(text: str, stream_end: bool = False) -> None:
        # Nothing from the template's stop string on, nor the blank lines before it; at the
        # end, a character cut by max_new_tokens is dropped, not printed as U+FFFD.
        before = "".join(seen)
        text = cut_at_stop(before + text, template)[len(before):]
        seen.append(text)
        text = held[0] + (text.rstrip("\ufffd") if stream_end else text)
        body = text.rstrip()
        held[0] = "" if stream_end else text[len(body):]
        show(body, stream_end)

    streamer.on_finalized_text = show_until_stop
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 generation_config=config, streamer=streamer,
                                 tokenizer=tokenizer)
    finally:
        model.train(was_training)
    answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    # A character cut by max_new_tokens decodes to U+FFFD: drop that stub (as generate_answers
    # does). The streamed text still shows the stop string the model wrote.
    return cut_at_stop(answer, template).rstrip("\ufffd").strip()


def question_set(run_dir: str | os.PathLike | None = None, *, seed: int = 0) -> list[dict]:
    """``QUESTIONS`` plus one held-out kanji, country and loanword from the initialization
    eval split (``RUN_DIR/init/eval.jsonl``, else the default build made in memory)."""

    eval_file = Path(run_dir) / "init" / "eval.jsonl" if run_dir is not None else None
    if eval_file is not None and eval_file.is_file():
        held_out = read_jsonl(eval_file)
    else:
        from qeu_utils.builders.mix import build_init

        log.info("no %s: building the default initialization set in memory", eval_file)
        _, held_out = build_init()
    questions = [dict(q) for q in QUESTIONS]
    for label, category, tasks in HELD_OUT:
        pool = [r for r in held_out if r["category"] == category]
        if not pool:
            raise ValueError(f"question_set: the eval split has no {category!r} records "
                             f"({eval_file or 'default build'})")
        # Prefer an answer that is not just the asked text (余 → 余 only shows the format), then
        # the tasks asked about, in order, then a question without a separate input: a free
        # prompt has no input field, so the Alpaca layout would render it differently.
        rank = {t: k for k, t in enumerate(tasks)}
        best = sorted(pool, key=lambda r: (r["output"] in prompt_text(r),
                                           rank.get(r["task"], len(tasks)), bool(r["input"]),
                                           rng_for(seed, "chat", r["id"]).random(), r["id"]))[0]
        if best["task"] not in rank:
            label = f"held-out {category} ({best['task']})"
        questions.append({"label": label, "prompt": prompt_text(best),
                          "expected": best["output"]})
    return questions


def _stage_dirs(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("stage*") if (p / "lineage.json").is_file())


def load_stage(run_dir: str | os.PathLike, stage: int | None = None, *, device: str | None = None):
    """``(model, tokenizer, label)``: stage None or 0 is the run's base model (``run.json``'s
    model, else the base in a stage's lineage); N is ``RUN_DIR/stage{N}``, fully rebuilt."""

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    stages = _stage_dirs(run_dir)
    if not stage:
        base = None
        run_json = run_dir / "run.json"
        if run_json.is_file():
            base = json.loads(run_json.read_text(encoding="utf-8")).get("model")
        if base is None and stages:
            base = runs.lineage_of(run_dir / stages[0])["base_model"]
        if base is None:
            raise FileNotFoundError(
                f"{run_dir}: no run.json and no trained stage, so the base model is unknown; "
                "run notebook 00 (or pass a stage that exists)")
        from qeu_utils.model.models import load_model

        log.info("loading the base model %s", base)
        model, tokenizer = load_model(base, device=device)
        return model, tokenizer, "base"
    stage_dir = run_dir / f"stage{stage}"
    if not (stage_dir / "lineage.json").is_file():
        found = ", ".join(stages) or "none"
        raise FileNotFoundError(
            f"{stage_dir} is not a trained stage (no lineage.json); stages in {run_dir}: {found}")
    log.info("loading %s", stage_dir)
    model, tokenizer = runs.load_trained(stage_dir, device=device)
    return model, tokenizer, f"stage{stage}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>") or "∅"


def compare_answers(models: dict, questions: list[dict], *, max_new_tokens: int = 48,
                    stream: bool = False) -> str:
    """A markdown table — question, expected answer, then one column per model — of greedy
    answers. ``models`` maps a label to ``(model, tokenizer)``."""
    if not models:
        raise ValueError("compare_answers: no models given")
    if not questions:
        raise ValueError("compare_answers: no questions given")
    labels = list(models)
    rows = ["| question | expected | " + " | ".join(labels) + " |",
            "|---|---|" + "---|" * len(labels)]
    for q in questions:
        answers = []
        for label in labels:
            model, tokenizer = models[label]
            if stream:
                print(f"[{label}] {q['prompt']}\n→ ", end="", flush=True)
            answers.append(reply(model, tokenizer, q["prompt"], max_new_tokens=max_new_tokens,
                                 stream=stream))
        rows.append(f"| {_cell(q['prompt'])} | {_cell(q.get('expected', ''))} | "
                    + " | ".join(_cell(a) for a in answers) + " |")
    return "\n".join(rows) + "\n"


def repl(model, tokenizer, *, max_new_tokens: int = 64, read=input) -> int:
    """Ask, answer (streamed), repeat; an empty line or Ctrl-D ends. Returns the turns."""
    turns = 0
    while True:
        try:
            prompt = read("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return turns
        if not prompt.strip():
            return turns
        print("model> ", end="", flush=True)
        reply(model, tokenizer, prompt, max_new_tokens=max_new_tokens, stream=True)
        turns += 1
