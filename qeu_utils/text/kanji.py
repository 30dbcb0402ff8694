"""Single kanji across scripts: Japanese ⇄ Traditional Chinese ⇄ Simplified Chinese.

Everything comes from OpenCC (the ``opencc`` PyPI package) and the dictionaries it ships:

- ``JPShinjitaiCharacters`` (the character table of the ``jp2t`` config) lists, for each
  Japanese new form (shinjitai), its old forms (kyūjitai) in OpenCC's order of preference.
- ``STCharacters``, ``STPhrases``, ``TSCharacters``, ``TSPhrases`` (the tables of ``s2t`` and
  ``t2s``) and ``TWVariants`` (of ``s2tw``) tell which characters Chinese writes in Traditional
  script, and which Traditional characters Simplified script merged into one.
- The ``t2s`` converter gives the Simplified form; ``s2tw`` picks among glyph variants.

The package ships only compiled ``.ocd2`` dictionaries, so they are dumped to text once per
process with ``opencc_dict``, OpenCC's own dictionary tool bundled in the same package (a
``.txt`` source next to the ``.ocd2`` file is read directly where an install has one).

How a character is resolved (see :func:`variants`):

1. *Candidates*: the kyūjitai ``jp2t`` offers, in OpenCC's order, followed by the Japanese form
   itself when Chinese writes it in Traditional script too (芸, 欠, 台, 研, …). A character
   ``jp2t`` leaves alone is its own only candidate.
2. *Attested* candidates are the ones Traditional Chinese writes (see
   :func:`_attested_traditional`). Some forms ``jp2t`` offers are Japanese-only glyphs, old
   (硏, 槪) or new (値): they stay in ``candidates`` but are never chosen.
3. Two attested candidates are *the same Chinese character* (glyph variants such as 濕/溼,
   眞/真) when ``t2s`` maps both to one Simplified character and ``STCharacters`` does not list
   both as separate Traditional readings of it; otherwise they are different words (臺 and 台
   both simplify to 台, but ``STCharacters`` lists them apart).
4. ``ambiguous`` is true when the attested candidates are two or more different words:
   弁 (辨 辯 瓣 弁), 芸 (藝, or the herb 芸), 欠 (缺, or 欠 "owe"), 台 (臺 or 台),
   煙 (煙 or 菸). Several glyphs of one word (湿 → 濕 溼) are not ambiguous.
5. ``traditional`` is the first attested candidate in OpenCC's order, written with the glyph
   Taiwan's standard uses (``s2tw``) when that glyph is among the candidates: 真 not 眞,
   查 not 査, 值 not 値. With no attested candidate it is the ``jp2t`` default. For an
   ambiguous character it is therefore OpenCC's default word (芸 → 藝); ``candidates`` has the
   others. ``simplified`` is ``t2s`` of ``traditional``; ``simplified_forms`` is ``t2s`` of
   every candidate for an ambiguous character (弁 → 辨 辩 瓣 弁), else ``simplified`` alone.

Exceptions: OpenCC's character tables get a few characters wrong — 予 comes out as 豫 though
予定 is 預定/预定, 鉱 as 鑛 (left unsimplified) though 鉱山 is 礦山/矿山, and Japanese-only
glyphs (娯, 喩, 窓) come back unchanged. The project's table
``qeu_utils/data/sources/kanji_overrides.tsv`` gives their Traditional and Simplified forms,
with the reason for each row; it replaces steps 1–5 for those characters.
"""

import functools
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import kanji_lists
import opencc

JOYO_COUNT = 2136


@dataclass(frozen=True)
class KanjiVariants:
    """One character in Japanese, Traditional and Simplified script.

    ``candidates`` holds every Traditional form considered, the chosen ``traditional`` among
    them; ``ambiguous`` says that they are different Chinese words, not just glyph variants.
    ``simplified_forms`` holds the Simplified forms an answer names, ``simplified`` first.
    """

    japanese: str
    traditional: str
    simplified: str
    candidates: tuple[str, ...]
    ambiguous: bool
    simplified_forms: tuple[str, ...]


