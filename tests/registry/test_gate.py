"""Truth table of the promotion gate."""

from __future__ import annotations

import math

import pytest

from components.registry import should_promote
from model.errors import RegistryError


@pytest.mark.parametrize(
    ("challenger", "champion", "min_gain", "higher_is_better", "expected"),
    [
        (0.5, None, 0.0, True, True),  # no champion: always promote
        (0.0, None, 0.5, True, True),
        (0.8, 0.7, 0.0, True, True),  # better
        (0.7, 0.7, 0.0, True, False),  # a tie never replaces the champion
        (0.6, 0.7, 0.0, True, False),  # worse
        (0.8, 0.7, 0.1, True, True),  # exactly the gain (despite float rounding)
        (0.79, 0.7, 0.1, True, False),  # short of the gain
        (0.7, 0.7, 0.01, True, False),  # tie fails a positive gain
        (0.3, 0.5, 0.1, False, True),  # lower is better: loss fell by 0.2
        (0.45, 0.5, 0.1, False, False),  # fell by only 0.05
        (0.6, 0.5, 0.0, False, False),  # rose
        (0.1, math.nan, 0.5, True, True),  # champion without a usable value
    ],
)
def test_should_promote_truth_table(
    challenger: float,
    champion: float | None,
    min_gain: float,
    higher_is_better: bool,
    expected: bool,
) -> None:
    champion_metrics = None if champion is None else {"m": champion}
    assert should_promote({"m": challenger}, champion_metrics, "m", min_gain, higher_is_better) is (
        expected
    )


def test_champion_without_the_metric_loses() -> None:
    assert should_promote({"m": 0.1}, {"other": 0.9}, "m", 0.0) is True


@pytest.mark.parametrize(
    ("challenger", "min_gain", "message"),
    [
        ({"x": 0.5}, 0.0, "'m' is not in"),
        ({"m": math.inf}, 0.0, "refusing"),
        ({"m": 0.5}, -0.1, ">= 0"),
    ],
)
def test_should_promote_rejects_bad_inputs(
    challenger: dict[str, float], min_gain: float, message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        should_promote(challenger, {"m": 0.4}, "m", min_gain)
