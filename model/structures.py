"""Typed AssembleNet structures: stems, blocks, whole-network specs and their validation.

A structure is a list of nodes in topological order (the index is the node id). The papers and
the TensorFlow Model Garden write it as nested "flat lists":

* a stem is ``[stem_type, temporal_dilation]`` with -1 = RGB, -2 = optical flow (Representation
  Flow), -3 = object segmentation input (AssembleNet++);
* a block is ``[level, [input ids], num_filters, temporal_dilation, spatial_stride, 0]`` where
  ``num_filters`` is the bottleneck width (an ``[expand, mid, out]`` triple for the "lite"
  inverted-bottleneck blocks) and the trailing 0 carries no meaning.

Learned connection weights come as one entry per node: ``[]`` (stems, single-input blocks, or a
block whose edges are to be learned) or ``[[w per input edge]]`` with post-sigmoid values in (0, 1).

This module turns those lists into frozen dataclasses (:class:`StemSpec`, :class:`BlockSpec`,
:class:`AssembleNetSpec`), checks them with :func:`validate` (every failure is a
:class:`~model.errors.StructureError` naming the node), and reads/writes structure files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from model.errors import StructureError

StemKind = Literal["rgb", "flow", "object"]
Combine = Literal["sigmoid", "concat"]
AttentionMode = Literal["self", "peer"] | None

# Published stem codes in the flat-list format.
STEM_CODES: dict[int, str] = {-1: "rgb", -2: "flow", -3: "object"}
STEM_KIND_TO_CODE: dict[str, int] = {kind: code for code, kind in STEM_CODES.items()}

# Residual units per level (levels 0..3) by model id, as in the AssembleNet reference.
UNITS_BY_MODEL_ID: dict[int, tuple[int, int, int, int]] = {
    26: (2, 2, 2, 2),
    38: (2, 4, 4, 2),
    50: (3, 4, 6, 3),
    68: (3, 4, 12, 3),
    77: (3, 4, 15, 3),
    101: (3, 4, 23, 3),
}
# The lite (inverted-bottleneck) model of AssembleNet++ uses its own depths.
LITE_UNITS: tuple[int, int, int, int] = (3, 5, 11, 7)
# Width of the 3x3 layer of a bottleneck block per level; independent of num_filters.
MID_FILTERS: tuple[int, int, int, int] = (64, 128, 256, 512)

_DATA_FILE = Path(__file__).with_name("assemblenet_structures.json")


@dataclasses.dataclass(frozen=True, slots=True)
class StemSpec:
    """An input stem.

    Attributes:
        kind: 'rgb' (conv stem on frames), 'flow' (conv stem on Representation Flow computed from
            the frames) or 'object' (max-pooled per-class segmentation maps, AssembleNet++).
        temporal_dilation: dilation of the RGB/lite stem temporal conv (flow stems of the
            non-lite model have no temporal conv and ignore it; values < 1 act as 1).
    """

    kind: StemKind
    temporal_dilation: int = 1

    @property
    def level(self) -> int:
        """Stems sort before every block level: -3 object, -2 flow, -1 rgb."""
        return STEM_KIND_TO_CODE[self.kind]


@dataclasses.dataclass(frozen=True, slots=True)
class BlockSpec:
    """A block group: ``units`` residual units at one level fed by a fusion of earlier nodes.

    Attributes:
        level: 0..3; picks the number of residual units and the 3x3 width.
        inputs: ids of earlier nodes whose outputs are fused into this block.
        filters: bottleneck width f (output 4f channels), or ``(expand, mid, out)`` for lite.
        temporal_dilation: dilation of the temporal convs in the block.
        spatial_stride: stride of the first unit (1 or 2 in the published structures).
        edge_weights: post-sigmoid connection weights, one per input. Empty means the edge logits
            are trainable (one-shot connection search) or that the block has a single input.
    """

    level: int
    inputs: tuple[int, ...]
    filters: int | tuple[int, int, int]
    temporal_dilation: int = 1
    spatial_stride: int = 1
    edge_weights: tuple[float, ...] = ()


Node = StemSpec | BlockSpec


@dataclasses.dataclass(frozen=True, slots=True)
class AssembleNetSpec:
    """A whole AssembleNet / AssembleNet++ network.

    Attributes:
        nodes: stems and blocks in topological order.
        model_id: depth family (26, 38, 50, 68, 77, 101) that sets residual units per level.
        combine: 'sigmoid' (weighted sum, the default) or 'concat' (AssembleNet only).
        attention_mode: None, 'self' or 'peer' (AssembleNet++ connection attention).
        use_object_input: the model takes an 'object' input (requires an object stem).
        num_object_classes: channels of the object input (151 = ADE-20k).
        max_pool_predictions: softmax-over-time pooling of per-frame logits instead of a mean.
        bn_momentum: BatchNormalization momentum (0.99 in the reference; ~0.9 for short runs).
        bn_epsilon: BatchNormalization epsilon.
        lite: inverted-bottleneck (AssembleNet++ lite) blocks, stems and head.
        flow_iterations: TV-L1 iterations of the Representation Flow layer.
        stem_filters: stem width; None means 128 // number of stems (24 for lite).
        units_per_level: overrides the residual units per level (tiny presets).
        mid_filters: overrides the 3x3 widths per level (tiny presets; non-lite only).
        lite_head_filters: widths of the two 1x1 convs of the lite head.
        dropout_rate: dropout before the classifier (lite head only; the reference ignores it).
    """

    nodes: tuple[Node, ...]
    model_id: int = 50
    combine: Combine = "sigmoid"
    attention_mode: AttentionMode = None
    use_object_input: bool = False
    num_object_classes: int = 151
    max_pool_predictions: bool = False
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-5
    lite: bool = False
    flow_iterations: int = 40
    stem_filters: int | None = None
    units_per_level: tuple[int, int, int, int] | None = None
    mid_filters: tuple[int, int, int, int] | None = None
    lite_head_filters: tuple[int, int] = (432, 2048)
    dropout_rate: float = 0.0

    # --- derived values -------------------------------------------------------------------
    @property
    def stems(self) -> list[tuple[int, StemSpec]]:
        return [(i, n) for i, n in enumerate(self.nodes) if isinstance(n, StemSpec)]

    @property
    def blocks(self) -> list[tuple[int, BlockSpec]]:
        return [(i, n) for i, n in enumerate(self.nodes) if isinstance(n, BlockSpec)]

    @property
    def final_nodes(self) -> list[int]:
        """Ids of the level-3 nodes; a classifier head reads each of them."""
        return [i for i, n in self.blocks if n.level == 3]

    def resolved_stem_filters(self) -> int:
        if self.stem_filters is not None:
            return self.stem_filters
        return 24 if self.lite else 128 // len(self.stems)

    def resolved_units(self) -> tuple[int, int, int, int]:
        if self.units_per_level is not None:
            return self.units_per_level
        return LITE_UNITS if self.lite else UNITS_BY_MODEL_ID[self.model_id]

    def resolved_mid_filters(self) -> tuple[int, int, int, int]:
        return self.mid_filters if self.mid_filters is not None else MID_FILTERS

    def node_level(self, index: int) -> int:
        node = self.nodes[index]
        return node.level

    def output_channels(self, index: int) -> int:
        """Channels of node ``index``'s output stream."""
        node = self.nodes[index]
        if isinstance(node, StemSpec):
            return (
                self.num_object_classes if node.kind == "object" else self.resolved_stem_filters()
            )
        if isinstance(node.filters, tuple):
            return node.filters[2]
        return 4 * node.filters

    def with_learnable_edges(self) -> AssembleNetSpec:
        """The same network with every edge logit trainable (edge weights emptied)."""
        nodes = tuple(
            dataclasses.replace(n, edge_weights=()) if isinstance(n, BlockSpec) else n
            for n in self.nodes
        )
        return dataclasses.replace(self, nodes=nodes)

    def replace(self, **changes: Any) -> AssembleNetSpec:
        """A validated copy with some fields changed (unknown fields raise StructureError)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise StructureError(
                f"unknown AssembleNet spec field(s) {unknown}; valid fields: {sorted(names)}"
            )
        spec = dataclasses.replace(self, **changes)
        validate(spec)
        return spec


# --- validation ---------------------------------------------------------------------------


def _fail(index: int | None, message: str) -> StructureError:
    where = f"node {index}: " if index is not None else ""
    return StructureError(f"invalid AssembleNet structure: {where}{message}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(spec: AssembleNetSpec) -> AssembleNetSpec:
    """Checks a spec and returns it unchanged.

    Raises:
        StructureError: naming the node (or field) that is wrong: unknown stem kinds, inputs that
            do not point to earlier nodes, levels outside 0..3, bad filters/dilations/strides,
            edge-weight lengths that do not match input counts, weights outside (0, 1), no level-3
            node, object input without an object stem, unknown combine/attention settings.
    """
    if not isinstance(spec.nodes, tuple) or not spec.nodes:
        raise _fail(None, "the structure has no nodes")
    seen_block = False
    for i, node in enumerate(spec.nodes):
        if isinstance(node, StemSpec):
            if node.kind not in STEM_KIND_TO_CODE:
                raise _fail(i, f"unknown stem type {node.kind!r}; known: rgb, flow, object")
            if seen_block:
                raise _fail(i, "stems must come before every block")
            if not _is_int(node.temporal_dilation):
                raise _fail(i, f"temporal_dilation must be an int, got {node.temporal_dilation!r}")
            continue
        if not isinstance(node, BlockSpec):
            raise _fail(i, f"expected a StemSpec or BlockSpec, got {type(node).__name__}")
        seen_block = True
        if not _is_int(node.level) or not 0 <= node.level <= 3:
            raise _fail(i, f"level must be 0..3, got {node.level!r}")
        if not node.inputs:
            raise _fail(i, "a block needs at least one input")
        for j in node.inputs:
            if not _is_int(j) or not 0 <= j < i:
                raise _fail(i, f"input {j!r} must be the id of an earlier node (0..{i - 1})")
        if len(set(node.inputs)) != len(node.inputs):
            raise _fail(i, f"duplicate inputs {list(node.inputs)}")
        if spec.lite:
            if not (
                isinstance(node.filters, tuple)
                and len(node.filters) == 3
                and all(_is_int(f) and f > 0 for f in node.filters)
            ):
                raise _fail(
                    i, f"lite blocks need filters (expand, mid, out) > 0, got {node.filters!r}"
                )
        elif not (_is_int(node.filters) and node.filters > 0):
            raise _fail(i, f"filters must be a positive int, got {node.filters!r}")
        if not _is_int(node.temporal_dilation) or node.temporal_dilation < 1:
            raise _fail(i, f"temporal_dilation must be an int >= 1, got {node.temporal_dilation!r}")
        if not _is_int(node.spatial_stride) or node.spatial_stride < 1:
            raise _fail(i, f"spatial_stride must be an int >= 1, got {node.spatial_stride!r}")
        if node.edge_weights:
            if len(node.edge_weights) != len(node.inputs):
                raise _fail(
                    i,
                    f"{len(node.edge_weights)} edge weights for {len(node.inputs)} inputs "
                    f"{list(node.inputs)}",
                )
            for w in node.edge_weights:
                if not isinstance(w, int | float) or not 0.0 < float(w) < 1.0:
                    raise _fail(i, f"edge weights are post-sigmoid values in (0, 1), got {w!r}")
    if not spec.final_nodes:
        raise _fail(None, "at least one level-3 node is required (the classifier reads it)")
    kinds = {n.kind for _, n in spec.stems}
    if spec.combine not in ("sigmoid", "concat"):
        raise _fail(None, f"combine must be 'sigmoid' or 'concat', got {spec.combine!r}")
    if spec.attention_mode not in (None, "self", "peer"):
        raise _fail(
            None, f"attention_mode must be None, 'self' or 'peer', got {spec.attention_mode!r}"
        )
    if spec.combine == "concat" and (spec.attention_mode or spec.lite):
        raise _fail(None, "combine='concat' exists only for AssembleNet (no attention, not lite)")
    if spec.use_object_input != ("object" in kinds):
        raise _fail(
            None,
            "use_object_input must be True exactly when the structure has an object stem (-3)",
        )
    if spec.lite and "object" in kinds:
        raise _fail(None, "lite models take no object input")
    if not spec.lite and spec.units_per_level is None and spec.model_id not in UNITS_BY_MODEL_ID:
        raise _fail(
            None, f"model_id must be one of {sorted(UNITS_BY_MODEL_ID)}, got {spec.model_id!r}"
        )
    for name in ("units_per_level", "mid_filters"):
        value = getattr(spec, name)
        if value is not None and (len(value) != 4 or not all(_is_int(v) and v > 0 for v in value)):
            raise _fail(None, f"{name} must be 4 positive ints, got {value!r}")
    if spec.stem_filters is not None and not (_is_int(spec.stem_filters) and spec.stem_filters > 0):
        raise _fail(None, f"stem_filters must be a positive int, got {spec.stem_filters!r}")
    if not _is_int(spec.flow_iterations) or spec.flow_iterations < 1:
        raise _fail(None, f"flow_iterations must be an int >= 1, got {spec.flow_iterations!r}")
    if not 0.0 <= float(spec.bn_momentum) < 1.0:
        raise _fail(None, f"bn_momentum must be in [0, 1), got {spec.bn_momentum!r}")
    if not float(spec.bn_epsilon) > 0.0:
        raise _fail(None, f"bn_epsilon must be > 0, got {spec.bn_epsilon!r}")
    if not 0.0 <= float(spec.dropout_rate) < 1.0:
        raise _fail(None, f"dropout_rate must be in [0, 1), got {spec.dropout_rate!r}")
    if not (_is_int(spec.num_object_classes) and spec.num_object_classes > 0):
        raise _fail(None, f"num_object_classes must be > 0, got {spec.num_object_classes!r}")
    return spec


# --- flat-list conversion -----------------------------------------------------------------


def _node_from_list(i: int, entry: Any, weights: Any) -> Node:
    if not isinstance(entry, list | tuple) or not entry:
        raise _fail(i, f"expected a list, got {entry!r}")
    head = entry[0]
    if _is_int(head) and head < 0:
        if len(entry) != 2:
            raise _fail(i, f"a stem is [stem_type, temporal_dilation], got {list(entry)!r}")
        if head not in STEM_CODES:
            raise _fail(i, f"unknown stem type {head}; known: -1 rgb, -2 flow, -3 object")
        return StemSpec(kind=STEM_CODES[head], temporal_dilation=entry[1])  # type: ignore[arg-type]
    if len(entry) not in (5, 6):
        raise _fail(
            i,
            "a block is [level, [inputs], num_filters, temporal_dilation, spatial_stride, 0], "
            f"got {list(entry)!r}",
        )
    level, inputs, filters, dilation, stride = entry[:5]
    if not isinstance(inputs, list | tuple):
        raise _fail(i, f"inputs must be a list of node ids, got {inputs!r}")
    if isinstance(filters, list | tuple):
        filters = tuple(filters)
    edge: tuple[float, ...] = ()
    if weights:
        if not (isinstance(weights, list | tuple) and len(weights) == 1):
            raise _fail(i, f"edge weights must be [] or [[w, ...]], got {weights!r}")
        edge = tuple(float(w) for w in weights[0])
    return BlockSpec(
        level=level,
        inputs=tuple(inputs),
        filters=filters,
        temporal_dilation=dilation,
        spatial_stride=stride,
        edge_weights=edge,
    )


def from_flat_lists(
    structure: Sequence[Sequence[Any]],
    weights: Sequence[Any] | None = None,
    **fields: Any,
) -> AssembleNetSpec:
    """Builds a validated spec from the published list format.

    Args:
        structure: nodes as flat lists (see the module docstring).
        weights: one entry per node, ``[]`` or ``[[w per input]]``; None means all learnable.
        **fields: other :class:`AssembleNetSpec` fields (``model_id``, ``attention_mode``, ...).
            ``use_object_input`` defaults to whether the structure has an object stem, and
            ``lite`` to whether block filters are triples.

    Raises:
        StructureError: the lists are malformed or the resulting spec is invalid.
    """
    if weights is not None and len(weights) != len(structure):
        raise _fail(None, f"{len(weights)} edge-weight entries for {len(structure)} nodes")
    nodes = tuple(
        _node_from_list(i, entry, weights[i] if weights is not None else None)
        for i, entry in enumerate(structure)
    )
    fields.setdefault(
        "use_object_input", any(isinstance(n, StemSpec) and n.kind == "object" for n in nodes)
    )
    fields.setdefault(
        "lite", any(isinstance(n, BlockSpec) and isinstance(n.filters, tuple) for n in nodes)
    )
    names = {f.name for f in dataclasses.fields(AssembleNetSpec)} - {"nodes"}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise StructureError(f"unknown AssembleNet spec field(s) {unknown}; valid: {sorted(names)}")
    return validate(AssembleNetSpec(nodes=nodes, **fields))


def to_flat_lists(spec: AssembleNetSpec) -> tuple[list[list[Any]], list[list[list[float]]]]:
    """Returns ``(structure, weights)`` in the published list format."""
    structure: list[list[Any]] = []
    weights: list[list[list[float]]] = []
    for node in spec.nodes:
        if isinstance(node, StemSpec):
            structure.append([STEM_KIND_TO_CODE[node.kind], node.temporal_dilation])
            weights.append([])
            continue
        filters = list(node.filters) if isinstance(node.filters, tuple) else node.filters
        structure.append(
            [
                node.level,
                list(node.inputs),
                filters,
                node.temporal_dilation,
                node.spatial_stride,
                0,
            ]
        )
        weights.append([list(node.edge_weights)] if node.edge_weights else [])
    return structure, weights


def without_stems(spec: AssembleNetSpec, kind: StemKind) -> AssembleNetSpec:
    """Removes every stem of ``kind`` and its edges, re-indexing the remaining nodes.

    Used for ablations such as the RGB-only network (``without_stems(spec, "flow")``). A block
    whose inputs all disappear is removed as well (transitively). Edge weights of surviving
    edges are kept; a block left with one input keeps no weight.

    Raises:
        StructureError: no stem or no level-3 node would remain.
    """
    removed = {i for i, n in spec.stems if n.kind == kind}
    if not removed:
        return spec
    if len(removed) == len(spec.stems):
        raise StructureError(f"removing the {kind} stems would leave the network without stems")
    new_id: dict[int, int] = {}
    nodes: list[Node] = []
    for i, node in enumerate(spec.nodes):
        if i in removed:
            continue
        if isinstance(node, BlockSpec):
            kept = [(j, k) for k, j in enumerate(node.inputs) if j not in removed]
            if not kept:
                removed.add(i)  # fed only by removed nodes
                continue
            weights = (
                tuple(node.edge_weights[k] for _, k in kept)
                if node.edge_weights and len(kept) > 1
                else ()
            )
            node = dataclasses.replace(
                node, inputs=tuple(new_id[j] for j, _ in kept), edge_weights=weights
            )
        new_id[i] = len(nodes)
        nodes.append(node)
    if not any(isinstance(n, BlockSpec) and n.level == 3 for n in nodes):
        raise StructureError(f"removing the {kind} stems would remove every level-3 node")
    changes: dict[str, Any] = {"nodes": tuple(nodes)}
    if kind == "object":
        changes["use_object_input"] = False
    return validate(dataclasses.replace(spec, **changes))


# --- structure files -----------------------------------------------------------------------

_SPEC_FILE_FIELDS = (
    "model_id",
    "combine",
    "attention_mode",
    "use_object_input",
    "num_object_classes",
    "max_pool_predictions",
    "bn_momentum",
    "bn_epsilon",
    "lite",
    "flow_iterations",
    "stem_filters",
    "units_per_level",
    "mid_filters",
    "lite_head_filters",
    "dropout_rate",
)
_TUPLE_FIELDS = {"units_per_level", "mid_filters", "lite_head_filters"}


def spec_to_dict(spec: AssembleNetSpec) -> dict[str, Any]:
    """A JSON-safe dict: the published lists plus the other spec fields under "spec"."""
    structure, weights = to_flat_lists(spec)
    extra = {}
    for name in _SPEC_FILE_FIELDS:
        value = getattr(spec, name)
        extra[name] = list(value) if isinstance(value, tuple) else value
    return {"structure": structure, "edge_weights": weights, "spec": extra}


def spec_from_dict(data: Mapping[str, Any], **overrides: Any) -> AssembleNetSpec:
    """Inverse of :func:`spec_to_dict`; ``overrides`` replace fields from the file."""
    if not isinstance(data, Mapping) or "structure" not in data:
        raise StructureError('a structure file needs a "structure" list')
    fields = dict(data.get("spec") or {})
    unknown = sorted(set(fields) - set(_SPEC_FILE_FIELDS))
    if unknown:
        raise StructureError(f"unknown spec field(s) {unknown} in structure file")
    for name in _TUPLE_FIELDS:
        if fields.get(name) is not None:
            fields[name] = tuple(fields[name])
    fields.update(overrides)
    return from_flat_lists(data["structure"], data.get("edge_weights"), **fields)


def load_structure_file(path: str | os.PathLike[str], key: str | None = None) -> AssembleNetSpec:
    """Reads a structure file written by :func:`save_structure_file` (or the published file).

    Args:
        path: JSON file. Either one structure (``{"structure", "edge_weights", "spec"}``) or a
            collection of named structures, in which case ``key`` picks one.
        key: name of the structure inside a collection file.

    Raises:
        StructureError: the file is missing, is not JSON, or holds an invalid structure.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise StructureError(f"structure file not found: {path}") from error
    except (OSError, json.JSONDecodeError) as error:
        raise StructureError(f"cannot read structure file {path}: {error}") from error
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            names = (
                sorted(k for k in data if not k.startswith("_")) if isinstance(data, dict) else []
            )
            raise StructureError(f"no structure {key!r} in {path}; available: {names}")
        data = data[key]
    return spec_from_dict(data)


def save_structure_file(spec: AssembleNetSpec, path: str | os.PathLike[str]) -> Path:
    """Writes ``spec`` as JSON (published lists + spec fields) atomically; returns the path."""
    validate(spec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(spec_to_dict(spec), handle, indent=1)
            handle.write("\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def published_structure(name: str, **fields: Any) -> AssembleNetSpec:
    """One of the structures shipped in ``assemblenet_structures.json`` as a spec."""
    data = json.loads(_DATA_FILE.read_text())
    if name not in data or name.startswith("_"):
        names = sorted(k for k in data if not k.startswith("_"))
        raise StructureError(f"no published structure {name!r}; available: {names}")
    return from_flat_lists(data[name]["structure"], data[name]["edge_weights"], **fields)


def logit(p: float) -> float:
    """Inverse sigmoid, ``-ln(1/p - 1)``: the initial edge logit for a stored weight p."""
    return -math.log(1.0 / p - 1.0)


def edge_count(spec: AssembleNetSpec) -> int:
    """Number of fused multi-input edges (each has one logit)."""
    return sum(len(n.inputs) for _, n in spec.blocks if len(n.inputs) > 1)
