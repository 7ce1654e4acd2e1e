"""Preprocessing reads videos from and writes records to ``gs://`` (GCS emulator at the wire)."""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from components.preprocess import PreprocessOptions, run_preprocess
from model.data import schema
from tests.data.conftest import NUM_FRAMES, local_beam_options
from tests.fakes.fixtures import GcsEmulator


def _bucket(gcs_emulator: GcsEmulator):
    from google.cloud import storage

    # STORAGE_EMULATOR_HOST is set by the fixture; the client then talks to the emulator.
    client = storage.Client.create_anonymous_client()
    return client.bucket(gcs_emulator.bucket)


def test_ucf101_from_and_to_gcs(synth_root: Path, gcs_emulator: GcsEmulator) -> None:
    bucket = _bucket(gcs_emulator)
    for path in sorted(synth_root.rglob("*")):
        if path.is_file():
            bucket.blob(f"ucf/{path.relative_to(synth_root).as_posix()}").upload_from_filename(
                str(path)
            )
    root = f"gs://{gcs_emulator.bucket}"
    stats = run_preprocess(
        PreprocessOptions(
            source="ucf101",
            videos=f"{root}/ucf/videos",
            splits=f"{root}/ucf/ucfTrainTestlist",
            out=f"{root}/records",
            num_shards=1,
            jpeg_quality=95,
        ),
        pipeline_options=local_beam_options(),
    )
    assert stats["splits"]["train"]["clips"] == 6
    assert stats["splits"]["test"]["clips"] == 6
    assert stats["failures"] == {}

    names = sorted(blob.name for blob in bucket.list_blobs(prefix="records/"))
    shards = [f"records/{schema.shard_name(split, 0, 1)}" for split in ("test", "train")]
    assert names == sorted(
        [*shards, "records/dead_letter.jsonl", "records/label_map.txt", "records/stats.json"]
    ), names  # finished shards only: no temporary or work files left behind
    assert json.loads(bucket.blob("records/stats.json").download_as_bytes()) == stats

    # The records from the bucket parse with the shared contract, each clip complete.
    records = bucket.blob(shards[1]).download_as_bytes()
    local = Path(synth_root.parent / "from_gcs.tfrecord")
    local.write_bytes(records)
    clips = [schema.parse_clip(r) for r in tf.data.TFRecordDataset(str(local))]
    assert len(clips) == 6
    for clip in clips:
        assert clip[schema.IMAGE_KEY].shape == (NUM_FRAMES,)
        frame = tf.io.decode_jpeg(clip[schema.IMAGE_KEY][0])
        assert frame.shape[-1] == 3
