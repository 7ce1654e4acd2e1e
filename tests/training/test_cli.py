"""``assemblenet train`` / ``evaluate``: argument wiring and clear errors before any compute."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import build_parser, main


def test_help_lists_train_and_evaluate(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "evaluate"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--model-dir" in out
    assert "--crops" in out
    args = build_parser().parse_args(
        ["train", "--config", "synthetic", "--data", "d", "--model-dir", "m", "--set", "a.b=1"]
    )
    assert args.set == ["a.b=1"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--set", "train.stepz=3"], "unknown key 'train.stepz'"),
        (["--set", "train.steps=many"], "'train.steps' must be int"),
        (["--set", "nonsense"], "--set expects section.key=value"),
    ],
)
def test_bad_overrides_fail_fast(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "--config", "synthetic", "--data", str(tmp_path), "--model-dir", "m"]
    status = main([*base, *argv])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert needle in err


def test_wrong_data_path_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    status = main(["train", "--config", "synthetic", "--data", str(missing), "--model-dir", "m"])
    assert status == 2
    assert f"data directory not found: {missing}" in capsys.readouterr().err
