import io
import json
import re
import tarfile

import pytest

from qeu_utils.__main__ import main
from qeu_utils.sharing import export


def _lineage(stage_dir, **extra):
    stage_dir.mkdir(parents=True, exist_ok=True)
    lineage = {"stage": 1, "base_model": "tiny-random", "merged_adapters": [], "init_from": None,
               "chain": None, "continued_adapter": None, "template": "chat", "packing": False,
               "precision": "fp32", "resumed_from": None, "dataset": "/data/init", **extra}
    (stage_dir / "lineage.json").write_text(json.dumps(lineage))
    return stage_dir


@pytest.fixture(scope="module")
def tiny_stage(tmp_path_factory):
    """A stage directory by hand: tiny-random with a non-zero LoRA adapter and its lineage."""
    import torch
    from peft import LoraConfig, get_peft_model

    from qeu_utils.model.models import load_model

    stage_dir = tmp_path_factory.mktemp("run") / "stage1"
    model, tokenizer = load_model("tiny-random", device="cpu")
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear",
                                            init_lora_weights=False))
    peft.save_pretrained(stage_dir)
    tokenizer.save_pretrained(stage_dir)
    _lineage(stage_dir)
    return stage_dir


def test_stage_dir_of_names_what_exists(tmp_path):
    _lineage(tmp_path / "stage1")
    _lineage(tmp_path / "stage2")
    assert export.stage_dir_of(tmp_path, 2) == tmp_path / "stage2"
    assert export.stage_dir_of(tmp_path / "stage1") == tmp_path / "stage1"
    with pytest.raises(FileNotFoundError, match=r"no lineage.json\); stages in .*: stage1, "
                                                r"stage2; pass --stage N"):
        export.stage_dir_of(tmp_path)
    with pytest.raises(FileNotFoundError, match="stage3 is not a trained stage"):
        export.stage_dir_of(tmp_path, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.stage_dir_of(tmp_path / "nope")


def test_model_card_describes_lineage_budget_and_evaluation(tmp_path):
    from qeu_utils.evaluation.tables import compare

    stage = _lineage(tmp_path / "stage2", stage=2, base_model="smollm2-135m-instruct",
                     merged_adapters=["/home/me/runs/stage1"], chain="merge",
                     dataset="/home/me/data/dolly/part1.jsonl")
    (stage / "config.yaml").write_text(
        "dataset: /home/me/data/dolly/part1.jsonl\nnum_train_epochs: 10\nmax_steps: -1\n"
        "learning_rate: 0.0002\nper_device_train_batch_size: 8\nlora_r: 16\nlora_alpha: 32\n")
    (stage / "summary.json").write_text(json.dumps({"global_step": 120, "train_loss": 1.23456}))
    loss = {"overall": {"loss": 2.0, "perplexity": 7.39, "tokens": 10, "records": 2},
            "by_category": {}}
    evaluation = {"before": {"loss": loss}, "after": {"loss": {**loss, "overall": {
        "loss": 1.5, "perplexity": 4.48, "tokens": 10, "records": 2}}}}
    (stage / "evaluation.json").write_text(json.dumps(evaluation))
    card = export.model_card(stage)
    assert card.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n"
                           "library_name: peft\n")
    assert ("- base model: `smollm2-135m-instruct` (HuggingFaceTB/SmolLM2-135M-Instruct on the "
            "Hub)\n- merged into the base before this stage, in order: `stage1` — this adapter "
            "only works on top of them (use the merged export)\n") in card
    assert ("- dataset: `part1.jsonl`\n- num_train_epochs 10, max_steps -1, learning_rate "
            "0.0002, per_device_train_batch_size 8\n- LoRA r 16, alpha 32, dropout None, target "
            "modules None\n- trained 120 steps, final train loss 1.2346\n") in card
    assert compare(evaluation["before"], evaluation["after"]).rstrip() in card
    assert "/home/me" not in card  # local paths stay local
    assert "from the Hub" not in card  # a merged-chain adapter is not usable alone
    assert "license:" not in card and "Gemma" not in card


