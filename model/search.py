"""One-shot connection search: read learned edge weights off a trained model.

Train a structure whose edge weights are empty (every fusion has trainable logits w, starting at
sigmoid(w) ~ 0.5), then :func:`learned_structure` turns ``sigmoid(w)`` into the published
edge-weight format, optionally pruning weak edges, and :func:`~model.structures.
save_structure_file` writes a structure file the model can be rebuilt from.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from model.errors import StructureError
from model.structures import AssembleNetSpec, BlockSpec, validate

log = logging.getLogger(__name__)

# Stored weights must lie strictly inside (0, 1) to have a finite logit.
_EPS = 1e-6


def edge_weights_of(model: Any, spec: AssembleNetSpec) -> dict[int, list[float]]:
    """``{node id: [sigmoid(w_k) per input]}`` for every multi-input sigmoid-fused block."""
    found: dict[int, list[float]] = {}
    for i, block in spec.blocks:
        if len(block.inputs) < 2 or spec.combine == "concat":
            continue
        try:
            layer = model.get_layer(f"node{i}_fusion")
        except ValueError as error:
            raise StructureError(
                f"node {i}: the model has no fusion layer 'node{i}_fusion'; "
                "was it built from this structure?"
            ) from error
        logits = np.asarray(layer.edge_logits.numpy(), dtype=np.float64)
        if logits.shape != (len(block.inputs),):
            raise StructureError(
                f"node {i}: model has {logits.shape[0]} edge logits for "
                f"{len(block.inputs)} inputs; was it built from this structure?"
            )
        found[i] = (1.0 / (1.0 + np.exp(-logits))).tolist()
    return found


def learned_structure(
    model: Any, spec: AssembleNetSpec | None = None, prune_below: float | None = None
) -> AssembleNetSpec:
    """The structure with the model's learned edge weights (fixed from now on).

    Args:
        model: a model built from ``spec`` (e.g. by ``build_model``), trained or not.
        spec: its structure; defaults to ``model.assemblenet_spec``.
        prune_below: drop edges whose weight is below this value, keeping at least the
            strongest input of every block; a block left with one input keeps no weight.

    Returns:
        A validated spec whose multi-input blocks carry the learned post-sigmoid weights.

    Raises:
        StructureError: the model does not match the structure, or a bad threshold.
    """
    if spec is None:
        spec = getattr(model, "assemblenet_spec", None)
        if spec is None:
            raise StructureError("the model carries no AssembleNet spec; pass spec=")
    if prune_below is not None and not 0.0 <= prune_below < 1.0:
        raise StructureError(f"prune_below must be in [0, 1), got {prune_below!r}")
    weights = edge_weights_of(model, spec)
    nodes = list(spec.nodes)
    pruned = 0
    for i, values in weights.items():
        block = nodes[i]
        assert isinstance(block, BlockSpec)
        values = [min(max(v, _EPS), 1.0 - _EPS) for v in values]
        inputs = list(block.inputs)
        if prune_below is not None:
            keep = [k for k, v in enumerate(values) if v >= prune_below]
            if not keep:
                keep = [int(np.argmax(values))]
            pruned += len(inputs) - len(keep)
            inputs = [inputs[k] for k in keep]
            values = [values[k] for k in keep]
        nodes[i] = dataclasses.replace(
            block,
            inputs=tuple(inputs),
            edge_weights=tuple(values) if len(inputs) > 1 else (),
        )
    if prune_below is not None:
        log.info("pruned %d edge(s) below %.3f", pruned, prune_below)
    return validate(dataclasses.replace(spec, nodes=tuple(nodes)))
