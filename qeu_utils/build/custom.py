"""Stage 3: your own data. Articles become prompts — write the opening from the title, then
each paragraph from the one before — as ``custom`` records ready for ``train``."""

from __future__ import annotations

import itertools
import re

from qeu_utils.records import make_record

SENTENCES_PER_CHUNK = 3


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; a text with none is cut every few sentences."""
    from qeu_utils.style import split_sentences

    parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(parts) > 1:
        return parts
    sentences = split_sentences(text.strip())
    return ["".join(sentences[k:k + SENTENCES_PER_CHUNK])
            for k in range(0, len(sentences), SENTENCES_PER_CHUNK)]


def article_records(text: str, *, title: str, source: str = "user") -> list[dict]:
    """Records from one article: ``write_opening`` (title → first paragraph) and
    ``continue_article`` (previous paragraph → next one)."""
    from qeu_utils.style import detect_style

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
