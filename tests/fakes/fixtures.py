"""Pytest fixtures for offline tests of the Vertex AI / Cloud Storage code paths.

Import them into a ``conftest.py`` with ``from tests.fakes.fixtures import *``. Nothing here
reaches the network: the Vertex AI client is pointed at :class:`tests.fakes.vertex.FakeVertex` and
``google-cloud-storage`` at ``gcp-storage-emulator`` through ``STORAGE_EMULATOR_HOST``.

Fixtures:
    fake_vertex_server: session-wide running :class:`FakeVertex`.
    fake_vertex: the same server, emptied before each test.
    gcs_emulator: session-wide GCS emulator (:class:`GcsEmulator`) with bucket ``GCS_BUCKET``.
    vertex_env: both of the above plus ``aiplatform.init`` aimed at them, the SDK's network-only
        helpers patched (bucket ownership check through Resource Manager, 5 s job polling), and the
        environment variables a kfp.local subprocess needs (see :class:`VertexTestEnv`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes.vertex import FakeVertex

__all__ = [
    "GCS_BUCKET",
    "PROJECT",
    "REGION",
    "GcsEmulator",
    "VertexTestEnv",
    "fake_vertex",
    "fake_vertex_server",
    "gcs_emulator",
    "vertex_env",
]

PROJECT = "test-project"
REGION = "us-central1"
GCS_BUCKET = "test-bucket"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class GcsEmulator:
    """A running GCS emulator.

    Attributes:
        host: ``http://127.0.0.1:PORT``, the value of ``STORAGE_EMULATOR_HOST``.
        bucket: Name of the bucket created at start.
    """

    host: str
    bucket: str


@dataclass(frozen=True)
class VertexTestEnv:
    """Where the fakes listen, as production settings would name them.

    Attributes:
        project: GCP project id.
        region: Vertex AI region.
        api_endpoint: Fake Vertex AI endpoint (``http://127.0.0.1:PORT``).
        staging_bucket: ``gs://`` bucket in the GCS emulator.
        storage_host: ``STORAGE_EMULATOR_HOST`` value.
        fake: The fake server, for assertions and failure injection.
    """

    project: str
    region: str
    api_endpoint: str
    staging_bucket: str
    storage_host: str
    fake: FakeVertex


@pytest.fixture(scope="session")
def fake_vertex_server() -> Iterator[FakeVertex]:
    """A fake Vertex AI REST server for the whole session (stopped at the end)."""
    fake = FakeVertex(project=PROJECT, location=REGION).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_vertex(fake_vertex_server: FakeVertex) -> FakeVertex:
    """The session's fake Vertex AI server with its state cleared for this test."""
    fake_vertex_server.reset()
    return fake_vertex_server


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """``gcp-storage-emulator`` in memory, with ``STORAGE_EMULATOR_HOST`` set while it runs."""
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=GCS_BUCKET)
    server.start()
    host = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    try:
        yield GcsEmulator(host=host, bucket=GCS_BUCKET)
    finally:
        # Its server threads would otherwise keep the pytest process alive.
        server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture
def vertex_env(
    fake_vertex: FakeVertex, gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[VertexTestEnv]:
    """The real aiplatform SDK initialised against the fakes; network-only helpers patched.

    ``aiplatform.init`` sets process-wide state; it is restored after the test.
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer, pipeline_jobs
    from google.cloud.aiplatform.utils import gcs_utils

    saved_config = dict(vars(initializer.global_config))

    # Resource Manager (bucket ownership) cannot be redirected; offline it retries for ~1 min.
    monkeypatch.setattr(
        gcs_utils,
        "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
        lambda output_artifacts_gcs_dir=None, **_: output_artifacts_gcs_dir,
    )
    monkeypatch.setattr(pipeline_jobs, "_JOB_WAIT_TIME", 0.01)
    staging_bucket = f"gs://{gcs_emulator.bucket}"
    aiplatform.init(
        project=PROJECT,
        location=REGION,
        credentials=AnonymousCredentials(),
        api_endpoint=fake_vertex.endpoint,
        api_transport="rest",
        staging_bucket=staging_bucket,
    )
    # kfp.local subprocesses inherit os.environ; these are the names components read.
    monkeypatch.setenv("VERTEX_API_ENDPOINT", fake_vertex.endpoint)
    monkeypatch.setenv("VERTEX_STAGING_BUCKET", staging_bucket)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.host)
    try:
        yield VertexTestEnv(
            project=PROJECT,
            region=REGION,
            api_endpoint=fake_vertex.endpoint,
            staging_bucket=staging_bucket,
            storage_host=gcs_emulator.host,
            fake=fake_vertex,
        )
    finally:
        vars(initializer.global_config).clear()
        vars(initializer.global_config).update(saved_config)