def test_a_gemma_based_stage_carries_the_gemma_terms(tmp_path):
    stage = _lineage(tmp_path / "stage1", stage=1, base_model="gemma3-270m")
    export.write_card(stage)
    card = (stage / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nbase_model: google/gemma-3-270m\nlicense: gemma\n")
    assert ("## License\n\nGemma is provided under and subject to the Gemma Terms of Use found "
            "at https://ai.google.dev/gemma/terms\n") in card
    assert "https://ai.google.dev/gemma/prohibited_use_policy" in card
    assert (stage / "NOTICE").read_text(encoding="utf-8") == (
        "Gemma is provided under and subject to the Gemma Terms of Use found at "
        "https://ai.google.dev/gemma/terms\n")
    assert "NOTICE" in export.ADAPTER_FILES  # uploaded with the adapter
    # A local copy of Gemma is recognised by its config, whatever its folder is called.
    local = tmp_path / "my-base"
    local.mkdir()
    (local / "config.json").write_text('{"model_type": "gemma3_text"}', encoding="utf-8")
    other = _lineage(tmp_path / "stage1b", stage=1, base_model=str(local))
    export.write_card(other)
    assert (other / "NOTICE").is_file()
    assert "license: gemma" in (other / "README.md").read_text(encoding="utf-8")


def test_card_of_an_unevaluated_stage_says_so(tiny_stage):
    path = export.write_card(tiny_stage)
    card = path.read_text()
    assert path.name == "README.md"
    assert "base_model:" not in card  # tiny-random has no Hub id
    assert "Not evaluated (the stage ran with `evaluate: false` or had no eval split)." in card


def test_push_to_hub_uploads_the_adapter_with_the_env_token(tmp_path, fake_hub, capsys):
    calls = fake_hub
    stage = _lineage(tmp_path / "stage1")
    assert main(["export", str(stage), "--push-to-hub", "me/qeu-stage1", "--private"]) == 0
    assert calls["token"] == "hf_secret_value"
    assert calls["create"] == ("me/qeu-stage1",
                               {"repo_type": "model", "private": True, "exist_ok": True})
    assert calls["upload"]["folder_path"] == str(stage)
    assert calls["upload"]["allow_patterns"] == export.ADAPTER_FILES
    assert "lineage.json" not in export.ADAPTER_FILES
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"card       {stage}/README.md",
                                    "hub        https://huggingface.co/me/qeu-stage1"]
    assert "hf_secret_value" not in out.out + out.err