def _share_dir() -> Path:
    return Path(opencc.__file__).parent / "clib" / "share" / "opencc"


def _dictionary_tool() -> str | None:
    bundled = Path(opencc.__file__).parent / "clib" / "bin"
    for name in ("opencc_dict", "opencc_dict.exe"):
        if (bundled / name).is_file():
            return str(bundled / name)
    return shutil.which("opencc_dict")


@functools.cache
def _dictionary(name: str) -> dict[str, tuple[str, ...]]:
    """An OpenCC dictionary as {key: values}, read from its text source or its .ocd2 file."""
    share = _share_dir()
    text_file = share / f"{name}.txt"
    if text_file.is_file():
        text = text_file.read_text(encoding="utf-8")
    else:
        compiled = share / f"{name}.ocd2"
        tool = _dictionary_tool()
        if not compiled.is_file() or tool is None:
            raise RuntimeError(
                f"cannot read OpenCC dictionary {name!r}: looked for {text_file} and for "
                f"{compiled} plus the opencc_dict tool (found tool: {tool})"
            )
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{name}.txt"
            subprocess.run(
                [tool, "-i", str(compiled), "-o", str(out), "-f", "ocd2", "-t", "text"],
                check=True,
                capture_output=True,
            )
            text = out.read_text(encoding="utf-8")
    table = {}
    for line in text.splitlines():
        if line.strip():
            key, values = line.split("\t", 1)
            table[key] = tuple(values.split())
    return table


@functools.cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def _in_big5(char: str) -> bool:
    try:
        char.encode("big5")
    except UnicodeEncodeError:
        return False
    return True


@functools.cache
def _attested_traditional() -> frozenset[str]:
    """Characters that Traditional Chinese text writes, according to OpenCC's dictionaries.

    The character tables (OpenCC's and Taiwan's variants) name Traditional characters outright.
    Characters that are the same in both scripts (予, 欠, 研) appear only inside phrases; the
    phrase tables also carry some Japanese glyphs in names (査, 鋭), so a phrase-only character
    must also be in Big5, the Traditional Chinese character set, and must not be a form that
    ``STCharacters`` always replaces (恒 → 恆).
    """
    characters = _dictionary("STCharacters")
    named = set(_dictionary("TSCharacters"))
    # TWVariants holds Taiwan's standard glyphs where they differ from OpenCC's (群 for 羣).
    for table in (characters, _dictionary("TWVariants")):
        for values in table.values():
            named.update(values)
    in_phrases: set[str] = set()
    for key in _dictionary("TSPhrases"):
        in_phrases.update(key)
    for values in _dictionary("STPhrases").values():
        for value in values:
            in_phrases.update(value)
    simplified_only = {key for key, values in characters.items() if key not in values}
    unchanged = {c for c in in_phrases - simplified_only if _in_big5(c)}
    return frozenset(named | unchanged)


def _check(char: object) -> str:
    if not isinstance(char, str):
        raise TypeError(f"expected a str holding one CJK ideograph, got {type(char).__name__}")
    if len(char) != 1:
        raise ValueError(f"expected exactly one CJK ideograph, got {char!r} ({len(char)} chars)")
    # Python's unicodedata knows CJK blocks up to its Unicode version; newer ones are rejected.
    if not unicodedata.name(char, "").startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH")):
        raise ValueError(f"expected a CJK ideograph, got {char!r} (U+{ord(char):04X})")
    # NFC folds compatibility ideographs (U+F900…) into their unified twins, as OpenCC does.
    return unicodedata.normalize("NFC", char)


def _same_character(a: str, b: str) -> bool:
    """Whether two Traditional forms are glyph variants of one Chinese character."""
    t2s = _converter("t2s")
    simplified = t2s.convert(a)
    if simplified != t2s.convert(b):
        return False
    merged = _dictionary("STCharacters").get(simplified, ())
    return not (a in merged and b in merged)


@functools.cache
def _overrides() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    from qeu_utils.text.sources import read_kanji_overrides

    return read_kanji_overrides()


