"""An in-process fake of the Vertex AI REST API (v1) for offline tests of the real SDK.

The real ``google-cloud-aiplatform`` client, initialised with ``api_transport="rest"`` and
``api_endpoint="http://127.0.0.1:PORT"``, talks to this server exactly as it would to
``https://REGION-aiplatform.googleapis.com``: same paths, JSON bodies and long-running operations.
The fake keeps state in memory and models the Model Registry rules the production code relies on:

* ``models:upload`` creates a model (version ``1``) or, with ``parentModel``, the next version of
  it; version ``1`` always carries the ``default`` alias; the answer is a finished LRO.
* An alias names at most one version of a model: applying it to a version removes it from the
  others. Aliases must match ``[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]`` and may not be numeric;
  ``default`` cannot be removed, only moved.
* ``GET models/ID@REF`` resolves a version id or an alias; ``GET models/ID`` is the default version.
* ``models/ID@REF:mergeVersionAliases`` (``-alias`` removes), ``PATCH`` of labels/descriptions,
  ``models/ID:listVersions`` and ``GET models`` with a small filter language
  (``labels.KEY="VALUE"``, ``display_name="NAME"`` joined by ``AND``).
* Evaluations imported onto an exact version, listed and read back per version.
* ``pipelineJobs`` (create/get/list/cancel), ``schedules`` (create/get/list/pause/resume/delete)
  and ``batchPredictionJobs`` (create/get/list); jobs report success on the first read so that
  ``wait()`` finishes at once.

Every request is recorded in :attr:`FakeVertex.requests` so tests can assert request bodies, and
:meth:`FakeVertex.fail` injects an HTTP error into the next matching request(s) to test what a
failure half-way through a multi-call operation leaves behind.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ALIAS_RE = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")
_FILTER_TERM_RE = re.compile(r'^\s*(labels\.[\w-]+|display_name|displayName)\s*=\s*"([^"]*)"\s*$')
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class _ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class InjectedFailure:
    """An HTTP error answered instead of handling the next ``times`` matching requests.

    Attributes:
        method: HTTP method to match (``"POST"``, ``"GET"``, ...).
        path_contains: Substring of the unquoted request path (e.g. ``":mergeVersionAliases"``).
        status: HTTP status to answer with (500 by default; not 503, which the client retries).
        times: How many matching requests fail before the switch turns itself off.
        hits: How many requests it has failed so far.
    """

    method: str
    path_contains: str
    status: int = 500
    times: int = 1
    hits: int = 0


@dataclass
class _ModelState:
    model_id: str
    display_name: str
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluations: list[dict[str, Any]] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeVertex:
    """The fake Vertex AI server; start it with :meth:`start` (or use it as a context manager).

    Args:
        project: Project id used in resource names the fake invents.
        location: Region used in resource names the fake invents.
    """

    def __init__(self, project: str = "test-project", location: str = "us-central1") -> None:
        self.project = project
        self.location = location
        self.models: dict[str, _ModelState] = {}
        self.pipeline_jobs: dict[str, dict[str, Any]] = {}
        self.schedules: dict[str, dict[str, Any]] = {}
        self.batch_prediction_jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.failures: list[InjectedFailure] = []
        self.pipeline_final_state = "PIPELINE_STATE_SUCCEEDED"
        self._counter = 1000
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server (the SDK's ``api_endpoint``)."""
        if self._server is None:
            raise RuntimeError("FakeVertex is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeVertex:
        """Serve on an ephemeral port of 127.0.0.1 from a daemon thread."""
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-vertex", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeVertex:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test helpers ---------------------------------------------------------------------------

    def fail(
        self, method: str, path_contains: str, *, status: int = 500, times: int = 1
    ) -> InjectedFailure:
        """Make the next ``times`` requests matching ``method`` and ``path_contains`` fail."""
        failure = InjectedFailure(method.upper(), path_contains, status, times)
        with self._lock:
            self.failures.append(failure)
        return failure

    def reset(self) -> None:
        """Forget all state, recorded requests and pending failures."""
        with self._lock:
            self.models.clear()
            self.pipeline_jobs.clear()
            self.schedules.clear()
            self.batch_prediction_jobs.clear()
            self.requests.clear()
            self.failures.clear()
            self.pipeline_final_state = "PIPELINE_STATE_SUCCEEDED"

    def aliases(self, model_id: str) -> dict[str, str]:
        """Map alias -> version id for one model (a test's view of the registry state)."""
        state = self.models[model_id]
        return {
            alias: version_id
            for version_id, version in state.versions.items()
            for alias in version["versionAliases"]
        }

    def requests_to(self, method: str, path_contains: str) -> list[dict[str, Any]]:
        """Bodies of the recorded requests matching ``method`` and ``path_contains``."""
        return [
            body for m, path, body in self.requests if m == method.upper() and path_contains in path
        ]

    # -- request handling -----------------------------------------------------------------------

    def _next_id(self) -> str:
        self._counter += 1
        return str(self._counter)

    def handle(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Route one request; returns (HTTP status, JSON body)."""
        with self._lock:
            self.requests.append((method, path, body))
            for failure in self.failures:
                if (
                    failure.method == method
                    and failure.path_contains in path
                    and failure.hits < failure.times
                ):
                    failure.hits += 1
                    return failure.status, _error_body(failure.status, "injected failure")
            try:
                return 200, self._route(method, path, query, body)
            except _ApiError as error:
                return error.code, _error_body(error.code, error.message)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        match = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/(.*)", path)
        if match is None:
            raise _ApiError(404, f"unknown path {path}")
        parent, rest = match.groups()
        collection, _, tail = rest.partition("/")
        if rest.startswith("models:upload") and method == "POST":
            return self._upload(parent, body)
        if collection == "models":
            return self._models(method, parent, tail, query, body)
        if collection.startswith("operations") or "/operations/" in rest:
            return {"name": f"{parent}/{rest}", "done": True}
        if collection.startswith("pipelineJobs"):
            return self._pipeline_jobs(method, parent, tail, query, body)
        if collection.startswith("schedules"):
            return self._schedules(method, parent, tail, query, body)
        if collection.startswith("batchPredictionJobs"):
            return self._batch_jobs(method, parent, tail, body)
        raise _ApiError(404, f"unknown collection in {path}")

    # models -----------------------------------------------------------------------------------

    def _model_json(self, parent: str, state: _ModelState, version_id: str) -> dict[str, Any]:
        version = state.versions[version_id]
        return {
            "name": f"{parent}/models/{state.model_id}",
            "displayName": state.display_name,
            "versionId": version_id,
            **{k: v for k, v in version.items() if k != "versionId"},
        }

    def _resolve(self, ref: str) -> tuple[_ModelState, str]:
        model_id, _, version_ref = ref.partition("@")
        state = self.models.get(model_id)
        if state is None:
            raise _ApiError(404, f"Model {model_id} not found")
        version_ref = version_ref or "default"
        if version_ref in state.versions:
            return state, version_ref
        for version_id, version in state.versions.items():
            if version_ref in version["versionAliases"]:
                return state, version_id
        raise _ApiError(404, f"Model {model_id}@{version_ref} not found")

    @staticmethod
    def _check_alias(alias: str) -> None:
        if alias.isdigit() or not _ALIAS_RE.match(alias):
            raise _ApiError(400, f"invalid version alias {alias!r}")

    def _apply_aliases(self, state: _ModelState, version_id: str, aliases: list[str]) -> None:
        # Validate everything first so that a bad request changes nothing.
        for raw in aliases:
            alias = raw[1:] if raw.startswith("-") else raw
            self._check_alias(alias)
            if raw == "-default":
                raise _ApiError(400, "the default alias cannot be removed, only moved")
        for raw in aliases:
            version = state.versions[version_id]
            if raw.startswith("-"):
                if raw[1:] in version["versionAliases"]:
                    version["versionAliases"].remove(raw[1:])
                continue
            for other in state.versions.values():
                if raw in other["versionAliases"]:
                    other["versionAliases"].remove(raw)
            version["versionAliases"].append(raw)
            version["versionUpdateTime"] = _now()

    def _upload(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        model = dict(body.get("model") or {})
        if not model.get("displayName"):
            raise _ApiError(400, "model.displayName is required")
        parent_model = body.get("parentModel")
        if parent_model:
            state, _ = self._resolve(parent_model.rsplit("/", 1)[-1].split("@")[0])
            version_id = str(max(int(v) for v in state.versions) + 1)
        else:
            model_id = body.get("modelId") or self._next_id()
            if model_id in self.models:
                raise _ApiError(409, f"Model {model_id} already exists")
            state = _ModelState(model_id=model_id, display_name=model["displayName"])
            version_id = "1"
        aliases = [a for a in model.get("versionAliases", []) if not a.startswith("-")]
        for alias in aliases:
            self._check_alias(alias)
        now = _now()
        state.versions[version_id] = {
            "versionAliases": [],
            "labels": dict(model.get("labels", {})),
            "artifactUri": model.get("artifactUri", ""),
            "containerSpec": model.get("containerSpec", {}),
            "description": model.get("description", ""),
            "versionDescription": model.get("versionDescription", ""),
            "createTime": now,
            "updateTime": now,
            "versionCreateTime": now,
            "versionUpdateTime": now,
        }
        self.models[state.model_id] = state
        if version_id == "1" and "default" not in aliases:
            aliases.insert(0, "default")
        self._apply_aliases(state, version_id, aliases)
        return {
            "name": f"{parent}/models/{state.model_id}/operations/{self._next_id()}",
            "done": True,
            "response": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                "model": f"{parent}/models/{state.model_id}",
                "modelVersionId": version_id,
            },
        }

    def _filter(self, expression: str) -> list[tuple[str, str]]:
        if not expression.strip():
            return []
        terms = []
        for term in re.split(r"\s+AND\s+", expression.strip()):
            match = _FILTER_TERM_RE.match(term)
            if match is None:
                raise _ApiError(400, f"unsupported filter term {term!r}")
            terms.append((match.group(1), match.group(2)))
        return terms

    @staticmethod
    def _matches(model: dict[str, Any], terms: list[tuple[str, str]]) -> bool:
        for key, value in terms:
            if key.startswith("labels."):
                if model.get("labels", {}).get(key[len("labels.") :]) != value:
                    return False
            elif model.get("displayName") != value:
                return False
        return True

    def _models(
        self, method: str, parent: str, tail: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        if not tail:  # models collection
            if method != "GET":
                raise _ApiError(404, "unsupported method on models")
            terms = self._filter(query.get("filter", ""))
            found = []
            for state in self.models.values():
                default = self._resolve(f"{state.model_id}@default")[1]
                model = self._model_json(parent, state, default)
                if self._matches(model, terms):
                    found.append(model)
            return {"models": found}
        ref, _, sub = tail.partition("/")
        ref, _, verb = ref.partition(":")
        if sub.startswith("evaluations"):
            return self._evaluations(method, parent, ref, sub, body)
        if verb == "listVersions":
            state, _ = self._resolve(ref)
            terms = self._filter(query.get("filter", ""))
            versions = [self._model_json(parent, state, v) for v in state.versions]
            return {"models": [m for m in versions if self._matches(m, terms)]}
        state, version_id = self._resolve(ref)
        if verb == "mergeVersionAliases" and method == "POST":
            self._apply_aliases(state, version_id, list(body.get("versionAliases", [])))
            return self._model_json(parent, state, version_id)
        if verb:
            raise _ApiError(404, f"unsupported model method {verb}")
        if method == "GET":
            return self._model_json(parent, state, version_id)
        if method == "PATCH":
            mask = [p.strip() for p in query.get("updateMask", "").split(",") if p.strip()]
            allowed = {"labels", "description", "versionDescription", "displayName"}
            for path in mask:
                key = re.sub(r"_(\w)", lambda m: m.group(1).upper(), path)
                if key not in allowed:
                    raise _ApiError(400, f"unsupported update mask {path}")
                if key == "displayName":
                    state.display_name = body.get(key, "")
                else:
                    state.versions[version_id][key] = body.get(key, {} if key == "labels" else "")
            state.versions[version_id]["versionUpdateTime"] = _now()
            return self._model_json(parent, state, version_id)
        raise _ApiError(404, f"unsupported method {method} on a model")

    def _evaluations(
        self, method: str, parent: str, ref: str, sub: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        state, version_id = self._resolve(ref)
        model_name = f"{parent}/models/{state.model_id}"
        if sub == "evaluations:import" and method == "POST":
            evaluation = dict(body.get("modelEvaluation") or {})
            if not evaluation.get("metricsSchemaUri"):
                raise _ApiError(400, "modelEvaluation.metricsSchemaUri is required")
            evaluation["name"] = f"{model_name}/evaluations/{self._next_id()}"
            evaluation["createTime"] = _now()
            state.evaluations.append({"versionId": version_id, "evaluation": evaluation})
            return evaluation
        mine = [e["evaluation"] for e in state.evaluations if e["versionId"] == version_id]
        if sub == "evaluations" and method == "GET":
            return {"modelEvaluations": mine}
        eval_id = sub.split("/", 1)[1] if "/" in sub else ""
        for evaluation in mine:
            if evaluation["name"].endswith(f"/evaluations/{eval_id}"):
                return evaluation
        raise _ApiError(404, f"evaluation {eval_id} not found on {ref}")

    # pipeline jobs, schedules, batch prediction ---------------------------------------------

    def _pipeline_jobs(
        self, method: str, parent: str, tail: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        job_id, _, verb = tail.partition(":")
        if not job_id:
            if method == "POST":
                job_id = query.get("pipelineJobId") or f"pipeline-job-{self._next_id()}"
                if job_id in self.pipeline_jobs:
                    raise _ApiError(409, f"PipelineJob {job_id} already exists")
                job = {
                    **body,
                    "name": f"{parent}/pipelineJobs/{job_id}",
                    "state": "PIPELINE_STATE_RUNNING",
                    "createTime": _now(),
                }
                self.pipeline_jobs[job_id] = job
                return job
            return {"pipelineJobs": list(self.pipeline_jobs.values())}
        job = self.pipeline_jobs.get(job_id)
        if job is None:
            raise _ApiError(404, f"PipelineJob {job_id} not found")
        if verb == "cancel":
            job["state"] = "PIPELINE_STATE_CANCELLED"
            return {}
        if job["state"] == "PIPELINE_STATE_RUNNING":
            job["state"] = self.pipeline_final_state
            job["endTime"] = _now()
        return job

    def _schedules(
        self, method: str, parent: str, tail: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        schedule_id, _, verb = tail.partition(":")
        if not schedule_id:
            if method == "POST":
                schedule_id = self._next_id()
                schedule = {
                    **body,
                    "name": f"{parent}/schedules/{schedule_id}",
                    "state": "ACTIVE",
                    "createTime": _now(),
                }
                self.schedules[schedule_id] = schedule
                return schedule
            return {"schedules": list(self.schedules.values())}
        schedule = self.schedules.get(schedule_id)
        if schedule is None:
            raise _ApiError(404, f"Schedule {schedule_id} not found")
        if verb in ("pause", "resume"):
            schedule["state"] = "PAUSED" if verb == "pause" else "ACTIVE"
            return {}
        if method == "DELETE":
            del self.schedules[schedule_id]
            # A finished delete LRO carries an Empty response, as the real API's does.
            return {
                "name": f"{parent}/operations/{self._next_id()}",
                "done": True,
                "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
            }
        if method == "PATCH":
            schedule.update(body)
        return schedule

    def _batch_jobs(
        self, method: str, parent: str, tail: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        if not tail:
            if method == "POST":
                model = body.get("model", "")
                self._resolve(model.rsplit("/", 1)[-1])  # the model version must exist
                job_id = self._next_id()
                job = {
                    **body,
                    "name": f"{parent}/batchPredictionJobs/{job_id}",
                    "state": "JOB_STATE_PENDING",
                    "createTime": _now(),
                }
                self.batch_prediction_jobs[job_id] = job
                return job
            return {"batchPredictionJobs": list(self.batch_prediction_jobs.values())}
        job = self.batch_prediction_jobs.get(tail.partition(":")[0])
        if job is None:
            raise _ApiError(404, f"BatchPredictionJob {tail} not found")
        if job["state"] == "JOB_STATE_PENDING":
            job["state"] = "JOB_STATE_SUCCEEDED"
        return job


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": _STATUS_NAMES.get(code, "")}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeVertex

    def log_message(self, format: str, *args: object) -> None:
        del format, args  # keep pytest output clean

    def _serve(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        # The REST transport percent-encodes "@" in version names (models/3%401).
        path = urllib.parse.unquote(parsed.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            status, payload = 400, _error_body(400, "request body is not JSON")
        else:
            status, payload = self.fake.handle(method, path, query, body)
        data = json.dumps(payload).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")
