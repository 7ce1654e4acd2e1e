"""The `assemblenet` entry point: every group is wired, help works, user errors exit 2."""

from __future__ import annotations

import argparse

import pytest

from model.errors import ConfigError
from pipeline import cli

GROUPS = ("model", "data", "train", "evaluate", "registry", "predict", "pipeline")


def test_every_command_group_is_registered() -> None:
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(GROUPS) <= set(subparsers.choices)


@pytest.mark.parametrize("group", GROUPS)
def test_help_for_every_group(group: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([group, "--help"])
    assert exit_info.value.code == 0
    assert "usage: assemblenet" in capsys.readouterr().out


def test_user_error_becomes_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise ConfigError("config.yaml: unknown key 'trian'")

    original = cli.build_parser

    def parser_with_failing_command() -> argparse.ArgumentParser:
        parser = original()
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.add_parser("explode").set_defaults(handler=fail)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_failing_command)
    assert cli.main(["explode"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: config.yaml: unknown key 'trian'"
    assert "Traceback" not in err
