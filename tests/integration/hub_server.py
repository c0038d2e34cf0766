"""A local model hub for tests: serves folders in Hugging Face's URL layout over real HTTP.

Only the server is ours; the client under test is the real ``huggingface_hub`` (through ``HF_ENDPOINT``
or ``endpoint=``).  Implemented: ``/api/models/<id>[/revision/<rev>]`` (repo info, file sizes),
``/api/models/<id>/tree/<rev>`` (the recursive listing ``snapshot_download`` uses) and
``/<id>/resolve/<rev>/<file>`` (HEAD metadata, GET with ``Range``: resumable downloads);
weights (``*.safetensors``) are listed as LFS files with their sha256.
``throttle`` slows file bodies (bytes per second) so a test can kill a download half-way;
``claimed_sizes`` lets the API report other sizes than the bytes served (the disk check).
ModelScope's layout (``/api/v1/models/<id>/repo/files``, ``/api/v1/models/<id>/repo?FilePath=``) serves
the same folders to the real ``modelscope`` client through ``MODELSCOPE_ENDPOINT``.
Every request is logged in ``requests`` as ``(method, path with query, range header)``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos
        self.throttle: float | None = None  # bytes per second for file bodies
        self.claimed_sizes: dict[str, int] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Hub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo: str) -> dict[str, Path]:
        root = self.repos[repo]
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _json(self, obj, status: int = 200) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _not_found(self) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, unquote(self.path), self.headers.get("Range")))
                if path.startswith("/api/models/"):
                    return self._api(path[len("/api/models/") :])
                if path.startswith("/api/v1/models/"):
                    return self._modelscope(path[len("/api/v1/models/") :])
                parts = path.strip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, rel = "/".join(parts[:2]), "/".join(parts[4:])
                    return self._file(repo, rel)
                if path == "/":
                    return self._json({"hub": "test"})
                return self._not_found()

            def _api(self, rest: str) -> None:
                parts = rest.split("/")
                repo = "/".join(parts[:2])
                if repo not in hub.repos:
                    return self._not_found()
                files = hub.files(repo)
                sizes = {rel: hub.claimed_sizes.get(rel, p.stat().st_size) for rel, p in files.items()}
                if len(parts) >= 3 and parts[2] == "tree":
                    return self._json(
                        [
                            {"type": "file", "path": rel, "size": sizes[rel], "oid": _sha1(files[rel])}
                            for rel in files
                        ]
                    )
                return self._json(
                    {
                        "_id": repo,
                        "id": repo,
                        "modelId": repo,
                        "sha": COMMIT,
                        "private": False,
                        "tags": [],
                        "siblings": [
                            {"rfilename": rel, "size": sizes[rel], "blobId": _sha1(p), **_lfs(rel, files)}
                            for rel, p in files.items()
                        ],
                    }
                )

            def _modelscope(self, rest: str) -> None:
                """ModelScope's layout: ``repo/files`` lists, ``repo?FilePath=`` serves a file."""
                parts = rest.split("/")
                repo = "/".join(parts[:2])
                if repo not in hub.repos:
                    return self._json({"Code": 404, "Success": False, "Message": "not found"}, 404)
                files = hub.files(repo)
                if parts[2:] == ["repo", "files"]:
                    listing = [
                        {
                            "Name": rel.rsplit("/", 1)[-1],
                            "Path": rel,
                            "Type": "blob",
                            "Size": hub.claimed_sizes.get(rel, p.stat().st_size),
                            "Sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                            "Revision": COMMIT,
                        }
                        for rel, p in files.items()
                    ]
                    return self._json({"Code": 200, "Success": True, "Data": {"Files": listing}})
                if parts[2:] == ["repo"]:
                    query = dict(parse_qsl(urlparse(self.path).query))
                    return self._file(repo, query.get("FilePath", ""))
                return self._json({"Code": 404, "Success": False, "Message": "unknown"}, 404)

            def _file(self, repo: str, rel: str) -> None:
                path = hub.files(repo).get(rel) if repo in hub.repos else None
                if path is None:
                    return self._not_found()
                data = path.read_bytes()
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[len("bytes=") :].split("-")[0] or 0)
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if self.command == "HEAD":
                    return
                step = 16 * 1024
                try:
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i : i + step])
                        if hub.throttle:
                            time.sleep(step / hub.throttle)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _lfs(rel: str, files: dict[str, Path]) -> dict:
    """Weights are LFS files on the hub: their listing carries the sha256 the client can check."""
    if not rel.endswith(".safetensors"):
        return {}
    data = files[rel].read_bytes()
    return {"lfs": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}}


def _sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
