"""Local stand-ins for Google Cloud used by the tests (no network, no credentials).

* :mod:`tests.fakes.vertex` - an in-process fake of the Vertex AI REST API (models and their
  versions, aliases, evaluations, pipeline jobs, schedules, batch prediction jobs) that the real
  ``google-cloud-aiplatform`` client talks to over ``http://127.0.0.1``.
* :mod:`tests.fakes.fixtures` - pytest fixtures: ``fake_vertex`` (the server plus an
  ``aiplatform.init`` pointed at it), ``gcs_emulator`` (``gcp-storage-emulator`` with
  ``STORAGE_EMULATOR_HOST``) and ``vertex_env`` (both, with the SDK's network-only helpers patched).
  Use them with ``from tests.fakes.fixtures import *`` in a ``conftest.py``.
"""

from __future__ import annotations

from tests.fakes.vertex import FakeVertex, InjectedFailure

__all__ = ["FakeVertex", "InjectedFailure"]
