"""Readers of the text this project wrote (``qeu_utils/data/sources/``): the trilingual
sentences, the dishes, the loanword list and the kanji overrides, each checked row by row; a
malformed row is a ``SourceError`` naming the file and line. The builders and the analysis
read their sources from here, not from each other.
"""

from __future__ import annotations

import csv
from pathlib import Path

from qeu_utils.core.resources import SourceError, source_path
from qeu_utils.text.style_convert import to_polite
from qeu_utils.text.style_detect import Style, detect_style


def read_tsv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    """Rows of a UTF-8 TSV with exactly ``columns`` as its header, as ``(line, row)`` pairs."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise SourceError(f"{path}: the file is empty")
        if tuple(header) != columns:
            raise SourceError(f"{path}:1: header is {header}, expected {list(columns)}")
        rows = []
        for line, values in enumerate(reader, start=2):
            if len(values) != len(columns):
                raise SourceError(
                    f"{path}:{line}: {len(values)} fields, expected {len(columns)} "
                    f"({', '.join(columns)})"
                )
            row = dict(zip(columns, (v.strip() for v in values), strict=True))
            empty = [c for c, v in row.items() if not v]
            if empty:
                raise SourceError(f"{path}:{line}: empty field(s) {', '.join(empty)}")
            rows.append((line, row))
    if not rows:
        raise SourceError(f"{path}: no rows after the header")
    return rows


# --- the project's sources ---------------------------------------------------------------

TRILINGUAL_COLUMNS = ("plain", "polite", "zh", "en", "topic", "grammar")
DISH_COLUMNS = ("ja", "en", "zh_hans", "zh_hant", "country")


def read_trilingual(path: Path | None = None) -> list[dict]:
    """Rows of ``trilingual.tsv``, each checked against ``qeu_utils.text.style_detect``: the plain
    column must detect as plain, the polite one as polite, and where the converter supports the
    form (it changes the sentence), ``to_polite(plain)`` must equal the polite column."""

    path = path or source_path("trilingual.tsv")
    rows = []
    for line, row in read_tsv(path, TRILINGUAL_COLUMNS):
        for column, expected in (("plain", Style.PLAIN), ("polite", Style.POLITE)):
            found = detect_style(row[column])
            if found != expected:
                raise SourceError(
                    f"{path}:{line}: column {column!r} {row[column]!r} detects as "
                    f"{found.value!r}, expected {expected.value!r}"
                )
        converted = to_polite(row["plain"])
        if converted != row["plain"] and converted != row["polite"]:
            raise SourceError(
                f"{path}:{line}: to_polite({row['plain']!r}) gives {converted!r}, but the "
                f"polite column says {row['polite']!r}"
            )
        rows.append(row)
    return rows


def read_dishes(path: Path | None = None) -> list[dict]:
    """Rows of ``dishes.tsv`` with ``country_ja``, the CLDR Japanese name of the origin."""
    from qeu_utils.text.countries import country

    path = path or source_path("dishes.tsv")
    rows = []
    for line, row in read_tsv(path, DISH_COLUMNS):
        try:
            row["country_ja"] = country(row["country"]).ja
        except KeyError as err:
            raise SourceError(f"{path}:{line}: unknown country code {row['country']!r}") from err
        rows.append(row)
    return rows


def read_loanword_list(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """katakana → (english, origin) from ``loanwords_en.tsv`` (``#`` lines are comments)."""
    path = path or source_path("loanwords_en.tsv")
    table: dict[str, tuple[str, str]] = {}
    header_seen = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if not header_seen:  # the column names
            header_seen = True
            continue
        if len(fields) != 4 or not all(f.strip() for f in fields):
            raise SourceError(f"{path}:{n}: expected 4 non-empty tab-separated fields")
        katakana, english, origin, _source_word = (f.strip() for f in fields)
        table[katakana] = (english, origin)
    if not table:
        raise SourceError(f"{path}: no rows after the header")
    return table


def _commented_tsv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` of a TSV whose ``#`` lines are comments and whose first other line
    is the header ``columns``; every row must have that many non-empty fields."""
    rows, header_seen = [], False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if not header_seen:
            if tuple(fields) != columns:
                raise SourceError(f"{path}:{n}: header is {fields}, expected {list(columns)}")
            header_seen = True
            continue
        if len(fields) != len(columns) or not all(fields):
            raise SourceError(f"{path}:{n}: expected {len(columns)} non-empty tab-separated "
                              f"fields ({', '.join(columns)})")
        rows.append((n, fields))
    if not rows:
        raise SourceError(f"{path}: no rows after the header")
    return rows


KANJI_OVERRIDE_COLUMNS = ("kanji", "traditional", "simplified", "reason")


def read_kanji_overrides(path: Path | None = None) -> dict[str, tuple[tuple[str, ...], ...]]:
    """kanji → (Traditional forms, Simplified forms) from ``kanji_overrides.tsv``: the
    characters whose Chinese forms the project sets itself instead of OpenCC."""
    path = path or source_path("kanji_overrides.tsv")
    table = {}
    for n, (kanji, traditional, simplified, _reason) in _commented_tsv(
            path, KANJI_OVERRIDE_COLUMNS):
        forms = (kanji, *traditional.split(), *simplified.split())
        if len(kanji) != 1 or any(len(f) != 1 for f in forms):
            raise SourceError(f"{path}:{n}: every form must be one character, got {forms}")
        if kanji in table:
            raise SourceError(f"{path}:{n}: {kanji} is listed twice")
        table[kanji] = (tuple(traditional.split()), tuple(simplified.split()))
    return table


def loanword_texts(sentences: list[dict] | None = None) -> list[str]:
    """The real text loanwords are harvested from, in a fixed order: the trilingual
    sentences, the dish names, the project's loanword list."""
    sentences = read_trilingual() if sentences is None else sentences
    texts = [row[c] for row in sentences for c in ("plain", "polite")]
    texts += [dish["ja"] for dish in read_dishes()]
    texts += list(read_loanword_list())
    return texts
