"""The Beam preprocessing job: transforms, sources, dead letters, determinism, runner options."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from components import preprocess
from components.preprocess import (
    ClipItem,
    EncodeShardFn,
    PreprocessOptions,
    WriteShards,
    run_preprocess,
)
from model.data import schema
from model.errors import ConfigError, DataError
from pipeline.cli import main as cli_main
from tests.data.conftest import NUM_FRAMES, local_beam_options, make_corrupt_files


def _item(path: Path | str, example_id: str, split: str = "train") -> ClipItem:
    return ClipItem(example_id, str(path), str(path), "MoveRight", 0, split)


def test_write_shards_transform_routes_good_and_bad(synth_root: Path, tmp_path: Path) -> None:
    videos = sorted((synth_root / "videos" / "MoveRight").glob("*.avi"))[:3]
    bad = make_corrupt_files(tmp_path / "bad", videos[0])
    goods = [_item(path, f"good{i}") for i, path in enumerate(videos)]
    items = [
        *goods,
        _item(bad["empty"], "empty"),
        _item(bad["unreadable"], "garbage", "test"),
        _item(bad["truncated"], "truncated"),
        _item(tmp_path / "nope.avi", "missing", "test"),
    ]
    num_shards = {"train": 2, "test": 1}
    out = tmp_path / "out"
    out.mkdir()
    # Every shard that receives an item is written, even when all its clips failed.
    good_ids = {item.example_id for item in goods}
    expected_shards = {preprocess.shard_key(item, num_shards): [0, 0] for item in items}
    for item in goods:
        expected_shards[preprocess.shard_key(item, num_shards)][0] += 1
        expected_shards[preprocess.shard_key(item, num_shards)][1] += NUM_FRAMES
    expected = sorted((*key, clips, frames) for key, (clips, frames) in expected_shards.items())
    assert len(good_ids) == 3
    plans = preprocess.plan_shards(items, num_shards)
    assert [(p.split, p.shard) for p in plans] == sorted({k for k in expected_shards})
    results_dir = tmp_path / "results"
    with test_pipeline.TestPipeline(options=local_beam_options()) as pipeline:
        results = (
            pipeline
            | beam.Create(plans)
            | WriteShards(str(out), num_shards, preprocess.EncodeSettings(), str(results_dir))
        )
        shards = results.shards | "ShardSummary" >> beam.Map(
            lambda s: (s["split"], s["shard"], s["clips"], s["frames"])
        )
        failed = results[EncodeShardFn.FAILED] | beam.Map(
            lambda letter: (letter["example_id"], letter["split"], letter["reason"])
        )
        assert_that(shards, equal_to(expected), label="shards")
        assert_that(
            failed,
            equal_to(
                [
                    ("empty", "train", "empty"),
                    ("garbage", "test", "unreadable"),
                    ("truncated", "train", "truncated"),
                    ("missing", "test", "missing"),
                ]
            ),
            label="failed",
        )
    import tensorflow as tf

    written = {}
    for path in sorted(out.glob("train-*.tfrecord")):
        ids = [
            schema.parse_clip_proto(record.numpy())["example_id"]
            for record in tf.data.TFRecordDataset(str(path))
        ]
        # A fixed, class-mixing order (by a hash of the id), the same on every run.
        assert ids == sorted(ids, key=lambda i: preprocess.record_order(_item("", i)))
        written[path.name] = ids
    assert sorted(i for ids in written.values() for i in ids) == ["good0", "good1", "good2"]
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]
    # Each shard's result file (what the driver merges) matches what the transform emitted.
    result_files = sorted(results_dir.iterdir())
    assert [p.name for p in result_files] == [
        f"result-{split}-{shard:05d}.json" for split, shard in sorted(expected_shards)
    ]
    results = [json.loads(p.read_text()) for p in result_files]
    assert (
        sorted(
            (
                r["summary"]["split"],
                r["summary"]["shard"],
                r["summary"]["clips"],
                r["summary"]["frames"],
            )
            for r in results
        )
        == expected
    )
    assert sorted(letter["example_id"] for r in results for letter in r["dead_letters"]) == [
        "empty",
        "garbage",
        "missing",
        "truncated",
    ]


def test_shard_plans_round_trip_through_json_lines() -> None:
    items = [
        ClipItem(f"id{i}", f"gs://bucket/a b/{i}\n.avi", f"{i}.avi", "Café", i % 3, split)
        for i, split in enumerate(["train"] * 7 + ["test"] * 3)
    ]
    plans = preprocess.plan_shards(items, {"train": 3, "test": 2})
    lines = [plan.to_json() for plan in plans]
    assert all("\n" not in line for line in lines)
    assert [preprocess.ShardPlan.from_json(line) for line in lines] == plans
    # Every clip is planned once, in its stable shard, in record order.
    assert sorted(i.example_id for p in plans for i in p.items) == sorted(
        i.example_id for i in items
    )
    for plan in plans:
        assert all(
            preprocess.shard_key(i, {"train": 3, "test": 2}) == (plan.split, plan.shard)
            for i in plan.items
        )
        assert list(plan.items) == sorted(plan.items, key=preprocess.record_order)


def test_job_graph_does_not_grow_with_the_dataset(tmp_path: Path) -> None:
    # Dataflow rejects job graphs over its size limit; the clip list travels as a file, so the
    # graph for a Kinetics-sized list is the graph for a handful of clips.
    options = PreprocessOptions(source="manifest", manifest="m.csv", out=str(tmp_path))

    def graph_bytes(num_clips: int) -> int:
        items = [_item(f"/videos/{i}.avi", f"clip{i}") for i in range(num_clips)]
        num_shards = preprocess.shard_counts(items, options)
        plan = tmp_path / f"plans{num_clips}.jsonl"
        plan.write_text(
            "".join(p.to_json() + "\n" for p in preprocess.plan_shards(items, num_shards))
        )
        pipeline = beam.Pipeline()
        preprocess.build_pipeline(pipeline, str(plan), options, num_shards, str(tmp_path))
        return pipeline.to_runner_api().ByteSize()

    # About 26 kB either way; embedding 20,000 clip descriptions would add megabytes.
    assert graph_bytes(20_000) - graph_bytes(10) < 200


def test_preprocessed_output_layout_and_stats(preprocessed: Path) -> None:
    stats = json.loads((preprocessed / "stats.json").read_text())
    assert stats["splits"]["train"]["clips"] == 6
    assert stats["splits"]["test"]["clips"] == 6
    assert stats["splits"]["train"]["frames"] == 6 * NUM_FRAMES
    assert stats["splits"]["test"]["per_class"] == {"MoveRight": 2, "MoveLeft": 2, "MoveDown": 2}
    assert stats["failures"] == {}
    assert schema.read_label_map(preprocessed) == ["MoveRight", "MoveLeft", "MoveDown"]
    assert (preprocessed / "dead_letter.jsonl").read_text() == ""
    names = sorted(p.name for p in preprocessed.glob("*.tfrecord"))
    assert names == [schema.shard_name(s, i, 2) for s in ("test", "train") for i in (0, 1)]
    assert not [p for p in preprocessed.iterdir() if p.name.startswith(".")]


def test_corrupt_inputs_dead_letters_threshold_and_determinism(
    synth_root: Path, copy_tree, tmp_path: Path
) -> None:
    root = copy_tree(synth_root, "ucf")
    videos = root / "videos"
    good = next((videos / "MoveLeft").glob("*.avi"))
    bad = make_corrupt_files(videos / "MoveLeft", good)
    # UCF101's case quirk: the list names a file whose case differs from the one on disk.
    listed = "MoveRight/v_MoveRight_g02_c01.avi"
    (videos / listed).rename(videos / "MoveRight" / "v_moveright_G02_c01.avi")
    with open(root / "ucfTrainTestlist" / "testlist01.txt", "a") as lists:
        for path in bad.values():
            lists.write(f"MoveLeft/{path.name}\n")
        lists.write("MoveLeft/v_MoveLeft_g09_c09.avi\n")  # listed but missing
    options = PreprocessOptions(
        source="ucf101",
        videos=str(videos),
        splits=str(root / "ucfTrainTestlist"),
        out=str(tmp_path / "out1"),
        num_shards=2,
        max_failure_fraction=0.5,
        isolate_decoder=True,  # decoding in the child process; the CLI run below decodes inline
    )
    stats = run_preprocess(options, pipeline_options=local_beam_options())
    # In-memory runner: the worker is this process, whose decoder child did the decoding.
    assert any(d._process is not None for d in preprocess._SHARED_DECODERS.values())
    assert stats["failures"] == {"empty": 1, "missing": 1, "truncated": 1, "unreadable": 1}
    assert stats["num_failed"] == 4
    assert stats["num_listed"] == 16
    assert stats["splits"]["train"]["clips"] == 6  # the renamed file was found
    letters = [
        json.loads(line)
        for line in (tmp_path / "out1" / "dead_letter.jsonl").read_text().splitlines()
    ]
    by_reason = {letter["reason"]: letter for letter in letters}
    assert set(by_reason) == {"empty", "missing", "truncated", "unreadable"}
    assert by_reason["truncated"]["path"] == str(bad["truncated"])
    assert by_reason["missing"]["path"].endswith("MoveLeft/v_MoveLeft_g09_c09.avi")
    assert all(letter["split"] == "test" for letter in letters)

    # The same job through the CLI with the default threshold (5%) and the decoder in the worker
    # fails loudly, after writing the same shards byte for byte and the stats.
    status = cli_main(
        [
            "data",
            "preprocess",
            "--source=ucf101",
            f"--videos={videos}",
            f"--splits={root / 'ucfTrainTestlist'}",
            f"--out={tmp_path / 'out2'}",
            "--num-shards=2",
            "--direct-running-mode=in_memory",
            "--direct-num-workers=1",
        ]
    )
    assert status == 2
    failed_stats = json.loads((tmp_path / "out2" / "stats.json").read_text())
    assert failed_stats["num_failed"] == 4
    for shard in (tmp_path / "out1").glob("*.tfrecord"):
        assert shard.read_bytes() == (tmp_path / "out2" / shard.name).read_bytes()


def test_manifest_and_folder_sources(synth_root: Path, tmp_path: Path) -> None:
    videos = synth_root / "videos"
    clips = sorted(videos.rglob("*.avi"))[:4]
    manifest = tmp_path / "lists" / "manifest.csv"
    manifest.parent.mkdir()
    rows = ["path,label,split"]
    for i, clip in enumerate(clips):
        relative = (
            Path("..") / clip.relative_to(tmp_path) if clip.is_relative_to(tmp_path) else clip
        )
        rows.append(f"{relative},{'b' if i % 2 else 'a'},{'test' if i == 0 else 'train'}")
    manifest.write_text("\n".join(rows) + "\n")
    names, items = preprocess.manifest_items(str(manifest), 0.2)
    assert names == ["a", "b"]
    assert [item.split for item in items] == ["test", "train", "train", "train"]
    assert all(Path(item.path).exists() for item in items)
    assert "/../" not in items[0].path

    names, items = preprocess.folder_items(str(videos), 0.3)
    assert names == sorted(["MoveRight", "MoveLeft", "MoveDown"])
    again = preprocess.folder_items(str(videos), 0.3)[1]
    assert [i.split for i in items] == [i.split for i in again]
    assert {i.split for i in items} == {"train", "test"}

    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\nx.avi,a\n")
    with pytest.raises(DataError, match="header"):
        preprocess.manifest_items(str(bad), 0.2)


def test_runner_options() -> None:
    direct = preprocess.build_pipeline_options(
        PreprocessOptions(source="folders", videos="v", out="o")
    )
    assert direct.get_all_options()["runner"] == "FnApiRunner"
    assert direct.get_all_options()["direct_num_workers"] == 0
    assert direct.get_all_options()["direct_running_mode"] == "multi_processing"
    dataflow = PreprocessOptions(
        source="ucf101",
        videos="gs://b/videos",
        splits="gs://b/lists",
        out="gs://b/records",
        runner="DataflowRunner",
        project="proj",
        region="europe-west4",
        temp_location="gs://b/tmp",
        staging_location="gs://b/staging",
        machine_type="c2-standard-8",
        max_num_workers=20,
        sdk_container_image="europe-docker.pkg.dev/proj/repo/beam:abc",
        service_account_email="beam@proj.iam.gserviceaccount.com",
        subnetwork="regions/europe-west4/subnetworks/default",
        no_use_public_ips=True,
    )
    options = preprocess.build_pipeline_options(dataflow)
    cloud = options.view_as(GoogleCloudOptions)
    worker = options.view_as(WorkerOptions)
    assert (cloud.project, cloud.region, cloud.temp_location) == (
        "proj",
        "europe-west4",
        "gs://b/tmp",
    )
    assert cloud.service_account_email == "beam@proj.iam.gserviceaccount.com"
    assert worker.machine_type == "c2-standard-8"
    assert worker.max_num_workers == 20
    assert worker.sdk_container_image.endswith("beam:abc")
    assert worker.use_public_ips is False
    with pytest.raises(ConfigError, match="--project, --temp-location"):
        PreprocessOptions(
            source="folders",
            videos="gs://b/v",
            out="gs://b/o",
            runner="DataflowRunner",
            region="r",
            sdk_container_image="img",
        ).validate()
    local_out = dataclasses.replace(dataflow, out="/local/out")
    with pytest.raises(ConfigError, match="--out must be gs:// URIs"):
        local_out.validate()


def test_local_worker_logs_keep_the_jobs_lines_and_warnings() -> None:
    import logging

    from apache_beam.portability.api import beam_fn_api_pb2

    def forwarded(level: int, message: str, location: str) -> logging.LogRecord:
        entry = beam_fn_api_pb2.LogEntry(message=message, log_location=location)
        text = str(entry).replace("\n", " ")  # what Beam's job service logs
        return logging.LogRecord("beam", level, "f", 1, "Worker: %s", (text,), None)

    keep = preprocess.LocalWorkerLogFilter()
    chatter = forwarded(logging.INFO, "Logging handler created.", "/x/sdk_worker_main.py:97")
    assert not keep.filter(chatter)
    progress = forwarded(logging.INFO, 'shard "a" done', "/repo/components/preprocess.py:600")
    assert keep.filter(progress)
    assert progress.getMessage() == 'worker: shard "a" done'
    warning = forwarded(logging.WARNING, "disk almost full", "/x/apache_beam/io.py:3")
    assert keep.filter(warning)
    assert warning.getMessage() == "worker: disk almost full"
    other = logging.LogRecord("beam", logging.INFO, "f", 1, "Job state %s", ("DONE",), None)
    assert keep.filter(other)
    assert other.getMessage() == "Job state DONE"


def test_isolated_decoder_survives_crashes_and_hangs(synth_root: Path, tmp_path: Path) -> None:
    from components.preprocess import (
        REASON_CRASHED,
        REASON_TIMEOUT,
        EncodeSettings,
        IsolatedDecoder,
        encode_clip,
    )
    from model.data.video_io import VideoDecodeError
    from tests.data.misbehaving_decoder import encode_or_misbehave

    good = _item(next((synth_root / "videos").rglob("*.avi")), "good")
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video" * 50)
    settings = EncodeSettings(decode_timeout_s=3.0)
    expected = encode_clip(good, settings)
    decoder = IsolatedDecoder(settings, encode=encode_or_misbehave)
    try:
        assert decoder(good) == expected  # same bytes as decoding in this process
        first_child = decoder._process.pid
        with pytest.raises(VideoDecodeError) as crashed:
            decoder(_item(tmp_path / "segfault.avi", "crash"))
        assert crashed.value.reason == REASON_CRASHED
        assert "exit code -11" in str(crashed.value)  # SIGSEGV
        assert decoder(good) == expected  # a fresh child took over
        assert decoder._process.pid != first_child
        with pytest.raises(VideoDecodeError) as hung:
            decoder(_item(tmp_path / "hang.avi", "hang"))
        assert hung.value.reason == REASON_TIMEOUT
        with pytest.raises(VideoDecodeError) as unreadable:  # ordinary errors come back as such
            decoder(_item(garbage, "garbage"))
        assert unreadable.value.reason == "unreadable"
        assert decoder(good) == expected
    finally:
        decoder.close()
    assert decoder._process is None
