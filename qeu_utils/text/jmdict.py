"""JMdict (EDRDG, CC BY-SA 4.0) through jamdict-data's SQLite file: the English meaning and
source language of a katakana word, read-only, one connection per process."""

from __future__ import annotations

import os
import re
import sqlite3
from functools import lru_cache
from pathlib import Path

# ISO 639-2 (as JMdict writes it) → ISO 639-1, for the languages JMdict's lsource uses that
# have a two-letter code; the rest (ain, grc, haw, ...) are returned as written.
_ISO639_1 = dict(
    pair.split(":")
    for pair in (
        "afr:af amh:am ara:ar bre:br bul:bg bur:my chi:zh cze:cs dan:da dut:nl eng:en epo:eo "
        "est:et fin:fi fre:fr geo:ka ger:de glg:gl gre:el heb:he hin:hi hun:hu ice:is ind:id "
        "ita:it khm:km kor:ko kur:ku lat:la mal:ml mao:mi may:ms mon:mn nor:no per:fa pol:pl "
        "por:pt rum:ro rus:ru san:sa scr:hr slo:sk slv:sl som:so spa:es swa:sw swe:sv tah:ty "
        "tam:ta tha:th tib:bo tur:tr urd:ur vie:vi yid:yi"
    ).split()
)



def _jmdict() -> sqlite3.Connection | None:
    # A SQLite connection must not cross fork() (datasets.map(num_proc=...) forks workers),
    # so each process opens its own.
    return _jmdict_connection(os.getpid())


@lru_cache(maxsize=1)
def _jmdict_connection(pid: int) -> sqlite3.Connection | None:
    """A read-only connection to jamdict-data's JMdict database, or None if not installed."""
    try:
        import jamdict_data
    except ImportError:
        return None
    path = Path(jamdict_data.JAMDICT_DB_PATH)
    if not path.is_file():
        return None
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)


@lru_cache(maxsize=4096)
def lookup(kana: str) -> tuple[str, str] | None:
    """(english, origin) for a word written ``kana`` in JMdict, from its first sense."""
    db = _jmdict()
    if db is None:
        return None
    row = db.execute(
        "SELECT s.ID FROM Kana k JOIN Sense s ON s.idseq = k.idseq "
        "WHERE k.text = ? ORDER BY k.idseq, s.ID LIMIT 1",
        (kana,),
    ).fetchone()
    if row is None:
        return None
    gloss = db.execute(
        "SELECT text FROM SenseGloss WHERE sid = ? ORDER BY rowid LIMIT 1", row
    ).fetchone()
    if gloss is None or not gloss[0]:
        return None
    source = db.execute(
        "SELECT lang FROM SenseSource WHERE sid = ? ORDER BY rowid LIMIT 1", row
    ).fetchone()
    lang = source[0] if source and source[0] else "eng"  # JMdict leaves English loans unmarked
    # "smart (clothing, etc.)" → "smart": the remark is for dictionary readers, not a gloss.
    english = re.sub(r"\s*\([^()]*\)", "", gloss[0]).strip() or gloss[0]
    return english, _ISO639_1.get(lang, lang)


@lru_cache(maxsize=4096)
def is_english_gloss_word(word: str) -> bool:
    """Whether ``word`` is itself a gloss of some JMdict entry (an English word)."""
    db = _jmdict()
    if db is None:
        return False
    hit = db.execute("SELECT 1 FROM SenseGloss WHERE text = ? LIMIT 1", (word,)).fetchone()
    return hit is not None
