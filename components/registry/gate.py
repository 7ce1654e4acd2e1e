"""The promotion gate: does a newly trained version replace the current champion?"""

from __future__ import annotations

import math
from collections.abc import Mapping

from model.errors import RegistryError


def should_promote(
    challenger_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    metric: str,
    min_gain: float,
    higher_is_better: bool = True,
) -> bool:
    """Decide whether the challenger becomes champion.

    The challenger wins when there is no champion (``champion_metrics`` is ``None``), or when its
    ``metric`` is strictly better than the champion's and by at least ``min_gain`` in the good
    direction (a gain of exactly ``min_gain > 0`` wins). A tie never wins, whatever ``min_gain``:
    replacing the champion with an equally good model only churns what is served. A champion
    that lacks the metric (registered by an older pipeline) or whose value is NaN loses to any
    finite challenger.

    Args:
        challenger_metrics: Metric name -> value of the new version (e.g. ``{"top_1": 0.8}``).
        champion_metrics: The current champion's metrics, or ``None`` when there is none.
        metric: Name of the metric to compare.
        min_gain: Required improvement, >= 0, in the metric's own units.
        higher_is_better: False for losses and error rates.

    Returns:
        True when the challenger should receive the ``champion`` alias.

    Raises:
        RegistryError: The challenger lacks the metric, its value is not finite, or ``min_gain``
            is negative.
    """
    if min_gain < 0 or not math.isfinite(min_gain):
        raise RegistryError(f"min_gain must be a finite number >= 0, got {min_gain}")
    if metric not in challenger_metrics:
        raise RegistryError(
            f"metric {metric!r} is not in the new model's metrics "
            f"(available: {', '.join(sorted(challenger_metrics)) or 'none'})"
        )
    challenger = float(challenger_metrics[metric])
    if not math.isfinite(challenger):
        raise RegistryError(f"the new model's {metric} is {challenger}; refusing to compare")
    if champion_metrics is None or metric not in champion_metrics:
        return True
    champion = float(champion_metrics[metric])
    if not math.isfinite(champion):
        return True
    gain = challenger - champion if higher_is_better else champion - challenger
    # Compare with a tolerance so that 0.8 - 0.7 >= 0.1 holds despite binary rounding.
    if math.isclose(gain, 0.0, abs_tol=1e-12) or gain < 0:
        return False
    return gain >= min_gain or math.isclose(gain, min_gain, rel_tol=1e-9, abs_tol=1e-12)
