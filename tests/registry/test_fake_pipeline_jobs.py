"""The fake Vertex AI server also serves pipeline jobs and schedules to the real SDK.

No ``from __future__ import annotations`` here: kfp reads the component's annotations as types.
"""

from pathlib import Path

import pytest
from google.cloud import aiplatform
from kfp import compiler, dsl

from tests.fakes.fixtures import VertexTestEnv


@dsl.component
def _echo(x: int) -> int:
    return x


@dsl.pipeline(name="echo")
def _echo_pipeline(x: int = 1) -> None:
    _echo(x=x)


def test_pipeline_job_and_schedule_lifecycle(vertex_env: VertexTestEnv, tmp_path: Path) -> None:
    template = tmp_path / "echo.yaml"
    compiler.Compiler().compile(_echo_pipeline, str(template))
    job = aiplatform.PipelineJob(
        display_name="echo",
        template_path=str(template),
        job_id="echo-1",
        pipeline_root=f"{vertex_env.staging_bucket}/root",
        parameter_values={"x": 3},
        labels={"team": "video"},
    )
    job.submit(service_account="runner@test-project.iam.gserviceaccount.com")
    job.wait()
    assert job.has_failed is False
    body = vertex_env.fake.requests_to("POST", "/pipelineJobs")[0]
    assert body["serviceAccount"] == "runner@test-project.iam.gserviceaccount.com"
    assert body["labels"]["team"] == "video"
    assert body["runtimeConfig"]["parameterValues"] == {"x": 3}

    schedule = job.create_schedule(cron="TZ=UTC 0 3 * * 1", display_name="weekly")
    schedule_id = schedule.resource_name.rsplit("/", 1)[-1]
    assert vertex_env.fake.schedules[schedule_id]["cron"] == "TZ=UTC 0 3 * * 1"
    schedule.pause()
    assert vertex_env.fake.schedules[schedule_id]["state"] == "PAUSED"
    schedule.resume()
    assert vertex_env.fake.schedules[schedule_id]["state"] == "ACTIVE"
    assert [s.resource_name for s in aiplatform.PipelineJobSchedule.list()] == [
        schedule.resource_name
    ]
    schedule.delete()
    assert vertex_env.fake.schedules == {}


def test_failed_pipeline_state_is_reported(vertex_env: VertexTestEnv, tmp_path: Path) -> None:
    template = tmp_path / "echo.yaml"
    compiler.Compiler().compile(_echo_pipeline, str(template))
    vertex_env.fake.pipeline_final_state = "PIPELINE_STATE_FAILED"
    job = aiplatform.PipelineJob(display_name="echo", template_path=str(template))
    job.submit()
    with pytest.raises(RuntimeError, match=r"(?i)fail"):
        job.wait()
    assert job.has_failed is True
