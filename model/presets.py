"""Named AssembleNet / AssembleNet++ presets (data, not classes).

Published structures come from ``assemblenet_structures.json``; the ``tiny*`` presets keep every
mechanism (RGB and flow stems, multi-input fusion with channel projection, temporal dilation, all
four levels) at a size that trains on a CPU in minutes (8 frames of 64x64, ~200k parameters).
"""

from __future__ import annotations

import dataclasses

from model.errors import ConfigError
from model.structures import AssembleNetSpec, from_flat_lists, published_structure

# A small two-RGB, one-flow structure with fusion of mixed widths at every level.
_TINY_STRUCTURE = [
    [-1, 2],
    [-1, 1],
    [-2, 1],
    [0, [0], 8, 1, 1, 0],
    [0, [0, 1, 2], 8, 2, 1, 0],
    [0, [1, 2], 8, 1, 1, 0],
    [1, [3, 4, 5], 16, 2, 2, 0],
    [1, [0, 2, 5], 16, 1, 2, 0],
    [2, [6, 7], 32, 2, 2, 0],
    [2, [3, 7], 32, 1, 2, 0],
    [3, [6, 8, 9], 48, 1, 2, 0],
]
_TINY = dict(
    stem_filters=8,
    units_per_level=(2, 2, 2, 2),
    mid_filters=(8, 16, 32, 48),
    flow_iterations=10,
)
_TINY_FULL_STRUCTURE = [
    [-1, 2],
    [-2, 1],
    [-3, 1],
    [0, [0, 1, 2], 8, 1, 1, 0],
    [0, [0, 2], 8, 2, 1, 0],
    [1, [0, 1, 3, 4], 16, 2, 2, 0],
    [2, [2, 4, 5], 32, 1, 2, 0],
    [3, [5, 6], 48, 2, 2, 0],
]
_TINY_LITE_STRUCTURE = [
    [-1, 1],
    [-2, 1],
    [0, [0, 1], [16, 16, 8], 1, 2, 0],
    [0, [0, 1], [16, 16, 8], 2, 2, 0],
    [1, [0, 1, 2, 3], [32, 32, 16], 2, 2, 0],
    [2, [1, 2, 4], [64, 64, 24], 1, 2, 0],
    [3, [2, 3, 4, 5], [96, 96, 32], 2, 2, 0],
]


def _build_presets() -> dict[str, AssembleNetSpec]:
    asn50 = published_structure("asn50", model_id=50)
    presets = {
        "assemblenet50": asn50,
        "assemblenet101": published_structure("asn101", model_id=101),
        "assemblenet_plus50": dataclasses.replace(asn50, attention_mode="peer"),
        "assemblenet_plus50_full": published_structure(
            "asnp50_full", model_id=50, attention_mode="peer", num_object_classes=151
        ),
        "assemblenet_plus_lite": published_structure(
            "asnp_lite", attention_mode="peer", flow_iterations=20
        ),
        "tiny": from_flat_lists(_TINY_STRUCTURE, **_TINY),
        "tiny_plus": from_flat_lists(_TINY_STRUCTURE, attention_mode="peer", **_TINY),
        "tiny_plus_full": from_flat_lists(
            _TINY_FULL_STRUCTURE, attention_mode="peer", num_object_classes=6, **_TINY
        ),
        "tiny_lite": from_flat_lists(
            _TINY_LITE_STRUCTURE,
            attention_mode="peer",
            stem_filters=8,
            units_per_level=(1, 2, 2, 2),
            lite_head_filters=(48, 64),
            flow_iterations=10,
        ),
    }
    return presets


PRESETS: dict[str, AssembleNetSpec] = _build_presets()


def get_preset(name: str) -> AssembleNetSpec:
    """The spec of a named preset.

    Raises:
        ConfigError: unknown name (the message lists the valid ones).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown AssembleNet preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}"
        ) from None
