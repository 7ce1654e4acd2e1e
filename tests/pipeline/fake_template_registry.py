"""A local HTTP stand-in for a Kubeflow template registry (Artifact Registry's KFP API shape).

``kfp.registry.RegistryClient`` aimed at a non-Artifact-Registry host uses relative URLs and no
Google auth, so the real client talks to this server over HTTP:

* ``POST {host}`` multipart (``content`` file, optional ``tags`` form field): stores a version,
  named by the sha256 of its bytes, of the package named by the YAML's ``pipelineInfo.name``;
  answers ``PACKAGE/sha256:HEX`` as Artifact Registry does.
* ``GET {host}/packages/PKG/tags/TAG``: ``{"name": ..., "version": ".../versions/sha256:HEX"}``.
* ``GET {host}/PKG/REF`` (REF a version or a tag): the stored YAML.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml


class FakeTemplateRegistry:
    """In-memory template registry served on 127.0.0.1 under the path ``/repo``."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, bytes]] = {}  # package -> digest -> content
        self.tags: dict[str, dict[str, str]] = {}  # package -> tag -> digest
        self.uploads: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/repo"

    def start(self) -> FakeTemplateRegistry:
        handler = type("_Bound", (_Handler,), {"registry": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def upload(self, content: bytes, tags: list[str]) -> str:
        package = yaml.safe_load(content)["pipelineInfo"]["name"]
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        self.versions.setdefault(package, {})[digest] = content
        for tag in tags:
            self.tags.setdefault(package, {})[tag] = digest
        self.uploads.append({"package": package, "digest": digest, "tags": tags})
        return f"{package}/{digest}"


class _Handler(BaseHTTPRequestHandler):
    registry: FakeTemplateRegistry

    def log_message(self, format: str, *args: object) -> None:
        del format, args

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        header = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
        fields: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = part.get_payload(decode=True) or b""
        if "content" not in fields:
            self._send(400, b'{"error": "no content"}')
            return
        tags = [t for t in fields.get("tags", b"").decode().split(",") if t]
        self._send(200, self.registry.upload(fields["content"], tags).encode(), "text/plain")

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:1] != ["repo"]:
            self._send(404, b"{}")
            return
        parts = parts[1:]
        if len(parts) == 4 and parts[0] == "packages" and parts[2] == "tags":
            package, tag = parts[1], parts[3]
            digest = self.registry.tags.get(package, {}).get(tag)
            if digest is None:
                self._send(404, b'{"error": "tag not found"}')
                return
            body = {
                "name": f"packages/{package}/tags/{tag}",
                "version": f"packages/{package}/versions/{digest}",
            }
            self._send(200, json.dumps(body).encode())
            return
        if len(parts) == 2:
            package, ref = parts
            digest = self.registry.tags.get(package, {}).get(ref, ref)
            content = self.registry.versions.get(package, {}).get(digest)
            if content is not None:
                self._send(200, content, "application/x-yaml")
                return
        self._send(404, b"{}")