def test_nothing_is_pushed_unless_asked(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", None)  # any use would fail
    assert export.export(_lineage(tmp_path / "stage1")) == {
        "card": str(tmp_path / "stage1" / "README.md")}


def test_merged_export_equals_the_adapter_stack(tiny_stage, tmp_path):
    import torch

    from qeu_utils.model.models import load_model
    from qeu_utils.training.runs import load_trained

    result = export.export(tiny_stage, merged_dir=tmp_path / "merged", merged_dtype="float32")
    assert result["merged"] == str(tmp_path / "merged")
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == [
        "chat_template.jinja", "config.json", "generation_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json"]
    stacked, tokenizer = load_trained(tiny_stage, device="cpu")
    merged, _ = load_model(str(tmp_path / "merged"), device="cpu")
    ids = tokenizer("日本の首都はどこですか？", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        delta = (stacked(input_ids=ids).logits - merged(input_ids=ids).logits).abs().max()
    assert delta < 1e-4


def test_merged_export_is_16_bit_by_default(tiny_stage, tmp_path):
    export.export(tiny_stage, merged_dir=tmp_path / "merged")
    config = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    assert not (tmp_path / "merged" / "NOTICE").exists()  # tiny-random is not Gemma


def test_a_merged_gemma_derivative_carries_the_notice(tiny_stage, tmp_path, monkeypatch):
    # The merge itself is model-independent; what is Gemma here is the base's name.
    monkeypatch.setattr(export, "is_gemma", lambda base: True)
    export.export(tiny_stage, merged_dir=tmp_path / "merged")
    assert (tmp_path / "merged" / "NOTICE").read_text(encoding="utf-8") == export.GEMMA_NOTICE


@pytest.mark.parametrize("argv, message", [
    (["--gguf", "model.bin"], "the GGUF file name must end in .gguf, got model.bin"),
    (["--stage", "7"], "stage7 is not a trained stage (no lineage.json)"),
])
def test_export_cli_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("QEU_DEBUG", raising=False)
    _lineage(tmp_path / "stage1")
    assert main(["export", str(tmp_path)] + argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.endswith(" (run with --debug for the traceback)\n") and "Traceback" not in err


def _sdist(path, names):
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            data = f"# {name}\n".encode()
            info = tarfile.TarInfo(f"llama_cpp_python-0.3.36/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_converter_is_extracted_from_the_sdist_once(tmp_path, tmp_cache, monkeypatch):
    sdist = _sdist(tmp_path / "llama.tar.gz", [
        "vendor/llama.cpp/convert_hf_to_gguf.py", "vendor/llama.cpp/conversion/llama.py",
        "vendor/llama.cpp/gguf-py/gguf/__init__.py", "vendor/llama.cpp/src/llama.cpp",
        "llama_cpp/llama.py"])
    monkeypatch.setenv("QEU_LLAMA_CPP_SDIST", str(sdist))
    target = export.converter_dir()
    assert target == tmp_cache / "tools" / "llama-cpp-python-0.3.36"
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == [".qeu-complete", "conversion/llama.py", "convert_hf_to_gguf.py",
                     "gguf-py/gguf/__init__.py"]
    sdist.unlink()  # a second call does not need the sdist any more
    assert export.converter_dir() == target


def test_converter_errors_name_the_fix(tmp_path, tmp_cache, monkeypatch):
    import subprocess

    monkeypatch.setenv("QEU_LLAMA_CPP_SDIST", str(_sdist(tmp_path / "x.tar.gz", ["README"])))
    with pytest.raises(RuntimeError, match="holds no vendor/llama.cpp/convert_hf_to_gguf.py"):
        export.converter_dir()
    assert not (tmp_cache / "tools" / "llama-cpp-python-0.3.36").exists()

    monkeypatch.delenv("QEU_LLAMA_CPP_SDIST")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, "", "ERROR: No matching distribution found"))
    with pytest.raises(RuntimeError, match=r"failed \(exit 1\): ERROR: No matching distribution "
                                           r"found\. .*set QEU_LLAMA_CPP_SDIST=<file>"):
        export.converter_dir()


def test_a_failed_conversion_leaves_no_file(tmp_path, monkeypatch):
    script = tmp_path / "tool" / "convert_hf_to_gguf.py"
    script.parent.mkdir()
    script.write_text("import sys\nprint('INFO: loading')\n"
                      "sys.exit('NotImplementedError: BPE pre-tokenizer was not recognized')\n")
    monkeypatch.setattr(export, "converter_dir", lambda: script.parent)
    out = tmp_path / "model.gguf"
    with pytest.raises(RuntimeError, match=r"convert_hf_to_gguf.py failed on .*:\nINFO: loading\n"
                                           r"NotImplementedError: BPE pre-tokenizer"):
        export.convert_to_gguf(tmp_path, out)
    assert list(tmp_path.glob("*.gguf*")) == []
    with pytest.raises(ValueError, match="gguf_type must be one of f16, f32, q8_0, got 'q4'"):
        export.convert_to_gguf(tmp_path, out, "q4")


@pytest.mark.slow
def test_export_smollm2_stage_to_merged_and_gguf(tmp_path, capsys):
    """A 2-step SmolLM2 stage → merged model + GGUF; the GGUF read back answers as the merged
    model does. Fetches llama.cpp's converter from PyPI on first use (then cached)."""
    from qeu_utils.core.records import make_record, write_jsonl
    from qeu_utils.training.config import resolve
    from qeu_utils.training.train import train

    records = [make_record(category="custom", task="qa", instruction=q, output=a, lang="ja>ja",
                           source="test")
               for q, a in [("日本の首都はどこですか？", "東京です。"),
                            ("一週間は何日ですか？", "七日です。")]]
    write_jsonl(records, tmp_path / "data.jsonl")
    stage = tmp_path / "run" / "stage1"
    train(resolve("stage1", model_name_or_path="smollm2-135m-instruct",
                  dataset=str(tmp_path / "data.jsonl"), max_steps=2,
                  per_device_train_batch_size=2, evaluate=False, output_dir=str(stage)))
    capsys.readouterr()
    assert main(["export", str(stage), "--merged", str(tmp_path / "merged"), "--gguf",
                 str(tmp_path / "model.gguf")]) == 0
    printed = capsys.readouterr().out
    assert f"gguf       {tmp_path}/model.gguf\n" in printed
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    # export read the GGUF back and compared it with the merged model (greedy answers to the
    # two capital questions and next-token logits); f16 weights move logits a little.
    check = re.search(r"gguf check max \|Δlogit\| ([0-9.e-]+), same greedy answers: (\w+)",
                      printed)
    assert check.group(2) == "True"
    assert float(check.group(1)) < 0.2
