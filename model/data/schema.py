"""The one TFRecord contract: keys, serialisation, parsing and the label map.

Records are ``tf.train.SequenceExample`` protos in the format TensorFlow Model Garden's video
classification reader parses by default (one JPEG per frame under ``image/encoded``, 0-based labels
under ``clip/label/index``), plus MediaSequence metadata that Model Garden ignores but tools
understand (``example/id``, ``clip/label/string``, ``clip/data_path``, image size, frame rate and
per-frame timestamps in microseconds).

The Beam writer (``components.preprocess``), the ``tf.data`` reader (``model.data.input``), the
serving signature and the tests all import these names, so the format is defined only here.

Building a record does not need TensorFlow: without TF loaded, the same messages are declared
with plain protobuf (see :class:`_ExampleProtos`), so Beam workers stay small. Parsing with
:func:`parse_clip` needs TensorFlow and imports it lazily.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from model.errors import DataError

# Model Garden keys (official/vision/dataloaders/video_input.py).
IMAGE_KEY = "image/encoded"
LABEL_KEY = "clip/label/index"
# MediaSequence metadata keys (mediapipe/util/sequence/media_sequence.py).
EXAMPLE_ID_KEY = "example/id"
LABEL_STRING_KEY = "clip/label/string"
DATA_PATH_KEY = "clip/data_path"
IMAGE_FORMAT_KEY = "image/format"
IMAGE_HEIGHT_KEY = "image/height"
IMAGE_WIDTH_KEY = "image/width"
IMAGE_CHANNELS_KEY = "image/channels"
FRAME_RATE_KEY = "image/frame_rate"
TIMESTAMP_KEY = "image/timestamp"

LABEL_MAP_FILE = "label_map.txt"
STATS_FILE = "stats.json"
SPLITS: tuple[str, ...] = ("train", "val", "test")
TFRECORD_SUFFIX = ".tfrecord"


class _ExampleProtos:
    """Message classes of ``tensorflow/core/example/{feature,example}.proto``, built without TF.

    Importing TensorFlow costs a Beam worker about 600 MB and several seconds, only to build a
    proto. The same messages are declared here at run time under another package name
    (``assemblenet.example``) in a private descriptor pool: the wire format depends only on field
    numbers and types, so the bytes are identical to TF's, and nothing clashes with TF's own
    descriptors when both are loaded in one process.
    """

    def __init__(self) -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        field = descriptor_pb2.FieldDescriptorProto
        package = "assemblenet.example"
        proto = descriptor_pb2.FileDescriptorProto(
            name="assemblenet/example.proto", package=package, syntax="proto3"
        )

        def message(name: str) -> Any:
            return proto.message_type.add(name=name)

        def add(owner: Any, name: str, number: int, kind: int, **extra: Any) -> Any:
            label = extra.pop("label", field.LABEL_OPTIONAL)
            return owner.field.add(name=name, number=number, type=kind, label=label, **extra)

        def ref(name: str) -> str:
            return f".{package}.{name}"

        for name, kind in (
            ("BytesList", field.TYPE_BYTES),
            ("FloatList", field.TYPE_FLOAT),
            ("Int64List", field.TYPE_INT64),
        ):
            add(message(name), "value", 1, kind, label=field.LABEL_REPEATED)
        feature = message("Feature")
        feature.oneof_decl.add(name="kind")
        for number, name in enumerate(("bytes_list", "float_list", "int64_list"), start=1):
            type_name = ref("".join(part.title() for part in name.split("_")))
            add(feature, name, number, field.TYPE_MESSAGE, type_name=type_name, oneof_index=0)

        def map_of(owner: Any, name: str, value_type: str) -> None:
            entry = owner.nested_type.add(name=name.title().replace("_", "") + "Entry")
            entry.options.map_entry = True
            add(entry, "key", 1, field.TYPE_STRING)
            add(entry, "value", 2, field.TYPE_MESSAGE, type_name=ref(value_type))
            add(
                owner,
                name,
                1,
                field.TYPE_MESSAGE,
                type_name=f"{ref(owner.name)}.{entry.name}",
                label=field.LABEL_REPEATED,
            )

        map_of(message("Features"), "feature", "Feature")
        add(
            message("FeatureList"),
            "feature",
            1,
            field.TYPE_MESSAGE,
            type_name=ref("Feature"),
            label=field.LABEL_REPEATED,
        )
        map_of(message("FeatureLists"), "feature_list", "FeatureList")
        add(message("Example"), "features", 1, field.TYPE_MESSAGE, type_name=ref("Features"))
        sequence = message("SequenceExample")
        add(sequence, "context", 1, field.TYPE_MESSAGE, type_name=ref("Features"))
        add(sequence, "feature_lists", 2, field.TYPE_MESSAGE, type_name=ref("FeatureLists"))
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        self.Example = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{package}.Example")
        )
        self.SequenceExample = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{package}.SequenceExample")
        )


_TF_FREE_PROTOS: _ExampleProtos | None = None


def _example_pb2(*, prefer_tensorflow: bool | None = None) -> Any:
    """Return a module-like object with ``Example`` and ``SequenceExample`` classes.

    TensorFlow's ``example_pb2`` is used when TensorFlow is already imported (no extra cost);
    otherwise the TF-free equivalent (:class:`_ExampleProtos`), which writes the same bytes.

    Args:
        prefer_tensorflow: force one implementation (tests); ``None`` decides as above.
    """
    global _TF_FREE_PROTOS
    if prefer_tensorflow is None:
        prefer_tensorflow = "tensorflow" in sys.modules
    if prefer_tensorflow:
        from tensorflow.core.example import example_pb2

        return example_pb2
    if _TF_FREE_PROTOS is None:
        _TF_FREE_PROTOS = _ExampleProtos()
    return _TF_FREE_PROTOS


def serialize_clip(
    jpeg_frames: Sequence[bytes],
    *,
    label_index: int,
    label_name: str,
    example_id: str,
    data_path: str,
    height: int,
    width: int,
    frame_rate: float,
    timestamps_us: Sequence[int],
) -> bytes:
    """Serialise one clip to a ``tf.train.SequenceExample``.

    Args:
        jpeg_frames: T JPEG-encoded RGB frames in presentation order; each step of
            ``image/encoded`` holds exactly one (Model Garden parses one string per step).
        label_index: 0-based class index written to ``clip/label/index``.
        label_name: class name written to ``clip/label/string``.
        example_id: stable id of the clip (also decides its shard).
        data_path: where the source video was read from.
        height: frame height in pixels after any resize.
        width: frame width in pixels after any resize.
        frame_rate: frames per second of the stored frames.
        timestamps_us: T presentation timestamps in microseconds.

    Returns:
        The serialised proto bytes.

    Raises:
        DataError: no frames, or frame and timestamp counts differ.
    """
    return _serialize(
        jpeg_frames,
        label_index=label_index,
        label_name=label_name,
        example_id=example_id,
        data_path=data_path,
        height=height,
        width=width,
        frame_rate=frame_rate,
        timestamps_us=timestamps_us,
        protos=_example_pb2(),
    )


def _serialize(
    jpeg_frames: Sequence[bytes],
    *,
    label_index: int,
    label_name: str,
    example_id: str,
    data_path: str,
    height: int,
    width: int,
    frame_rate: float,
    timestamps_us: Sequence[int],
    protos: Any,
) -> bytes:
    if not jpeg_frames:
        raise DataError(f"clip {example_id!r} has no frames")
    if len(timestamps_us) != len(jpeg_frames):
        raise DataError(
            f"clip {example_id!r}: {len(jpeg_frames)} frames but {len(timestamps_us)} timestamps"
        )
    example = protos.SequenceExample()
    context = example.context.feature
    context[LABEL_KEY].int64_list.value.append(int(label_index))
    context[LABEL_STRING_KEY].bytes_list.value.append(label_name.encode())
    context[EXAMPLE_ID_KEY].bytes_list.value.append(example_id.encode())
    context[DATA_PATH_KEY].bytes_list.value.append(data_path.encode())
    context[IMAGE_FORMAT_KEY].bytes_list.value.append(b"JPEG")
    context[IMAGE_HEIGHT_KEY].int64_list.value.append(int(height))
    context[IMAGE_WIDTH_KEY].int64_list.value.append(int(width))
    context[IMAGE_CHANNELS_KEY].int64_list.value.append(3)
    context[FRAME_RATE_KEY].float_list.value.append(float(frame_rate))
    lists = example.feature_lists.feature_list
    images = lists[IMAGE_KEY].feature
    for frame in jpeg_frames:
        images.add().bytes_list.value.append(frame)
    stamps = lists[TIMESTAMP_KEY].feature
    for stamp in timestamps_us:
        stamps.add().int64_list.value.append(int(stamp))
    # Deterministic: map keys sorted, so identical clips give identical bytes in any process.
    return example.SerializeToString(deterministic=True)


def model_garden_parse_spec() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(context_features, sequence_features)`` exactly as Model Garden's ``Decoder``.

    ``image/encoded`` is ``FixedLenSequenceFeature((), tf.string)`` (shape ``[T]``) and
    ``clip/label/index`` is ``VarLenFeature(tf.int64)``.
    """
    import tensorflow as tf

    context = {LABEL_KEY: tf.io.VarLenFeature(tf.int64)}
    sequence = {IMAGE_KEY: tf.io.FixedLenSequenceFeature((), tf.string)}
    return context, sequence


