"""What the knowledge gate asks: items whose answer differs from the question, their
distractors, the few-shot demonstrations, and the three prompts each item is scored under.

Every item comes from the project's real sources (:mod:`qeu_utils.analysis.items`): Jōyō kanji
through OpenCC (Japanese → Simplified, Japanese → Traditional, each only where the forms
differ), the 195 CLDR countries (Japanese ⇄ Simplified Chinese, Japanese → English) and the
harvested loanwords (katakana → English). An item whose answer equals its question is left
out: copying would already be right, and the gate could not tell knowing from echoing.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from qeu_utils.analysis.items import country_items, loanword_items, seeded_sample

__all__ = [
    "TASKS",
    "PROMPTS",
    "N_DEMOS",
    "GateItem",
    "Task",
    "gate_items",
    "prompt_parts",
    "candidate_text",
]

N_DEMOS = 4
PROMPTS = ("zh", "ja", "fewshot")


@dataclass(frozen=True)
class Task:
    """One direction of one kind of item, with its Chinese and Japanese prompts. ``zh`` and
    ``ja`` are ``(head, tail)``: the head is the same for every item (computed once and
    shared), the tail holds the question ``{q}`` and ends where the answer starts, inside an
    opening quote; the answer is closed by the matching quote."""

    name: str
    kind: str
    zh: tuple[str, str]
    ja: tuple[str, str]


# Written as a speaker of each language would ask, so the only difference between the two is
# the language of the frame around the same question.
TASKS = {t.name: t for t in [
    Task("kanji_ja_hans", "kanji",
         ("日本汉字", "“{q}”对应的简体字是“"), ("日本の漢字", "「{q}」に対応する簡体字は「")),
    Task("kanji_ja_hant", "kanji",
         ("日本汉字", "“{q}”对应的繁体字是“"), ("日本の漢字", "「{q}」に対応する繁体字は「")),
    Task("country_ja_zh", "country",
         ("日语国名", "“{q}”用中文写作“"), ("国名", "「{q}」を中国語で書くと「")),
    Task("country_zh_ja", "country",
         ("中文国名", "“{q}”用日语写作“"), ("中国語の国名", "「{q}」を日本語で書くと「")),
    Task("country_ja_en", "country",
         ("日语国名", "“{q}”的英文名是“"), ("国名", "「{q}」の英語名は「")),
    Task("loanword_ja_en", "loanword",
         ("日语外来语", "“{q}”来自的英语单词是“"), ("外来語", "「{q}」のもとになった英語は「")),
]}
_CLOSE = {"zh": "”", "ja": "」", "fewshot": "\n"}


@dataclass(frozen=True)
class GateItem:
    """One question: ``answer`` is right, ``question`` itself is the copy, ``distractor`` is
    another item's answer of the same task (differing from both)."""

    task: str
    kind: str
    question: str
    answer: str
    distractor: str

    def as_dict(self) -> dict:
        return asdict(self)