@functools.cache
def variants(char: str) -> KanjiVariants:
    """The Japanese, Traditional and Simplified forms of one kanji (see the module docstring)."""
    japanese = _check(char)
    if japanese in _overrides():
        traditional, simplified = _overrides()[japanese]
        return KanjiVariants(
            japanese=japanese,
            traditional=traditional[0],
            simplified=simplified[0],
            candidates=traditional,
            ambiguous=len(traditional) > 1,
            simplified_forms=simplified,
        )
    attested = _attested_traditional()
    candidates = _dictionary("JPShinjitaiCharacters").get(japanese, (japanese,))
    if japanese not in candidates and japanese in attested:
        candidates = (*candidates, japanese)

    distinct: list[str] = []
    for candidate in candidates:
        if candidate in attested and not any(_same_character(candidate, d) for d in distinct):
            distinct.append(candidate)
    if distinct:
        # Of the glyphs of the first Chinese character, take the one Taiwan's standard writes
        # (s2tw): 真 not 眞, 查 not 査, 銳 not 鋭; OpenCC's own order decides otherwise.
        first = distinct[0]
        taiwan = _converter("s2tw").convert(_converter("t2s").convert(first))
        glyphs = [c for c in candidates if c in attested and _same_character(c, first)]
        traditional = taiwan if taiwan in glyphs else first
    else:
        traditional = _converter("jp2t").convert(japanese)
    simplified = _converter("t2s").convert(traditional)
    ambiguous = len(distinct) > 1
    forms = [_converter("t2s").convert(t) for t in candidates] if ambiguous else [simplified]
    return KanjiVariants(
        japanese=japanese,
        traditional=traditional,
        simplified=simplified,
        candidates=candidates,
        ambiguous=ambiguous,
        simplified_forms=tuple(dict.fromkeys(forms)),
    )


def differs(char: str) -> bool:
    """Whether the Japanese, Traditional and Simplified forms are not all the same."""
    v = variants(char)
    return len({v.japanese, v.traditional, v.simplified}) > 1


@functools.cache
def _joyo() -> tuple[str, ...]:
    # kanji_lists stores the list as a set; its source literal is in code point order, so
    # sorting restores the package's order (and keeps it stable across hash seeds).
    kanji = tuple(sorted(kanji_lists.JOYO))
    assert len(kanji) == JOYO_COUNT, f"expected {JOYO_COUNT} Jōyō kanji, got {len(kanji)}"
    return kanji


def joyo_kanji() -> list[str]:
    """The 2,136 Jōyō kanji (2010 list, from the kanji-lists package), in code point order."""
    return list(_joyo())


# An answer naming several forms ends with a note that the meaning decides, in the register of
# the instruction it answers: the curriculum pairs plain Japanese with Chinese and polite
# Japanese with English, so 「次の日本の漢字を簡体字に直して。」 gets the plain note
# (「辨・辩・瓣・弁（意味によって字が異なる）」) and a polite question the polite one.
SEVERAL = {"plain": "（意味によって字が異なる）", "polite": "（意味によって字が異なります）"}
_NOTE = "（[^（）]*）$"


def kanji_answer(forms: list[str], style: str = "plain") -> str:
    """One form as is; several joined with ・ and the note, in ``style`` (plain or polite),
    that the meaning decides."""
    if style not in SEVERAL:
        raise ValueError(f"style must be one of {', '.join(SEVERAL)}, got {style!r}")
    unique = list(dict.fromkeys(forms))
    return unique[0] if len(unique) == 1 else "・".join(unique) + SEVERAL[style]


def names_several(answer: str) -> bool:
    """Whether a kanji answer lists several forms (ends with either note)."""
    return answer.strip().endswith(tuple(SEVERAL.values()))


def answer_forms(answer: str) -> list[str]:
    """The forms a kanji answer names: 「辨・辯・瓣・弁（…）」 → 辨, 辯, 瓣, 弁; 「万」 → 万. The
    note's own characters (意, 味, 字, 異) are not forms, in either register."""
    return [f for f in re.sub(_NOTE, "", answer.strip()).split("・") if f]
