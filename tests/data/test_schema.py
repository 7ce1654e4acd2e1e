"""The record contract: Model Garden's parse spec, metadata, label map."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from model.data import schema
from model.data.video_io import decode_jpeg, encode_jpeg
from model.errors import DataError


def _frames(count: int) -> list[bytes]:
    return [encode_jpeg(np.full((8, 10, 3), 20 * i, np.uint8)) for i in range(count)]


def _record(count: int = 5) -> bytes:
    return schema.serialize_clip(
        _frames(count),
        label_index=2,
        label_name="MoveUp",
        example_id="v_MoveUp_g01_c01",
        data_path="/videos/MoveUp/v_MoveUp_g01_c01.avi",
        height=8,
        width=10,
        frame_rate=25.0,
        timestamps_us=[40_000 * i for i in range(count)],
    )


def test_record_parses_with_exactly_model_gardens_spec() -> None:
    # The spec Model Garden's video_input.Decoder uses, written out here independently.
    context, sequence = tf.io.parse_single_sequence_example(
        _record(5),
        context_features={"clip/label/index": tf.io.VarLenFeature(tf.int64)},
        sequence_features={"image/encoded": tf.io.FixedLenSequenceFeature((), tf.string)},
    )
    assert sequence["image/encoded"].shape == (5,)
    assert tf.sparse.to_dense(context["clip/label/index"]).numpy().tolist() == [2]
    decoded = [decode_jpeg(data)[0, 0, 0] for data in sequence["image/encoded"].numpy()]
    assert np.allclose(decoded, [0, 20, 40, 60, 80], atol=2)
    # Our spec is the same spec.
    ours_context, ours_sequence = schema.model_garden_parse_spec()
    assert ours_context == {"clip/label/index": tf.io.VarLenFeature(tf.int64)}
    assert ours_sequence == {"image/encoded": tf.io.FixedLenSequenceFeature((), tf.string)}


def test_metadata_round_trip_in_tf_and_plain_python() -> None:
    parsed = schema.parse_clip(tf.constant(_record(3)), with_metadata=True)
    assert parsed[schema.EXAMPLE_ID_KEY].numpy() == b"v_MoveUp_g01_c01"
    assert parsed[schema.LABEL_STRING_KEY].numpy() == b"MoveUp"
    assert int(parsed[schema.IMAGE_HEIGHT_KEY]) == 8
    assert int(parsed[schema.IMAGE_WIDTH_KEY]) == 10
    assert float(parsed[schema.FRAME_RATE_KEY]) == 25.0
    assert parsed[schema.TIMESTAMP_KEY].numpy().tolist() == [0, 40_000, 80_000]
    plain = schema.parse_clip_proto(_record(3))
    assert plain["label_index"] == 2
    assert plain["example_id"] == "v_MoveUp_g01_c01"
    assert plain["timestamps_us"] == [0, 40_000, 80_000]
    assert plain["frames"] == _frames(3)


def test_parse_inside_tf_data_map_matches_eager() -> None:
    records = [_record(2), _record(4)]
    mapped = list(tf.data.Dataset.from_tensor_slices(records).map(schema.parse_clip))
    for record, graph in zip(records, mapped, strict=True):
        eager = schema.parse_clip(tf.constant(record))
        assert graph[schema.IMAGE_KEY].numpy().tolist() == eager[schema.IMAGE_KEY].numpy().tolist()


def test_serialize_rejects_inconsistent_input() -> None:
    with pytest.raises(DataError, match="no frames"):
        schema.serialize_clip(
            [],
            label_index=0,
            label_name="a",
            example_id="x",
            data_path="p",
            height=1,
            width=1,
            frame_rate=1.0,
            timestamps_us=[],
        )
    with pytest.raises(DataError, match="timestamps"):
        schema.serialize_clip(
            _frames(2),
            label_index=0,
            label_name="a",
            example_id="x",
            data_path="p",
            height=1,
            width=1,
            frame_rate=1.0,
            timestamps_us=[0],
        )


def test_label_map_round_trip_and_errors(tmp_path: Path) -> None:
    path = schema.write_label_map(tmp_path, ["B", "A", "C"])
    assert path.name == "label_map.txt"
    assert path.read_text() == "B\nA\nC\n"
    assert schema.read_label_map(tmp_path) == ["B", "A", "C"]
    assert schema.read_label_map(path) == ["B", "A", "C"]
    with pytest.raises(DataError, match="duplicate"):
        schema.write_label_map(tmp_path / "x.txt", ["A", "A"])
    with pytest.raises(DataError, match="not found"):
        schema.read_label_map(tmp_path / "missing")
    assert schema.shard_name("train", 3, 16) == "train-00003-of-00016.tfrecord"


def test_tf_free_records_are_byte_identical_to_tensorflows() -> None:
    fields = {
        "label_index": 4,
        "label_name": "Expand",
        "example_id": "v_Expand_g01_c02",
        "data_path": "gs://bucket/videos/Expand/v_Expand_g01_c02.avi",
        "height": 8,
        "width": 10,
        "frame_rate": 29.97,
        "timestamps_us": [0, 33_367, 66_733],
    }
    frames = _frames(3)
    free = schema._serialize(frames, protos=schema._example_pb2(prefer_tensorflow=False), **fields)
    with_tf = schema._serialize(
        frames, protos=schema._example_pb2(prefer_tensorflow=True), **fields
    )
    assert free == with_tf
    assert schema.parse_clip_proto(free)["timestamps_us"] == [0, 33_367, 66_733]


def test_writing_records_does_not_import_tensorflow() -> None:
    # Beam workers only decode, encode and serialise: TensorFlow (~600 MB) must stay out.
    code = (
        "import sys\n"
        "from model.data import schema, video_io\n"
        "import numpy as np\n"
        "jpeg = video_io.encode_jpeg(np.zeros((8, 8, 3), np.uint8))\n"
        "schema.serialize_clip([jpeg], label_index=0, label_name='a', example_id='x',"
        " data_path='p', height=8, width=8, frame_rate=25.0, timestamps_us=[0])\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