def prompt_parts(task: str, prompt: str, question: str,
                 demos: list[tuple[str, str]]) -> tuple[str, str]:
    """``(head, tail)`` of one prompt: ``zh``, ``ja`` or ``fewshot`` (``demos`` as
    ``q → a`` lines, the same for every item of the task, then ``question →``)."""
    if prompt == "fewshot":
        if not demos:
            raise ValueError(f"no few-shot demonstrations for task {task!r}")
        return "".join(f"{q} → {a}\n" for q, a in demos), f"{question} →"
    if prompt not in ("zh", "ja"):
        raise ValueError(f"prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
    head, tail = getattr(TASKS[task], prompt)
    return head, tail.format(q=question)


def candidate_text(prompt: str, form: str) -> str:
    """A form as the answer it is scored as: closed by the quote (or line end) that tells the
    model the answer is over, so a form's prefix does not count as the form. In few-shot the
    space after the arrow belongs to the answer, where byte-level and SentencePiece
    tokenizers both put it."""
    return (" " if prompt == "fewshot" else "") + form + _CLOSE[prompt]


def _kanji_pool() -> list[tuple[str, str, str]]:
    """``(japanese, simplified, traditional)`` of every unambiguous Jōyō kanji whose Simplified
    or Traditional form differs from the Japanese one, in code point order."""
    from qeu_utils.text.kanji import joyo_kanji, variants

    rows = []
    for char in joyo_kanji():
        v = variants(char)
        if not v.ambiguous and (v.simplified != char or v.traditional != char):
            rows.append((char, v.simplified, v.traditional))
    return rows


def _nearest_same_lead_byte(answer: str, question: str, answers: list[str]) -> str:
    """The answer form closest in code point to ``answer`` with the same first UTF-8 byte
    (CJK code points are ordered by radical, then strokes, so a neighbour is a similar-looking
    character whose first byte-level token is often shared); any nearest form when none
    shares the byte. Never ``answer`` or ``question``."""
    others = sorted({a for a in answers if a not in (answer, question)})
    if not others:
        raise ValueError(f"no distractor for {question!r} → {answer!r}: only one answer form")
    lead = answer.encode("utf-8")[0]
    same = [a for a in others if a.encode("utf-8")[0] == lead] or others
    return min(same, key=lambda a: (abs(ord(a[0]) - ord(answer[0])), a))


def _random_other(seed: int, task: str, answer: str, question: str, answers: list[str]) -> str:
    """Another answer of the task, drawn with a generator seeded by the item itself, so the
    draw does not depend on which other items were sampled."""
    others = sorted({a for a in answers if a not in (answer, question)})
    if not others:
        raise ValueError(f"no distractor for {question!r} → {answer!r}: only one answer form")
    return random.Random(f"{seed}:{task}:{question}").choice(others)


def _check_size(name: str, n: int | None) -> None:
    if n is not None and n < 0:
        raise ValueError(f"{name} must be 0 or more (or None for all), got {n}")


def gate_items(n_kanji: int | None = 300, n_countries: int | None = 100,
               n_loanwords: int | None = 100, seed: int = 0
               ) -> tuple[list[GateItem], dict[str, list[tuple[str, str]]]]:
    """``(items, demos)``: the scored items in a stable order, and per task the
    ``N_DEMOS`` few-shot demonstrations ``(question, answer)``.

    Demonstrations are drawn first (seeded) from items that differ in every task of their kind
    and are then kept out of the scored set of *every* task of that kind (a demonstration
    鉄 → 铁 would otherwise teach the 鉄 → 鐵 item). ``n_kanji`` characters are sampled from the
    rest (each gives one item per direction in which it differs), ``n_countries`` countries
    (None: all) and ``n_loanwords`` loanwords. 0 leaves a kind out. Distractors: for a kanji,
    the nearest answer form with the same lead UTF-8 byte (:func:`_nearest_same_lead_byte`);
    for a country or loanword, another answer of the same task drawn with the seed. They are
    drawn from the whole pool, so the sample size does not change an item's distractor."""
    for name, n in (("n_kanji", n_kanji), ("n_countries", n_countries),
                    ("n_loanwords", n_loanwords)):
        _check_size(name, n)
    items: list[GateItem] = []
    demos: dict[str, list[tuple[str, str]]] = {}
    rng = random.Random(seed)

    if n_kanji != 0:
        pool = _kanji_pool()
        both = [r for r in pool if r[0] != r[1] and r[0] != r[2]]
        demo_rows = rng.sample(both, N_DEMOS)
        demos["kanji_ja_hans"] = [(r[0], r[1]) for r in demo_rows]
        demos["kanji_ja_hant"] = [(r[0], r[2]) for r in demo_rows]
        rest = seeded_sample([r for r in pool if r not in demo_rows], n_kanji, seed)
        for task, col in (("kanji_ja_hans", 1), ("kanji_ja_hant", 2)):
            answers = [r[col] for r in pool if r[col] != r[0]]
            for row in rest:
                if row[col] != row[0]:
                    items.append(GateItem(task, "kanji", row[0], row[col],
                                          _nearest_same_lead_byte(row[col], row[0], answers)))

    if n_countries != 0:
        pool = country_items()  # (ja, zh_hans, zh_hant, en)
        directions = (("country_ja_zh", 0, 1), ("country_zh_ja", 1, 0), ("country_ja_en", 0, 3))
        usable = [r for r in pool if all(r[q] != r[a] for _, q, a in directions)]
        demo_rows = rng.sample(usable, N_DEMOS)
        rest = seeded_sample([r for r in pool if r not in demo_rows], n_countries, seed)
        for task, q, a in directions:
            demos[task] = [(r[q], r[a]) for r in demo_rows]
            answers = [r[a] for r in pool]
            items += [GateItem(task, "country", r[q], r[a],
                               _random_other(seed, task, r[a], r[q], answers))
                      for r in rest if r[q] != r[a]]

    if n_loanwords != 0:
        pool = [r for r in loanword_items() if r[0] != r[1]]
        demo_rows = rng.sample(pool, N_DEMOS)
        demos["loanword_ja_en"] = list(demo_rows)
        rest = seeded_sample([r for r in pool if r not in demo_rows], n_loanwords, seed)
        answers = [r[1] for r in pool]
        items += [GateItem("loanword_ja_en", "loanword", q, a,
                           _random_other(seed, "loanword_ja_en", a, q, answers))
                  for q, a in rest]

    if not items:
        raise ValueError("the gate has no items to score: n_kanji, n_countries and n_loanwords "
                         "are all 0 (give at least one kind a positive size, or None for all)")
    return items, demos