def full_parse_spec() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the parse spec for every key this module writes (metadata included)."""
    import tensorflow as tf

    context, sequence = model_garden_parse_spec()
    context.update(
        {
            LABEL_STRING_KEY: tf.io.FixedLenFeature((), tf.string, default_value=""),
            EXAMPLE_ID_KEY: tf.io.FixedLenFeature((), tf.string, default_value=""),
            DATA_PATH_KEY: tf.io.FixedLenFeature((), tf.string, default_value=""),
            IMAGE_HEIGHT_KEY: tf.io.FixedLenFeature((), tf.int64, default_value=0),
            IMAGE_WIDTH_KEY: tf.io.FixedLenFeature((), tf.int64, default_value=0),
            FRAME_RATE_KEY: tf.io.FixedLenFeature((), tf.float32, default_value=0.0),
        }
    )
    sequence[TIMESTAMP_KEY] = tf.io.FixedLenSequenceFeature((), tf.int64, allow_missing=True)
    return context, sequence


def parse_clip(serialized: Any, *, with_metadata: bool = False) -> dict[str, Any]:
    """Parse one serialised clip (works eagerly and inside ``tf.data.Dataset.map``).

    Args:
        serialized: scalar string tensor (or bytes) holding one SequenceExample.
        with_metadata: also parse the MediaSequence metadata keys.

    Returns:
        ``{"image/encoded": string [T], "clip/label/index": int64 [k]}`` (labels densified), plus
        the metadata keys (scalars; ``image/timestamp`` int64 [T]) when ``with_metadata``.
    """
    import tensorflow as tf

    context_spec, sequence_spec = full_parse_spec() if with_metadata else model_garden_parse_spec()
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=context_spec, sequence_features=sequence_spec
    )
    parsed: dict[str, Any] = {**context, **sequence}
    parsed[LABEL_KEY] = tf.sparse.to_dense(context[LABEL_KEY])
    return parsed


def parse_clip_proto(serialized: bytes) -> dict[str, Any]:
    """Parse a record in plain Python (no TF graph), e.g. for tools and tests.

    Returns:
        ``{"frames": list[bytes], "label_index": int, "label_name": str, "example_id": str,
        "data_path": str, "height": int, "width": int, "frame_rate": float,
        "timestamps_us": list[int]}``.
    """
    example = _example_pb2().SequenceExample.FromString(serialized)
    context = example.context.feature
    lists = example.feature_lists.feature_list

    def _bytes(key: str) -> str:
        values = context[key].bytes_list.value
        return values[0].decode() if values else ""

    def _int(key: str) -> int:
        values = context[key].int64_list.value
        return int(values[0]) if values else 0

    return {
        "frames": [step.bytes_list.value[0] for step in lists[IMAGE_KEY].feature],
        "label_index": _int(LABEL_KEY),
        "label_name": _bytes(LABEL_STRING_KEY),
        "example_id": _bytes(EXAMPLE_ID_KEY),
        "data_path": _bytes(DATA_PATH_KEY),
        "height": _int(IMAGE_HEIGHT_KEY),
        "width": _int(IMAGE_WIDTH_KEY),
        "frame_rate": float(context[FRAME_RATE_KEY].float_list.value[0])
        if context[FRAME_RATE_KEY].float_list.value
        else 0.0,
        "timestamps_us": [int(step.int64_list.value[0]) for step in lists[TIMESTAMP_KEY].feature],
    }


def format_label_map(names: Iterable[str]) -> str:
    """Return the label-map file text: one class name per line, in index order."""
    names = list(names)
    _check_names(names, "label map")
    return "".join(f"{name}\n" for name in names)


def _check_names(names: Sequence[str], where: str) -> None:
    if not names:
        raise DataError(f"{where} has no classes")
    for name in names:
        if not name or name != name.strip() or "\n" in name:
            raise DataError(f"{where}: invalid class name {name!r}")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{where}: duplicate class names {duplicates}")


def write_label_map(path: str | Path, names: Sequence[str]) -> Path:
    """Write ``label_map.txt`` atomically (temporary name, then rename).

    Args:
        path: the file to write, or a directory (then ``<dir>/label_map.txt``).
        names: class names in index order.

    Returns:
        The written path.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LABEL_MAP_FILE
    text = format_label_map(names)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def parse_label_map(text: str, where: str = "label map") -> list[str]:
    """Parse label-map text (blank lines ignored) into class names in index order."""
    names = [line.strip() for line in text.splitlines() if line.strip()]
    _check_names(names, where)
    return names


