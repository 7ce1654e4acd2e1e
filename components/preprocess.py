"""Beam job: raw videos to sharded TFRecords of SequenceExamples (``assemblenet data preprocess``).

Sources:

* ``ucf101``: a videos root plus the official ``ucfTrainTestlist`` folder (``classInd.txt``,
  ``trainlist0N.txt``, ``testlist0N.txt``) for split N. File names are matched case-insensitively
  (the lists say ``v_HandStandPushups_*`` where the archive has ``v_HandstandPushups_*``), in the
  class-folder layout or the flat one.
* ``manifest``: a CSV with header ``path,label[,split]``; relative paths resolve against the
  manifest's folder; without a split column the split is drawn deterministically from the id.
* ``folders``: one folder per class; the split is drawn deterministically from the id.

Paths may be local or ``gs://`` (Beam ``FileSystems``; videos are streamed, never copied).

Graph: the driver groups the clips into shard plans (``crc32(example_id) % shards`` per split,
clips in a fixed class-mixing order) and writes them to a JSON-lines file in a work folder under
the output; the job is ``ReadFromText(plans) -> Reshuffle -> EncodeShard``. The graph is the same
few transforms whatever the dataset size (a clip list embedded with ``Create`` would grow the
Dataflow job graph past its size limit for Kinetics), and only the small plans are shuffled.
``EncodeShard`` decodes each shard's clips one at a time, writes them straight to a temporary file
that is renamed when complete, then writes the shard's result (clip and frame counts, dead
letters) next to the plans; so worker memory stays flat, a retried shard overwrites its own files,
and reruns give byte-identical shards. After the job the driver merges the results into
``dead_letter.jsonl`` (path, split, example_id, reason, error), ``label_map.txt`` and
``stats.json``, and fails (``DataError``) when the failure fraction exceeds
``max_failure_fraction``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import math
import posixpath
import re
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from model.data import schema
from model.data.video_io import REASON_ERROR, REASON_MISSING, VideoDecodeError
from model.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# Failure reasons of the isolated decoder (the others come from model.data.video_io).
REASON_CRASHED = "decoder_crashed"
REASON_TIMEOUT = "timeout"

SOURCES: tuple[str, ...] = ("ucf101", "manifest", "folders")
RUNNERS: tuple[str, ...] = ("DirectRunner", "DataflowRunner")
VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")
DEAD_LETTER_NAME = "dead_letter"
# About 2.8 MB per UCF101 clip at q90: 50 clips is a ~150 MB shard.
DEFAULT_CLIPS_PER_SHARD = 50
# Shards are the parallel work units: enough of them to keep a laptop's or a few hosts' cores busy.
MIN_AUTO_SHARDS = 8
STATS_VERSION = 1


@dataclass(frozen=True)
class ClipItem:
    """One input clip as listed by a source (resolved on the driver).

    Attributes:
        example_id: stable unique id (file stem for UCF101, relative path otherwise).
        path: where to read the video, or ``""`` when the listed file does not exist.
        listed_path: the path as the list named it (for dead letters).
        label_name: class name.
        label_index: 0-based class index.
        split: ``train``, ``val`` or ``test``.
    """

    example_id: str
    path: str
    listed_path: str
    label_name: str
    label_index: int
    split: str


@dataclass(frozen=True)
class PreprocessOptions:
    """Everything ``run_preprocess`` needs (the CLI flags, typed).

    Attributes:
        source: ``ucf101``, ``manifest`` or ``folders``.
        out: output folder (local or ``gs://``).
        videos: videos root (``ucf101``, ``folders``).
        splits: folder with ``classInd.txt`` and the split lists (``ucf101``).
        split: UCF101 split number, 1..3.
        manifest: CSV path (``manifest``).
        test_fraction: held-out fraction when the source has no split (``folders``, manifest
            without a split column), drawn from crc32 of the id.
        num_shards: shards per split (0: about one per ``clips_per_shard`` clips).
        clips_per_shard: target clips per shard when ``num_shards`` is 0.
        jpeg_quality: JPEG quality of stored frames.
        short_side: resize the short side to this (``None``: native size).
        fps: downsample to this frame rate (``None``: native).
        min_frames: clips with fewer decoded frames are dead letters (``too_short``).
        min_frame_fraction: clips decoding fewer than this fraction of the header's frame count
            are dead letters (``truncated``).
        max_failure_fraction: fail the job when more than this fraction of clips fail.
        isolate_decoder: decode each clip in a long-lived child process (one per worker
            process), so that a decoder crash (segfault) or hang costs that one clip
            (``decoder_crashed`` / ``timeout``) instead of the worker and, after the runner's
            retries, the job. Off by default: it costs a child start-up (a few seconds) per
            worker and about 10 % CPU for moving the records between processes.
        decode_timeout_s: with ``isolate_decoder``, give up on a clip after this many seconds.
        runner: ``DirectRunner`` or ``DataflowRunner``.
        direct_num_workers: DirectRunner processes (0: all cores).
        direct_running_mode: ``multi_processing``, ``multi_threading`` or ``in_memory``.
        project, region, temp_location, staging_location, machine_type, max_num_workers,
        sdk_container_image, service_account_email, network, subnetwork, no_use_public_ips,
        job_name: DataflowRunner options (standard Beam flag names).
        extra_beam_args: further Beam flags passed through unchanged.
    """

    source: str
    out: str
    videos: str | None = None
    splits: str | None = None
    split: int = 1
    manifest: str | None = None
    test_fraction: float = 0.2
    num_shards: int = 0
    clips_per_shard: int = DEFAULT_CLIPS_PER_SHARD
    jpeg_quality: int = 90
    short_side: int | None = None
    fps: float | None = None
    min_frames: int = 1
    min_frame_fraction: float = 0.9
    max_failure_fraction: float = 0.05
    isolate_decoder: bool = False
    decode_timeout_s: float = 600.0
    runner: str = "DirectRunner"
    direct_num_workers: int = 0
    direct_running_mode: str = "multi_processing"
    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    staging_location: str | None = None
    machine_type: str | None = None
    max_num_workers: int | None = None
    sdk_container_image: str | None = None
    service_account_email: str | None = None
    network: str | None = None
    subnetwork: str | None = None
    no_use_public_ips: bool = False
    job_name: str | None = None
    extra_beam_args: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid or missing option."""
        if self.source not in SOURCES:
            raise ConfigError(f"--source must be one of {list(SOURCES)}, got {self.source!r}")
        if self.source in ("ucf101", "folders") and not self.videos:
            raise ConfigError(f"--source {self.source} needs --videos")
        if self.source == "ucf101" and not self.splits:
            raise ConfigError("--source ucf101 needs --splits (the ucfTrainTestlist folder)")
        if self.source == "ucf101" and self.split not in (1, 2, 3):
            raise ConfigError(f"--split must be 1, 2 or 3, got {self.split}")
        if self.source == "manifest" and not self.manifest:
            raise ConfigError("--source manifest needs --manifest")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"--test-fraction must be in [0, 1), got {self.test_fraction}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"--jpeg-quality must be in [1, 100], got {self.jpeg_quality}")
        if not 0.0 <= self.max_failure_fraction <= 1.0:
            raise ConfigError("--max-failure-fraction must be in [0, 1]")
        if self.decode_timeout_s <= 0:
            raise ConfigError(f"--decode-timeout-s must be > 0, got {self.decode_timeout_s}")
        if self.num_shards < 0 or self.clips_per_shard < 1:
            raise ConfigError("--num-shards must be >= 0 and --clips-per-shard >= 1")
        if self.runner not in RUNNERS:
            raise ConfigError(f"--runner must be one of {list(RUNNERS)}, got {self.runner!r}")
        if self.runner == "DataflowRunner":
            _validate_dataflow(self)


def _validate_dataflow(options: PreprocessOptions) -> None:
    missing = [
        flag
        for flag, value in (
            ("--project", options.project),
            ("--region", options.region),
            ("--temp-location", options.temp_location),
            ("--sdk-container-image", options.sdk_container_image),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"DataflowRunner needs {', '.join(missing)} (the SDK container image carries PyAV, "
            "simplejpeg and this package to the workers)"
        )
    remote = {"--out": options.out, "--temp-location": options.temp_location}
    for name in ("videos", "splits", "manifest", "staging_location"):
        value = getattr(options, name)
        if value:
            remote["--" + name.replace("_", "-")] = value
    local = [flag for flag, value in remote.items() if value and not value.startswith("gs://")]
    if local:
        raise ConfigError(
            f"DataflowRunner workers cannot read local paths: {', '.join(local)} must be gs:// URIs"
        )
    if options.max_num_workers is not None and options.max_num_workers < 1:
        raise ConfigError("--max-num-workers must be >= 1")


class LocalWorkerLogFilter(logging.Filter):
    """Keep what matters of the DirectRunner's forwarded worker logs, as plain lines.

    In multi-processing mode every log record of every worker comes back to the driver as one
    ``Worker: <LogEntry proto in text form>`` line, including the SDK harness's start-up chatter.
    This keeps the job's own lines (logged from ``components/`` or ``model/``: shard progress)
    and anything at WARNING or above, rewritten as ``worker: <message>``, and drops the rest.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "Worker: %s" or not record.args:
            return True
        entry = str(record.args[0] if isinstance(record.args, tuple) else record.args)
        message = _text_field(entry, "message")
        location = _text_field(entry, "log_location") or ""
        ours = any(f"/{package}/" in location for package in ("components", "model"))
        if record.levelno < logging.WARNING and not ours:
            return False
        record.msg, record.args = "worker: %s", (message,)
        return True


def _text_field(entry: str, name: str) -> str | None:
    """The unescaped value of ``name: "..."`` in a protobuf text-format string."""
    match = re.search(name + r': "((?:[^"\\]|\\.)*)"', entry)
    if match is None:
        return None
    return match.group(1).encode("latin-1", "backslashreplace").decode("unicode_escape")


def quiet_local_runner_logs() -> None:
    """Install :class:`LocalWorkerLogFilter` and silence Beam's INFO-level type-hint notes."""
    job_service = logging.getLogger("apache_beam.runners.portability.local_job_service")
    if not any(isinstance(f, LocalWorkerLogFilter) for f in job_service.filters):
        job_service.addFilter(LocalWorkerLogFilter())
    logging.getLogger("apache_beam.typehints.native_type_compatibility").setLevel(logging.WARNING)


def build_pipeline_options(options: PreprocessOptions) -> PipelineOptions:
    """Translate typed options to Beam ``PipelineOptions`` (validated first).

    DirectRunner runs Beam's FnApiRunner with ``direct_num_workers`` processes (0 = every core)
    in ``direct_running_mode``. DataflowRunner gets the
    standard Google Cloud and worker flags; no request is made here.
    """
    options.validate()
    if options.runner == "DirectRunner":
        quiet_local_runner_logs()
        # The DirectRunner would first try to download and start the Prism runner (a network
        # fetch, and it ignores the worker settings); its FnApiRunner engine is what runs the
        # job with `direct_num_workers` processes, offline.
        args = [
            "--runner=FnApiRunner",
            f"--direct_num_workers={options.direct_num_workers}",
            f"--direct_running_mode={options.direct_running_mode}",
        ]
    else:
        args = [f"--runner={options.runner}"]
        flags: dict[str, Any] = {
            "project": options.project,
            "region": options.region,
            "temp_location": options.temp_location,
            "staging_location": options.staging_location,
            "machine_type": options.machine_type,
            "max_num_workers": options.max_num_workers,
            "sdk_container_image": options.sdk_container_image,
            "service_account_email": options.service_account_email,
            "network": options.network,
            "subnetwork": options.subnetwork,
            "job_name": options.job_name,
        }
        args += [f"--{name}={value}" for name, value in flags.items() if value is not None]
        if options.no_use_public_ips:
            args.append("--no_use_public_ips")
    return PipelineOptions([*args, *options.extra_beam_args])


# ----------------------------------------------------------------------------------------------
# Sources (driver side: small lists only).


def _join(root: str, relative: str) -> str:
    if "://" in root:
        return root.rstrip("/") + "/" + relative.lstrip("/")
    return posixpath.normpath(posixpath.join(root, relative))


def _read_text(path: str) -> str:
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return handle.read().decode("utf-8-sig")
    except Exception as error:  # Beam wraps IO errors in several types per filesystem
        raise DataError(f"cannot read {path}: {error}") from error


def _write_text_atomic(path: str, text: str) -> None:
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as sink:
        sink.write(text.encode("utf-8"))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def _list_videos(root: str) -> list[str]:
    """All video files under ``root`` (recursive), sorted."""
    pattern = _join(root, "**")
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception as error:
        raise DataError(f"cannot list videos under {root}: {error}") from error
    paths = sorted(m.path for m in matched if m.path.lower().endswith(VIDEO_EXTENSIONS))
    if not paths:
        raise DataError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {root}")
    return paths


def _relative(path: str, root: str) -> str:
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else posixpath.basename(path)


def _hash_fraction(example_id: str) -> float:
    return (zlib.crc32(example_id.encode()) % 10_000) / 10_000


def _stem(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


def ucf101_items(videos: str, splits: str, split: int) -> tuple[list[str], list[ClipItem]]:
    """List the clips of UCF101 split ``split``; returns ``(class_names, items)``.

    Class indices are ``classInd.txt`` minus one. Listed files are found by relative path, then
    case-insensitively, then by file name alone (flat archive layout); files that still are not
    found become items with an empty ``path`` (reported as ``missing``).
    """
    class_lines = _read_text(_join(splits, "classInd.txt")).split()
    if len(class_lines) % 2:
        raise DataError(f"{_join(splits, 'classInd.txt')}: expected '<index> <name>' lines")
    indexed = sorted(
        (int(class_lines[i]), class_lines[i + 1]) for i in range(0, len(class_lines), 2)
    )
    names = [name for _, name in indexed]
    if [index for index, _ in indexed] != list(range(1, len(names) + 1)):
        raise DataError("classInd.txt indices must be 1..N without gaps")
    by_lower = {name.lower(): i for i, name in enumerate(names)}
    available = _list_videos(videos)
    exact = {_relative(path, videos): path for path in available}
    lower = {key.lower(): path for key, path in exact.items()}
    by_name = {posixpath.basename(path).lower(): path for path in available}
    items: list[ClipItem] = []
    for split_name, list_name in (
        ("train", f"trainlist0{split}.txt"),
        ("test", f"testlist0{split}.txt"),
    ):
        for line in _read_text(_join(splits, list_name)).splitlines():
            if not line.strip():
                continue
            listed = line.split()[0]
            class_folder = listed.split("/")[0] if "/" in listed else _ucf_class_of(listed)
            if class_folder.lower() not in by_lower:
                raise DataError(f"{list_name}: class {class_folder!r} is not in classInd.txt")
            index = by_lower[class_folder.lower()]
            path = (
                exact.get(listed)
                or lower.get(listed.lower())
                or by_name.get(posixpath.basename(listed).lower())
                or ""
            )
            items.append(
                ClipItem(
                    example_id=_stem(path or listed),
                    path=path,
                    listed_path=_join(videos, listed),
                    label_name=names[index],
                    label_index=index,
                    split=split_name,
                )
            )
    return names, items


def _ucf_class_of(file_name: str) -> str:
    # v_<Class>_gNN_cMM.avi -> <Class>
    parts = posixpath.basename(file_name).split("_")
    return "_".join(parts[1:-2]) if len(parts) >= 4 else file_name


def folder_items(videos: str, test_fraction: float) -> tuple[list[str], list[ClipItem]]:
    """List ``videos/<Class>/...`` clips; classes are sorted folder names, split by id hash."""
    available = _list_videos(videos)
    labelled = []
    for path in available:
        relative = _relative(path, videos)
        if "/" not in relative:
            raise DataError(f"{path}: expected videos/<Class>/<file> for --source folders")
        labelled.append((relative, relative.split("/")[0], path))
    names = sorted({label for _, label, _ in labelled})
    index = {name: i for i, name in enumerate(names)}
    items = []
    for relative, label, path in labelled:
        example_id = posixpath.splitext(relative)[0]
        split = "test" if _hash_fraction(example_id) < test_fraction else "train"
        items.append(ClipItem(example_id, path, path, label, index[label], split))
    return names, items


def manifest_items(manifest: str, test_fraction: float) -> tuple[list[str], list[ClipItem]]:
    """List the clips of a ``path,label[,split]`` CSV; classes are the sorted label names."""
    reader = csv.DictReader(io.StringIO(_read_text(manifest)))
    fields = [name.strip() for name in reader.fieldnames or []]
    if "path" not in fields or "label" not in fields:
        raise DataError(f"{manifest}: header must be 'path,label[,split]', got {fields}")
    root = posixpath.dirname(manifest)
    rows = []
    for number, row in enumerate(reader, start=2):
        row = {key.strip(): (value or "").strip() for key, value in row.items() if key}
        if not row.get("path") or not row.get("label"):
            raise DataError(f"{manifest}:{number}: empty path or label")
        split = row.get("split") or ""
        if split and split not in schema.SPLITS:
            raise DataError(f"{manifest}:{number}: split must be one of {schema.SPLITS}")
        rows.append((row["path"], row["label"], split))
    if not rows:
        raise DataError(f"{manifest}: no rows")
    names = sorted({label for _, label, _ in rows})
    index = {name: i for i, name in enumerate(names)}
    items = []
    seen: set[str] = set()
    for listed, label, split in rows:
        path = listed if "://" in listed or listed.startswith("/") else _join(root, listed)
        example_id = posixpath.splitext(listed)[0].lstrip("/")
        if example_id in seen:
            raise DataError(f"{manifest}: {listed!r} is listed twice")
        seen.add(example_id)
        split = split or ("test" if _hash_fraction(example_id) < test_fraction else "train")
        items.append(ClipItem(example_id, path, path, label, index[label], split))
    return names, items


def list_items(options: PreprocessOptions) -> tuple[list[str], list[ClipItem]]:
    """Resolve the configured source to ``(class_names, items)``."""
    if options.source == "ucf101":
        return ucf101_items(str(options.videos), str(options.splits), options.split)
    if options.source == "folders":
        return folder_items(str(options.videos), options.test_fraction)
    return manifest_items(str(options.manifest), options.test_fraction)


def shard_counts(items: Sequence[ClipItem], options: PreprocessOptions) -> dict[str, int]:
    """Shards per split: ``num_shards``, or one per ``clips_per_shard`` clips.

    Shards are the units of parallel work, so the automatic count is at least
    ``MIN_AUTO_SHARDS`` (or the clip count, if smaller); it never depends on the machine, so
    the layout is the same everywhere.
    """
    counts = Counter(item.split for item in items)
    return {
        split: options.num_shards
        or max(math.ceil(count / options.clips_per_shard), min(count, MIN_AUTO_SHARDS))
        for split, count in sorted(counts.items())
    }


def shard_key(item: ClipItem, num_shards: dict[str, int]) -> tuple[str, int]:
    """``(split, shard)`` of a clip."""
    return item.split, shard_of(item.example_id, num_shards[item.split])


def shard_of(example_id: str, num_shards: int) -> int:
    """Stable shard index of a clip (crc32, not ``hash()``, which is salted per process)."""
    return zlib.crc32(example_id.encode()) % num_shards


def record_order(item: ClipItem) -> tuple[str, str]:
    """Deterministic, class-mixing order of the records inside one shard."""
    digest = hashlib.sha1(item.example_id.encode()).hexdigest()
    return digest, item.example_id


@dataclass(frozen=True)
class ShardPlan:
    """The clips of one output shard, in the order they are written.

    Plans travel through the job as one JSON line each (see :func:`plan_shards`).
    """

    split: str
    shard: int
    items: tuple[ClipItem, ...]

    def to_json(self) -> str:
        """One JSON line (no newline inside: ``json`` escapes them in strings)."""
        rows = [astuple(item) for item in self.items]
        return json.dumps({"split": self.split, "shard": self.shard, "items": rows})

    @classmethod
    def from_json(cls, line: str) -> ShardPlan:
        data = json.loads(line)
        items = tuple(ClipItem(*row) for row in data["items"])
        return cls(split=data["split"], shard=int(data["shard"]), items=items)


def plan_shards(items: Sequence[ClipItem], num_shards: dict[str, int]) -> list[ShardPlan]:
    """Group clips into shard plans: ``(split, crc32(id) % shards)``, clips in record order.

    Shards that get no clip have no plan (the driver writes them empty after the job). Within a
    shard, clips are ordered by a stable hash rather than by id: ids start with the class name,
    so id order would write each shard class by class, and a small shuffle buffer would then
    feed training one class at a time.
    """
    groups: dict[tuple[str, int], list[ClipItem]] = {}
    for item in items:
        groups.setdefault(shard_key(item, num_shards), []).append(item)
    return [
        ShardPlan(split, shard, tuple(sorted(group, key=record_order)))
        for (split, shard), group in sorted(groups.items())
    ]


# ----------------------------------------------------------------------------------------------
# Beam transforms (worker side).


@dataclass(frozen=True)
class EncodeSettings:
    """How each clip is decoded and encoded (see :class:`PreprocessOptions`)."""

    jpeg_quality: int = 90
    short_side: int | None = None
    fps: float | None = None
    min_frames: int = 1
    min_frame_fraction: float = 0.9
    isolate_decoder: bool = False
    decode_timeout_s: float = 600.0


def encode_clip(item: ClipItem, settings: EncodeSettings) -> tuple[bytes, int]:
    """Decode one clip, JPEG-encode its frames as they are decoded, and serialise the record.

    Returns:
        ``(record_bytes, num_frames)``.

    Raises:
        VideoDecodeError: the clip is missing, empty, unreadable, truncated or too short.
    """
    from model.data import video_io

    if not item.path or not FileSystems.exists(item.path):
        raise VideoDecodeError(f"{item.path or item.listed_path}: file not found", REASON_MISSING)
    with FileSystems.open(item.path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        encoded = video_io.decode_video_to_jpegs(
            handle,
            quality=settings.jpeg_quality,
            short_side=settings.short_side,
            fps=settings.fps,
            min_frame_fraction=settings.min_frame_fraction,
            min_frames=settings.min_frames,
        )
    record = schema.serialize_clip(
        encoded.jpeg_frames,
        label_index=item.label_index,
        label_name=item.label_name,
        example_id=item.example_id,
        data_path=item.path,
        height=encoded.info.height,
        width=encoded.info.width,
        frame_rate=encoded.info.frame_rate,
        timestamps_us=encoded.timestamps_us,
    )
    return record, len(encoded.jpeg_frames)


ClipEncoder = Callable[[ClipItem, EncodeSettings], tuple[bytes, int]]
_DECODER_START_TIMEOUT_S = 300


def _decoder_main(read_fd: int, write_fd: int) -> None:
    """Child side of :class:`IsolatedDecoder`: encode the clips it is sent, one at a time.

    First message: ``(encoder "module:name", settings, file-system options)``; then one
    :class:`ClipItem` per message, answered by ``("ok", (record, frames))`` or
    ``("error", (reason, message))``.
    """
    import importlib
    from multiprocessing.connection import Connection

    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    encoder_name, settings, filesystem_options = inbox.recv()
    module, _, name = encoder_name.partition(":")
    encode = getattr(importlib.import_module(module), name)
    if filesystem_options is not None:  # as Beam's worker harness does for its own process
        FileSystems.set_options(filesystem_options)
    outbox.send(("ready", None))  # imports done: the per-clip timeout starts after this
    while True:
        try:
            item = inbox.recv()
        except EOFError:  # the parent closed the pipe
            return
        try:
            outbox.send(("ok", encode(item, settings)))
        except VideoDecodeError as error:
            outbox.send(("error", (error.reason, str(error))))
        except Exception as error:  # as text (not every exception pickles), like the inline path
            outbox.send(("error", (REASON_ERROR, f"{type(error).__name__}: {error}")))


class IsolatedDecoder:
    """Runs ``encode`` (:func:`encode_clip`) in one long-lived child process.

    FFmpeg is C: a malformed file can crash or hang it. In the worker itself that kills the
    worker process, the runner retries the bundle and finally fails the job; here it costs one
    clip, reported as ``decoder_crashed`` or ``timeout``, and the next clip gets a fresh child.
    The child is a fresh interpreter (``python -c``, not ``fork``: the worker has gRPC threads;
    not ``multiprocessing`` spawn either, which re-imports the parent's ``__main__``) talking
    over two private pipes; the record bytes come back through a pipe, which is cheap next to
    decoding.

    Args:
        settings: how to decode and encode.
        encode: a module-level function ``(item, settings) -> (record, frames)``.
    """

    def __init__(self, settings: EncodeSettings, encode: ClipEncoder = encode_clip) -> None:
        self.settings = settings
        self.encoder_name = f"{encode.__module__}:{encode.__qualname__}"
        self.lock = threading.Lock()  # one clip at a time through the pipes
        self._process: Any = None
        self._inbox: Any = None
        self._outbox: Any = None

    def _start(self) -> None:
        import os
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        to_child_read, to_child_write = os.pipe()
        to_parent_read, to_parent_write = os.pipe()
        code = (
            "import sys; from components.preprocess import _decoder_main; "
            "_decoder_main(int(sys.argv[1]), int(sys.argv[2]))"
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and Path(p).is_dir())
        self._process = subprocess.Popen(
            [sys.executable, "-c", code, str(to_child_read), str(to_parent_write)],
            pass_fds=(to_child_read, to_parent_write),
            env=env,
        )
        os.close(to_child_read)
        os.close(to_parent_write)
        self._outbox = Connection(to_child_write, readable=False)
        self._inbox = Connection(to_parent_read, writable=False)
        self._outbox.send(
            (self.encoder_name, self.settings, getattr(FileSystems, "_pipeline_options", None))
        )
        # Start-up (a fresh interpreter importing Beam and PyAV) is not part of any clip's time.
        ready = self._inbox.poll(_DECODER_START_TIMEOUT_S)
        try:
            status = self._inbox.recv()[0] if ready else "not ready"
        except (EOFError, ConnectionError, OSError):
            status = f"exited with code {self._process.wait()}"
        if status != "ready":  # a broken environment, not a bad clip: fail loudly
            self.close()
            raise RuntimeError(f"the decoder process did not start: {status}")

    def __call__(self, item: ClipItem) -> tuple[bytes, int]:
        if self._process is None or self._process.poll() is not None:
            self.close()
            self._start()
        path = item.path or item.listed_path
        try:
            self._outbox.send(item)
            # poll() also returns when the child dies: recv() then raises EOFError.
            answered = self._inbox.poll(self.settings.decode_timeout_s)
            if answered:
                status, payload = self._inbox.recv()
        except (EOFError, ConnectionError, OSError):
            try:
                code = self._process.wait(timeout=5)
            except Exception:  # still running but not talking: treat as crashed
                code = None
            self.close()
            raise VideoDecodeError(
                f"{path}: the decoder process died (exit code {code})", REASON_CRASHED
            ) from None
        if not answered:
            self.close()
            raise VideoDecodeError(
                f"{path}: decoding took longer than {self.settings.decode_timeout_s:g} s",
                REASON_TIMEOUT,
            )
        if status == "ok":
            return payload
        reason, message = payload
        raise VideoDecodeError(message, reason)

    def close(self) -> None:
        """Stop the child (killed if it is still busy)."""
        for connection in (self._inbox, self._outbox):
            if connection is not None:
                connection.close()
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
        self._process = self._inbox = self._outbox = None


_SHARED_DECODERS: dict[EncodeSettings, IsolatedDecoder] = {}
_SHARED_DECODERS_LOCK = threading.Lock()


def shared_decoder(settings: EncodeSettings) -> Callable[[ClipItem], tuple[bytes, int]]:
    """This process's :class:`IsolatedDecoder` for ``settings``, safe to call from any thread.

    A Beam worker runs several bundles (so several DoFn instances) on threads; one child per
    worker process keeps the decoding at one core per worker and pays the start-up once. The
    child exits when this process does (its pipe closes).
    """
    with _SHARED_DECODERS_LOCK:
        if settings not in _SHARED_DECODERS:
            _SHARED_DECODERS[settings] = IsolatedDecoder(settings)
        decoder = _SHARED_DECODERS[settings]

    def call(item: ClipItem) -> tuple[bytes, int]:
        with decoder.lock:
            return decoder(item)

    return call


class EncodeShardFn(beam.DoFn):
    """Encode the clips of one :class:`ShardPlan` straight into the shard file.

    Records never travel through the runner: each is written to
    ``<out>/.tmp-<uuid>-<shard name>`` as soon as it is encoded (one clip in memory at a time),
    and the file is renamed to its final name when complete. With ``results_dir``, the shard's
    result (its summary and dead letters) is then written there as ``result-<split>-<shard>.json``
    (atomically, so a retried shard replaces it) for the driver to merge. Main output: one
    summary ``{split, shard, path, clips, frames, per_class}``; tagged output ``failed``:
    dead-letter dicts ``{path, split, example_id, reason, error}``.
    """

    FAILED = "failed"

    def __init__(
        self,
        out: str,
        num_shards: dict[str, int],
        settings: EncodeSettings,
        results_dir: str | None = None,
    ) -> None:
        self.out = out
        self.num_shards = dict(num_shards)
        self.settings = settings
        self.results_dir = results_dir

    def setup(self) -> None:
        self._ok = beam.metrics.Metrics.counter("video", "ok")
        self._failed = beam.metrics.Metrics.counter("video", "failed")
        self._frames = beam.metrics.Metrics.counter("video", "frames")
        self._clips_done = 0
        self._frames_done = 0
        self._start = time.monotonic()
        self._decoder = shared_decoder(self.settings) if self.settings.isolate_decoder else None

    def _encode(self, item: ClipItem) -> tuple[bytes, int]:
        if self._decoder is not None:
            return self._decoder(item)
        return encode_clip(item, self.settings)

    def _dead_letter(self, item: ClipItem, reason: str, error: str) -> dict[str, str]:
        self._failed.inc()
        beam.metrics.Metrics.counter("video", f"failed_{reason}").inc()
        return {
            "path": item.path or item.listed_path,
            "split": item.split,
            "example_id": item.example_id,
            "reason": reason,
            "error": error,
        }

    def process(self, plan: ShardPlan) -> Iterator[Any]:
        from apache_beam.io.tfrecordio import _TFRecordUtil

        final = _join(
            self.out, schema.shard_name(plan.split, plan.shard, self.num_shards[plan.split])
        )
        temporary = _join(self.out, f".tmp-{uuid.uuid4().hex}-{posixpath.basename(final)}")
        per_class: Counter[str] = Counter()
        letters: list[dict[str, str]] = []
        clips = frames = 0
        with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as sink:
            for item in plan.items:
                try:
                    record, count = self._encode(item)
                except VideoDecodeError as error:
                    letters.append(self._dead_letter(item, error.reason, str(error)))
                    continue
                except Exception as error:  # a bad file must never stop the job; report it
                    message = f"{type(error).__name__}: {error}"
                    letters.append(self._dead_letter(item, REASON_ERROR, message))
                    continue
                _TFRecordUtil.write_record(sink, record)
                per_class[item.label_name] += 1
                clips += 1
                frames += count
                self._ok.inc()
                self._frames.inc(count)
        if FileSystems.exists(final):
            FileSystems.delete([final])
        FileSystems.rename([temporary], [final])
        summary = {
            "split": plan.split,
            "shard": plan.shard,
            "path": final,
            "clips": clips,
            "frames": frames,
            "per_class": dict(per_class),
        }
        if self.results_dir is not None:
            result = {"summary": summary, "dead_letters": letters}
            name = f"result-{plan.split}-{plan.shard:05d}.json"
            _write_text_atomic(_join(self.results_dir, name), json.dumps(result, sort_keys=True))
        self._clips_done += clips
        self._frames_done += frames
        elapsed = time.monotonic() - self._start
        logger.info(
            "shard %s done (%d clips); this worker: %d clips, %d frames, %.0f frames/s",
            posixpath.basename(final),
            clips,
            self._clips_done,
            self._frames_done,
            self._frames_done / max(elapsed, 1e-9),
        )
        for letter in letters:
            yield beam.pvalue.TaggedOutput(self.FAILED, letter)
        yield summary


class WriteShards(beam.PTransform):
    """Shard plans -> shard files; outputs ``shards`` (summaries) and ``failed`` (dead letters).

    A ``Reshuffle`` first spreads the plans over the workers, so the expensive decoding is not
    fused onto the one worker that read the plan list. Only the small plans are shuffled, so
    worker memory does not grow with the dataset.
    """

    def __init__(
        self,
        out: str,
        num_shards: dict[str, int],
        settings: EncodeSettings,
        results_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.fn = EncodeShardFn(out, num_shards, settings, results_dir)

    def expand(self, plans: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return (
            plans
            | "Reshuffle" >> beam.Reshuffle()
            | "EncodeShard" >> beam.ParDo(self.fn).with_outputs(EncodeShardFn.FAILED, main="shards")
        )


def encode_settings(options: PreprocessOptions) -> EncodeSettings:
    """The per-clip part of the job options."""
    return EncodeSettings(
        jpeg_quality=options.jpeg_quality,
        short_side=options.short_side,
        fps=options.fps,
        min_frames=options.min_frames,
        min_frame_fraction=options.min_frame_fraction,
        isolate_decoder=options.isolate_decoder,
        decode_timeout_s=options.decode_timeout_s,
    )


def build_pipeline(
    pipeline: beam.Pipeline,
    plan_path: str,
    options: PreprocessOptions,
    num_shards: dict[str, int],
    work_dir: str,
) -> None:
    """Add the whole job to ``pipeline``: read the shard plans, write shards and their results."""
    _ = (
        pipeline
        | "ReadPlans" >> beam.io.ReadFromText(plan_path)
        | "ParsePlans" >> beam.Map(ShardPlan.from_json)
        | "WriteShards" >> WriteShards(options.out, num_shards, encode_settings(options), work_dir)
    )


# ----------------------------------------------------------------------------------------------
# Driver.


def _list(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _delete_work_dir(work_dir: str) -> None:
    """Delete the job's work folder (plans, shard results), also after a failed run."""
    leftovers = _list(_join(work_dir, "*"))
    if leftovers:
        FileSystems.delete(leftovers)
    if "://" not in work_dir and FileSystems.exists(work_dir):
        FileSystems.delete([work_dir])


def _finish_shards(out: str, num_shards: dict[str, int]) -> None:
    """Create empty files for shards that got no clip and delete stale shards of earlier runs."""
    for split, count in num_shards.items():
        expected = {_join(out, schema.shard_name(split, i, count)) for i in range(count)}
        for path in sorted(expected):
            if not FileSystems.exists(path):
                _write_text_atomic(path, "")
        existing = FileSystems.match([schema.split_pattern(out, split)])[0].metadata_list
        stale = [m.path for m in existing if m.path not in expected]
        if stale:
            FileSystems.delete(stale)


def summarise(
    names: Sequence[str],
    items: Sequence[ClipItem],
    shard_summaries: Sequence[dict[str, Any]],
    dead_letters: Sequence[dict[str, Any]],
    num_shards: dict[str, int],
    options: PreprocessOptions,
    duration_s: float,
) -> dict[str, Any]:
    """Build the ``stats.json`` dictionary from shard summaries and dead letters."""
    splits: dict[str, dict[str, Any]] = {}
    for split, count in num_shards.items():
        per_class: Counter[str] = Counter()
        clips = frames = 0
        for summary in shard_summaries:
            if summary["split"] == split:
                clips += summary["clips"]
                frames += summary["frames"]
                per_class.update(summary["per_class"])
        splits[split] = {
            "clips": clips,
            "frames": frames,
            "shards": count,
            "listed": sum(item.split == split for item in items),
            "per_class": {name: per_class.get(name, 0) for name in names},
        }
    failures = Counter(letter["reason"] for letter in dead_letters)
    total = len(items)
    return {
        "version": STATS_VERSION,
        "source": options.source,
        "num_classes": len(names),
        "splits": splits,
        "failures": dict(sorted(failures.items())),
        "num_listed": total,
        "num_failed": len(dead_letters),
        "failure_fraction": len(dead_letters) / total if total else 0.0,
        "jpeg_quality": options.jpeg_quality,
        "short_side": options.short_side,
        "fps": options.fps,
        "runner": options.runner,
        "duration_s": round(duration_s, 3),
    }


def run_preprocess(
    options: PreprocessOptions | Mapping[str, Any],
    *,
    pipeline_options: PipelineOptions | None = None,
) -> dict[str, Any]:
    """Run the preprocessing job and return the statistics written to ``stats.json``.

    Args:
        options: typed job options (or a mapping of their field names to values).
        pipeline_options: override the Beam options derived from ``options`` (tests).

    Raises:
        ConfigError: invalid options (before anything runs).
        DataError: unreadable lists, no videos, or more failures than ``max_failure_fraction``
            (``stats.json`` and the dead letters are written first).
    """
    if isinstance(options, Mapping):
        unknown = sorted(set(options) - set(PreprocessOptions.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown preprocess options {unknown}")
        options = PreprocessOptions(**options)
    options.validate()
    beam_options = pipeline_options or build_pipeline_options(options)
    # The driver lists and writes files before and after the pipeline runs: with the same
    # file-system options (credentials, impersonation) as the workers.
    FileSystems.set_options(beam_options)
    start = time.monotonic()
    names, items = list_items(options)
    if not items:
        raise DataError(f"source {options.source} lists no clips")
    num_shards = shard_counts(items, options)
    logger.info(
        "preprocess: %d clips in %d classes (%s), shards %s, runner %s",
        len(items),
        len(names),
        ", ".join(f"{s}={n}" for s, n in Counter(i.split for i in items).items()),
        num_shards,
        options.runner,
    )
    if not FileSystems.exists(options.out):
        FileSystems.mkdirs(options.out)
    work_dir = _join(options.out, f".work-{uuid.uuid4().hex}")
    plan_path = _join(work_dir, "plans.jsonl")
    plans = plan_shards(items, num_shards)
    _write_text_atomic(plan_path, "".join(plan.to_json() + "\n" for plan in plans))
    try:
        with beam.Pipeline(options=beam_options) as pipeline:
            build_pipeline(pipeline, plan_path, options, num_shards, work_dir)
        results = [json.loads(_read_text(path)) for path in _list(_join(work_dir, "result-*.json"))]
    finally:
        _delete_work_dir(work_dir)
    summaries = [result["summary"] for result in results]
    dead_letters = sorted(
        (letter for result in results for letter in result["dead_letters"]),
        key=lambda letter: (letter["split"], letter["example_id"]),
    )
    dead_letter_path = _join(options.out, DEAD_LETTER_NAME + ".jsonl")
    _write_text_atomic(
        dead_letter_path,
        "".join(json.dumps(letter, sort_keys=True) + "\n" for letter in dead_letters),
    )
    _finish_shards(options.out, num_shards)
    _write_text_atomic(_join(options.out, schema.LABEL_MAP_FILE), schema.format_label_map(names))
    stats = summarise(
        names, items, summaries, dead_letters, num_shards, options, time.monotonic() - start
    )
    _write_text_atomic(_join(options.out, schema.STATS_FILE), json.dumps(stats, indent=2) + "\n")
    frames = sum(split["frames"] for split in stats["splits"].values())
    logger.info(
        "preprocess: %d clips ok, %d failed %s, %d frames in %.1f s (%.0f frames/s)",
        len(items) - stats["num_failed"],
        stats["num_failed"],
        stats["failures"],
        frames,
        stats["duration_s"],
        frames / max(stats["duration_s"], 1e-9),
    )
    if stats["failure_fraction"] > options.max_failure_fraction:
        raise DataError(
            f"{stats['num_failed']} of {len(items)} clips failed "
            f"({stats['failure_fraction']:.1%} > --max-failure-fraction "
            f"{options.max_failure_fraction:.1%}): {stats['failures']}; see {dead_letter_path}"
        )
    return stats


# ----------------------------------------------------------------------------------------------
# Command line.


def options_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> PreprocessOptions:
    """Build :class:`PreprocessOptions` from parsed flags (unknown Beam flags in ``extra``)."""
    # Flags left unset (None) take the dataclass defaults, which are the only defaults.
    values = {
        key: getattr(args, key)
        for key in PreprocessOptions.__dataclass_fields__
        if key != "extra_beam_args" and getattr(args, key, None) is not None
    }
    return replace(PreprocessOptions(**values), extra_beam_args=tuple(extra))


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m components.preprocess --source ... --out ...``."""
    from components.data_cli import add_preprocess_arguments

    parser = argparse.ArgumentParser(prog="python -m components.preprocess", description=__doc__)
    add_preprocess_arguments(parser)
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stats = run_preprocess(options_from_args(args, extra))
    if args.json:
        print(json.dumps(stats, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = [
    "ClipItem",
    "EncodeSettings",
    "EncodeShardFn",
    "PreprocessOptions",
    "ShardPlan",
    "WriteShards",
    "build_pipeline_options",
    "encode_clip",
    "plan_shards",
    "run_preprocess",
]
