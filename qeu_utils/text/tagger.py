"""One UniDic tagger (fugashi) for the whole package: the dictionary loads once, on first
use, so importing a text tool stays cheap."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def tagger():
    import fugashi

    return fugashi.Tagger()