def read_label_map(path: str | Path) -> list[str]:
    """Read a label map; ``path`` may be the file, a data directory, or a ``gs://`` URI.

    Raises:
        DataError: the file is missing, empty or has duplicate names.
    """
    import_path = str(path)
    if not import_path.endswith(".txt"):
        import_path = import_path.rstrip("/") + "/" + LABEL_MAP_FILE
    if "://" in import_path:
        import tensorflow as tf

        try:
            text = tf.io.gfile.GFile(import_path, "r").read()
        except tf.errors.NotFoundError as error:
            raise DataError(f"label map not found: {import_path}") from error
    else:
        try:
            text = Path(import_path).read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise DataError(f"label map not found: {import_path}") from error
    return parse_label_map(text, import_path)


def shard_name(split: str, index: int, num_shards: int) -> str:
    """Return the file name of one shard, e.g. ``train-00003-of-00016.tfrecord``."""
    return f"{split}-{index:05d}-of-{num_shards:05d}{TFRECORD_SUFFIX}"


def split_pattern(data_dir: str, split: str) -> str:
    """Return the glob matching every shard of ``split`` under ``data_dir``."""
    return f"{str(data_dir).rstrip('/')}/{split}-*-of-*{TFRECORD_SUFFIX}"


def read_stats(data_dir: str | Path) -> dict[str, Any]:
    """Read ``stats.json`` from a data directory (local or ``gs://``)."""
    import json

    path = f"{str(data_dir).rstrip('/')}/{STATS_FILE}"
    if "://" in path:
        import tensorflow as tf

        try:
            return json.loads(tf.io.gfile.GFile(path, "r").read())
        except tf.errors.NotFoundError as error:
            raise DataError(f"stats file not found: {path}") from error
    with contextlib.suppress(FileNotFoundError):
        return json.loads(Path(path).read_text(encoding="utf-8"))
    raise DataError(f"stats file not found: {path}")
