"""Stage 3: your own data. Articles become prompts — write the opening from the title, then
each paragraph from the one before — as ``custom`` records ready for ``train``."""

from __future__ import annotations

import itertools
import re

from qeu_utils.core.records import make_record
from qeu_utils.core.resources import source_path
from qeu_utils.text.sentences import split_sentences
from qeu_utils.text.style_convert import to_plain, to_polite
from qeu_utils.text.style_detect import detect_style

SENTENCES_PER_CHUNK = 3


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; a text with none is cut every few sentences."""

    parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(parts) > 1:
        return parts
    sentences = split_sentences(text.strip())
    return ["".join(sentences[k:k + SENTENCES_PER_CHUNK])
            for k in range(0, len(sentences), SENTENCES_PER_CHUNK)]


def article_records(text: str, *, title: str, source: str = "user") -> list[dict]:
    """Records from one article: ``write_opening`` (title → first paragraph) and
    ``continue_article`` (previous paragraph → next one)."""

    if not title.strip():
        raise ValueError("article_records: the title is empty")
    chunks = paragraphs(text)
    if not chunks:
        raise ValueError(f"article_records: the article {title!r} has no text")

    def style_of(s: str) -> str:
        found = detect_style(s).value
        return found if found in ("plain", "polite") else ""

    records = [make_record(category="custom", task="write_opening",
                           instruction=f"「{title}」という記事の書き出しを書いてください。",
                           output=chunks[0], lang="ja>ja", style=style_of(chunks[0]),
                           source=source)]
    for previous, following in itertools.pairwise(chunks):
        records.append(make_record(
            category="custom", task="continue_article",
            instruction=f"「{title}」という記事の続きを書いてください。",
            input=previous, output=following, lang="ja>ja", style=style_of(following),
            source=source))
    return records


# --- question and answer from a structured article ------------------------------------------

ARTICLE_SAMPLE = "article_sample_ja.md"  # in qeu_utils/data/sources/: notebook 09's example
QA_STYLES = ("polite", "plain")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*(?:(?P<bullet>[-*•]\s+|・\s*)|(?P<number>\d+)[.．)）]\s*)(?P<text>\S.*)$")
_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ff]")
# The question and the list lead-in in each style (敬体 asks politely, 常体 plainly).
_ASK = {"polite": "「{title}」について、{heading}を教えてください。",
        "plain": "「{title}」について、{heading}を教えて。"}
_OVERVIEW = {"polite": "「{title}」の概要を教えてください。",
             "plain": "「{title}」の概要を教えて。"}
_LIST_LEAD = {"polite": "{heading}は次のとおりです。", "plain": "{heading}は次のとおりだ。"}


def sample_article() -> str:
    """The project's sample structured article (おにぎりの作り方), for notebook 09."""

    return source_path(ARTICLE_SAMPLE).read_text(encoding="utf-8")


def sections(text: str) -> list[dict]:
    """Split a Markdown-ish article into ``{"heading", "level", "blocks"}`` sections; a block
    is ``("paragraph", text)`` or ``("list", [items], ordered)``. Text before the first
    heading is a section whose heading is None."""
    found = [{"heading": None, "level": 0, "blocks": []}]
    paragraph: list[str] = []

    def flush():
        if paragraph:
            found[-1]["blocks"].append(("paragraph", "".join(paragraph)))
            paragraph.clear()

    for line in text.splitlines():
        heading, item = _HEADING.match(line), _ITEM.match(line)
        if heading:
            flush()
            found.append({"heading": heading.group(2), "level": len(heading.group(1)),
                          "blocks": []})
        elif item:
            flush()
            ordered = item.group("number") is not None
            blocks = found[-1]["blocks"]
            if not (blocks and blocks[-1][0] == "list" and blocks[-1][2] == ordered):
                blocks.append(("list", [], ordered))
            blocks[-1][1].append(item.group("text").strip())
        elif line.strip():
            # Japanese wraps lines without spaces: a wrapped line continues the paragraph.
            paragraph.append(line.strip())
        else:
            flush()
    flush()
    return [s for s in found if s["blocks"] or s["heading"] is not None]


def _in_style(text: str, style: str) -> str:
    return (to_polite if style == "polite" else to_plain)(text)


def _answer(section: dict, style: str) -> str:
    parts = []
    for n, block in enumerate(section["blocks"]):
        if block[0] == "paragraph":
            parts.append(_in_style(block[1], style))
            continue
        _, items, ordered = block
        if n == 0 and section["heading"]:
            # A list alone is no sentence; a lead-in line says what it lists, in the style.
            parts.append(_LIST_LEAD[style].format(heading=section["heading"]))
        parts.append("\n".join((f"{k}. " if ordered else "・") + _in_style(item, style)
                               for k, item in enumerate(items, start=1)))
    return "\n".join(parts)


def article_qa_records(text: str, *, title: str, style: str = "polite",
                       source: str = "user") -> list[dict]:
    """Question-answer records from a structured article: each heading becomes a question
    (the text before the first ``##`` an overview question), its section the answer; lists
    stay lists. Answers are rewritten in ``style`` — ``polite`` (敬体) or ``plain`` (常体) —
    sentence by sentence."""
    where = f"article_qa_records({title!r})"
    if style not in QA_STYLES:
        raise ValueError(f"{where}: style must be 'polite' or 'plain', got {style!r}")
    if not title.strip():
        raise ValueError("article_qa_records: the title is empty")
    if not text.strip():
        raise ValueError(f"{where}: the article is empty")
    if not _KANA.search(text):
        raise ValueError(f"{where}: the article does not look like Japanese (no hiragana or "
                         "katakana in it); stage 3 articles are Japanese text")
    found = sections(text)
    if not any(s["heading"] for s in found):
        raise ValueError(f"{where}: the article has no headings ('# …' or '## …' lines), so "
                         "there is nothing to ask; add headings, or use article_records for "
                         "plain text")
    records = []
    for section in found:
        if not section["blocks"]:
            continue  # a heading directly followed by a sub-heading
        heading = section["heading"]
        if heading is None or section["level"] == 1:
            question = _OVERVIEW[style].format(title=title)
        elif heading.endswith(("？", "?")):
            question = heading
        else:
            question = _ASK[style].format(title=title, heading=heading)
        only_list = all(b[0] == "list" for b in section["blocks"])
        records.append(make_record(
            category="custom", task="article_list" if only_list else "article_qa",
            instruction=question, output=_answer(section, style), lang="ja>ja", style=style,
            source=source))
    return records
