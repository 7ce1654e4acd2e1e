"""Structure specs: published lists round trip, validation messages, ablations, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.errors import ConfigError, StructureError
from model.presets import PRESETS, get_preset
from model.structures import (
    BlockSpec,
    StemSpec,
    from_flat_lists,
    load_structure_file,
    published_structure,
    save_structure_file,
    to_flat_lists,
    validate,
    without_stems,
)

DATA = Path(__file__).resolve().parents[2] / "model" / "assemblenet_structures.json"
ASN50 = json.loads(DATA.read_text())["asn50"]


@pytest.mark.parametrize("name", ["asn50", "asn101", "asnp50_full", "asnp_lite"])
def test_published_structures_round_trip(name: str) -> None:
    data = json.loads(DATA.read_text())[name]
    spec = published_structure(name)
    structure, weights = to_flat_lists(spec)
    assert structure == data["structure"]
    assert weights == data["edge_weights"]


def test_asn50_is_typed() -> None:
    spec = published_structure("asn50")
    assert spec.nodes[0] == StemSpec("rgb", 4)
    assert spec.nodes[2] == StemSpec("flow", 1)
    node6 = spec.nodes[6]
    assert isinstance(node6, BlockSpec)
    assert node6.inputs == (0, 1, 2, 3)
    assert node6.edge_weights[1] == pytest.approx(0.8465, abs=1e-4)
    assert spec.final_nodes == [14]
    assert spec.resolved_stem_filters() == 32
    assert get_preset("assemblenet_plus50_full").resolved_stem_filters() == 25
    assert get_preset("assemblenet_plus_lite").resolved_stem_filters() == 24


def _bad(structure: list, weights: list | None = None, **fields: object) -> str:
    with pytest.raises(StructureError) as info:
        from_flat_lists(structure, weights, **fields)
    return str(info.value)


GOOD = [[-1, 1], [-2, 1], [0, [0, 1], 8, 1, 1, 0], [3, [2], 8, 1, 2, 0]]


def test_good_small_structure_validates() -> None:
    spec = from_flat_lists(GOOD)
    assert validate(spec) is spec


@pytest.mark.parametrize(
    ("structure", "weights", "expected"),
    [
        ([[-1, 1], [0, [1], 8, 1, 1, 0], [3, [1], 8, 1, 1, 0]], None, "node 1: input 1"),
        ([[-1, 1], [0, [5], 8, 1, 1, 0], [3, [1], 8, 1, 1, 0]], None, "node 1: input 5"),
        ([[-1, 1], [4, [0], 8, 1, 1, 0], [3, [1], 8, 1, 1, 0]], None, "node 1: level must be"),
        ([[-7, 1], [3, [0], 8, 1, 1, 0]], None, "node 0: unknown stem type -7"),
        ([[-1, 1], [3, [0], 0, 1, 1, 0]], None, "node 1: filters must be a positive"),
        ([[-1, 1], [3, [0], [4, 4], 1, 1, 0]], None, "node 1: lite blocks need filters"),
        ([[-1, 1], [0, [0], 8, 1, 1, 0]], None, "at least one level-3 node"),
        ([[-1, 1], [0, [], 8, 1, 1, 0], [3, [1], 8, 1, 1, 0]], None, "node 1: a block needs"),
        ([[-1, 1], [3, [0], 8, 0, 1, 0]], None, "node 1: temporal_dilation"),
        ([[-1, 1], [3, [0]]], None, "node 1: a block is"),
        (GOOD, [[], [], [[0.5]], []], "node 2: 1 edge weights for 2 inputs"),
        (GOOD, [[], [], [[0.5, 1.5]], []], "node 2: edge weights are post-sigmoid"),
        (GOOD, [[], []], "2 edge-weight entries for 4 nodes"),
    ],
)
def test_validation_names_the_problem(structure: list, weights: list | None, expected: str) -> None:
    assert expected in _bad(structure, weights)


def test_lite_needs_triples_and_object_stem_needs_flag() -> None:
    assert "lite blocks need filters" in _bad(GOOD, lite=True)
    structure = [[-1, 1], [-3, 1], [0, [0, 1], 8, 1, 1, 0], [3, [2], 8, 1, 2, 0]]
    assert "use_object_input" in _bad(structure, use_object_input=False)
    assert "combine must be" in _bad(GOOD, combine="softmax")
    assert "attention_mode must be" in _bad(GOOD, attention_mode="None")
    assert "unknown AssembleNet spec field" in _bad(GOOD, colour="red")


def test_spec_replace_rejects_unknown_and_invalid_fields() -> None:
    spec = from_flat_lists(GOOD)
    assert spec.replace(bn_momentum=0.9).bn_momentum == 0.9
    with pytest.raises(StructureError, match="unknown AssembleNet spec field"):
        spec.replace(momentum=0.9)
    with pytest.raises(StructureError, match="bn_momentum"):
        spec.replace(bn_momentum=1.5)


def test_without_flow_stems_reindexes_and_drops_orphans() -> None:
    rgb = without_stems(published_structure("asn50"), "flow")
    structure, weights = to_flat_lists(rgb)
    assert [n for n in structure if n[0] == -2] == []
    # Stems 2, 3 go, and node 7 (fed only by them) with them: 12 nodes remain.
    assert len(structure) == 12
    # Old node 6 = [0,[0,1,2,3]] keeps its two RGB inputs and their weights.
    assert structure[4] == [0, [0, 1], 32, 1, 1, 0]
    assert weights[4] == [ASN50["edge_weights"][6][0][:2]]
    # Old node 9 = [1,[0,2,4,7]] keeps inputs 0 and 4 (now ids 0 and 2).
    assert structure[6] == [1, [0, 2], 64, 1, 2, 0]
    w9 = ASN50["edge_weights"][9][0]
    assert weights[6] == [[w9[0], w9[2]]]
    # The final node [3,[12,13]] is re-indexed.
    assert structure[-1] == [3, [9, 10], 512, 2, 2, 0]


def test_without_stems_fails_when_nothing_is_left() -> None:
    structure = [[-1, 1], [-2, 1], [0, [1], 8, 1, 1, 0], [3, [2], 8, 1, 2, 0]]
    with pytest.raises(StructureError, match="every level-3 node"):
        without_stems(from_flat_lists(structure), "flow")
    flow_only = without_stems(from_flat_lists(GOOD), "rgb")
    assert to_flat_lists(flow_only)[0] == [[-2, 1], [0, [0], 8, 1, 1, 0], [3, [1], 8, 1, 2, 0]]
    with pytest.raises(StructureError, match="without stems"):
        without_stems(flow_only, "flow")


def test_structure_file_round_trip(tmp_path: Path) -> None:
    spec = get_preset("tiny_plus").replace(bn_momentum=0.9)
    path = save_structure_file(spec, tmp_path / "sub" / "s.json")
    assert load_structure_file(path) == spec
    assert not list(path.parent.glob(".*tmp"))
    assert load_structure_file(DATA, key="asn50") == published_structure("asn50")
    with pytest.raises(StructureError, match="available"):
        load_structure_file(DATA, key="asn18")
    with pytest.raises(StructureError, match="not found"):
        load_structure_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StructureError, match="cannot read"):
        load_structure_file(tmp_path / "bad.json")


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"valid presets: .*assemblenet50.*tiny"):
        get_preset("assemblenet18")
    for name in (
        "assemblenet50",
        "assemblenet101",
        "assemblenet_plus50",
        "assemblenet_plus50_full",
        "assemblenet_plus_lite",
        "tiny",
        "tiny_plus",
        "tiny_lite",
    ):
        assert name in PRESETS
