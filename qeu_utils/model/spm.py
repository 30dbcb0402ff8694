"""A SentencePiece ``tokenizer.model`` rebuilt from a GGUF's tokenizer, for llama.cpp's converter.

A model provisioned from a GGUF keeps its tokenizer as ``tokenizer.json`` only. For Gemma 3,
llama.cpp's ``convert_hf_to_gguf.py`` reads the vocabulary from ``tokenizer.model`` when there
is one and otherwise writes a GPT-2 byte-level vocabulary, which is wrong for Gemma's
SentencePiece pieces (``▁`` for spaces, byte fallback): the exported GGUF would tokenize
differently in llama.cpp, and transformers cannot even read its tokenizer back. The GGUF the
model came from holds the SentencePiece vocabulary itself — pieces, scores and types, with the
same numbering of types — so the file is rebuilt from it, with ``sentencepiece``'s own
``ModelProto``.
"""

from __future__ import annotations

import os
from pathlib import Path

# SentencePiece's piece types, which GGUF's tokenizer.ggml.token_type uses as well.
UNKNOWN, USER_DEFINED = 2, 4


def sentencepiece_model(gguf_file: str | os.PathLike) -> bytes:
    """The serialized ``ModelProto`` of a GGUF whose tokenizer is SentencePiece (``llama``)."""
    from gguf import GGUFReader
    from sentencepiece import sentencepiece_model_pb2 as spm

    fields = GGUFReader(gguf_file).fields

    def value(key: str):
        if key not in fields:
            raise ValueError(f"{gguf_file}: no {key} in the GGUF's metadata")
        return fields[key].contents()

    if value("tokenizer.ggml.model") != "llama":
        raise ValueError(f"{gguf_file}: tokenizer.ggml.model is {value('tokenizer.ggml.model')!r}, "
                         "not a SentencePiece ('llama') vocabulary")
    tokens = value("tokenizer.ggml.tokens")
    scores = value("tokenizer.ggml.scores")
    types = value("tokenizer.ggml.token_type")
    unk = value("tokenizer.ggml.unknown_token_id")
    proto = spm.ModelProto()
    for i, (piece, score, kind) in enumerate(zip(tokens, scores, types, strict=True)):
        entry = proto.pieces.add()
        # llama.cpp's converter writes the spaces of user-defined pieces as spaces ("  ");
        # SentencePiece matches them after escaping spaces, as "▁▁".
        entry.piece = piece.replace(" ", "\u2581") if kind == USER_DEFINED else piece
        entry.score = score
        # SentencePiece insists on exactly one unknown piece; GGUF files often mark it CONTROL.
        entry.type = UNKNOWN if i == unk else kind
    trainer = proto.trainer_spec
    trainer.model_type = spm.TrainerSpec.BPE
    trainer.vocab_size = len(tokens)
    trainer.byte_fallback = True
    # The special pieces by id and by name: SentencePiece looks them up by name (default <s>).
    for name in ("unk", "bos", "eos", "pad"):
        key = "unknown" if name == "unk" else "padding" if name == "pad" else name
        token_id = value(f"tokenizer.ggml.{key}_token_id")
        setattr(trainer, f"{name}_id", token_id)
        setattr(trainer, f"{name}_piece", tokens[token_id])
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = bool(fields["tokenizer.ggml.add_space_prefix"].contents()) \
        if "tokenizer.ggml.add_space_prefix" in fields else False
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    return proto.SerializeToString()


def write_sentencepiece_model(gguf_file: str | os.PathLike, model_dir: str | os.PathLike) -> Path:
    """``model_dir/tokenizer.model`` from ``gguf_file`` (written to a temp file, then renamed)."""
    target = Path(model_dir) / "tokenizer.model"
    tmp = target.with_suffix(".model.part")
    tmp.write_bytes(sentencepiece_model(gguf_file))
    tmp.replace(target)
    return target
