"""The command line as a whole: help, --debug / MOEWIR_DEBUG, shared options, Markdown tables."""
from __future__ import annotations

import pytest

from moewir.cli.main import DEBUG_VARIABLE, main
from moewir.tables import markdown_header, markdown_row, markdown_table


def _help(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_help_describes_what_the_commands_do(capsys):
    text = _help(capsys, [])
    assert "later" not in text and "--debug" in text
    for word in ("restore", "videos", "web page", "synthesize", "distill", "train", "ablations", "evaluate", "ONNX",
                 "profile"):
        assert word in text


@pytest.mark.parametrize("command", ["restore", "export", "profile"])
def test_model_means_a_registered_architecture_everywhere(capsys, command):
    text = _help(capsys, [command])
    assert "--model NAME registered model (the architecture), one of: dcp, mgf, moewirnet," in text
    assert "Without --weights:" in text and "needed only for files without moewir metadata" in text


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_debug_shows_the_traceback(capsys, monkeypatch, how):
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    argv = ["profile", "--model", "nope"]
    if how == "flag":
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv(DEBUG_VARIABLE, "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "UnknownNameError" in err
    assert err.strip().splitlines()[-1].startswith("moewir: error: unknown model 'nope'")


@pytest.mark.parametrize("value", [None, "", "0"])
def test_without_debug_an_error_is_one_line(capsys, monkeypatch, value):
    if value is None:
        monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(DEBUG_VARIABLE, value)
    assert main(["profile", "--model", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moewir: error: unknown model 'nope'") and "\n" not in err


def test_debug_with_an_os_error(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    def run(args):
        raise OSError(f"{tmp_path}: disk full")
    monkeypatch.setattr("moewir.cli.profile.run", run)  # main builds its parser afresh
    assert main(["--debug", "profile"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "OSError" in err and err.strip().endswith("disk full")


def test_markdown_table():
    assert markdown_table(["task", "PSNR", "n"], [["rain", "31.20", 3], ["snow", "-", 0]], align="lr") == (
        "| task | PSNR | n |\n|---|---:|---|\n| rain | 31.20 | 3 |\n| snow | - | 0 |")
    assert markdown_header(["a", "b", "c"], align="rcl") == "| a | b | c |\n|---:|:---:|---|"
    assert markdown_row(["x", ""]) == "| x |  |"
    assert markdown_table(["only"], []) == "| only |\n|---|"
    with pytest.raises(ValueError, match="align"):
        markdown_header(["a"], align="rr")
    with pytest.raises(ValueError, match="align"):
        markdown_header(["a", "b"], align="x")


@pytest.mark.parametrize("model", ["dcp", "mgf"])
@pytest.mark.parametrize("flag", ["--model", "--weights"])
def test_export_of_a_classical_method_says_what_to_do_instead(capsys, tmp_path, model, flag):
    assert main(["export", flag, model, "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"moewir: error: {model} is a classical method with no learned weights; moewir does not export "
                   f"those to ONNX. Restore with it directly: moewir restore PHOTOS -o OUT --model {model}")
    assert not (tmp_path / "m.onnx").exists()
