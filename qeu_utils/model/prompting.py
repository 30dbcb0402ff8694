"""How a record is shown to a model: through its chat template, or, for a base model without
one, through a Japanese Alpaca-style template.

Training, evaluation and generation all go through ``prompt_and_completion`` so that the
prompt a model is trained on is exactly the prompt it is evaluated and probed with.
"""

from __future__ import annotations

from qeu_utils.core.records import prompt_text

TEMPLATES = ("auto", "chat", "alpaca")

# The Japanese Alpaca layout used by Japanese instruction-tuning projects (e.g. the
# Japanese Alpaca / Dolly-ja ports); the model answers after "### 応答:".
ALPACA_JA = (
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。"
    "要求を適切に満たす応答を書きなさい。\n\n"
    "### 指示:\n{instruction}\n\n### 入力:\n{input}\n\n### 応答:\n"
)
ALPACA_JA_NO_INPUT = (
    "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n\n"
    "### 指示:\n{instruction}\n\n### 応答:\n"
)


# Where an Alpaca answer ends when the model does not say <eos>: a base model goes on to write
# the next "### 応答:" section itself. Chat templates end on the model's own end token.
ALPACA_STOP = "\n###"


def stop_strings(template: str) -> list[str]:
    """The strings that end an answer besides the end token(s), for ``generate(stop_strings=)``."""
    return [ALPACA_STOP] if template == "alpaca" else []


def cut_at_stop(answer: str, template: str) -> str:
    """``answer`` up to its template's stop string (``generate`` keeps the string itself)."""
    for stop in stop_strings(template):
        answer = answer.split(stop, 1)[0]
    return answer


def resolve_template(tokenizer, template: str = "auto") -> str:
    """``chat`` when the tokenizer has a chat template (and ``auto`` was asked), else ``alpaca``."""
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {', '.join(TEMPLATES)}, got {template!r}")
    if template == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "alpaca"
    if template == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ValueError("template 'chat' was asked, but the tokenizer has no chat template")
    return template


def prompt_and_completion(record: dict, template: str) -> dict:
    """TRL's prompt-completion layout (conversational for ``chat``, plain text for ``alpaca``);
    TRL computes the loss on the completion only."""
    if template == "chat":
        return {
            "prompt": [{"role": "user", "content": prompt_text(record)}],
            "completion": [{"role": "assistant", "content": record["output"]}],
        }
    layout = ALPACA_JA if record["input"] else ALPACA_JA_NO_INPUT
    return {"prompt": layout.format(instruction=record["instruction"], input=record["input"]),
            "completion": record["output"]}


def render(record: dict, tokenizer, template: str) -> tuple[str, str]:
    """``(prompt, completion)`` as the exact strings the model sees; the prompt ends where the
    model starts answering (generation prompt included)."""
    pair = prompt_and_completion(record, template)
    if template == "chat":
        prompt = tokenizer.apply_chat_template(pair["prompt"], add_generation_prompt=True,
                                               tokenize=False)
        full = tokenizer.apply_chat_template(pair["prompt"] + pair["completion"], tokenize=False)
        if not full.startswith(prompt):
            raise ValueError("the chat template renders the prompt differently inside a dialogue")
        return prompt, full[len(prompt):]
    return pair["prompt"], pair["completion"] + (tokenizer.eos_token or "")
