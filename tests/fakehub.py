"""A small Hub-compatible HTTP app, so tests push and pull through the real ``huggingface_hub`` client offline.

It speaks the parts of the Hub API that ``create_repo``, ``upload_folder``/``create_commit`` (preupload, NDJSON
commit, the LFS batch API with basic transfers), ``Dataset.push_to_hub``, ``hf_hub_download``,
``snapshot_download``, ``HfFileSystem`` and ``from_pretrained`` use: repo info, tree, paths-info, resolve
(HEAD and GET, with ``Range``), whoami and validate-yaml. Repositories live in memory; every commit is an
immutable snapshot addressed by a 40-hex id, so revisions by commit id work too. Only the ``main`` branch exists.

Xet is not spoken: clients must run with ``HF_HUB_DISABLE_XET=1`` (the ``fake_hub`` fixture sets it). Writes
need an ``Authorization: Bearer ...`` header (any token); reads of public repos do not.

Example (what the ``fake_hub`` fixture in ``tests/conftest.py`` does)::

    with FakeHub() as hub:                      # serves on 127.0.0.1:<free port>
        os.environ["HF_ENDPOINT"] = hub.endpoint
        ...
        hub.files("user/model")                 # {"config.json": b"...", ...} at the head of main
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import threading
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote

import yaml

__all__ = ["FakeHub"]

_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Paths the real Hub's default .gitattributes routes to LFS; binary samples and big files go there too.
_LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".parquet",
    ".arrow",
    ".model",
    ".npy",
    ".npz",
    ".pkl",
    ".zip",
    ".gz",
    ".png",
    ".jpg",
)
_LFS_MIN_SIZE = 10 * 1024 * 1024
_GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in _LFS_SUFFIXES).encode()


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclasses.dataclass(frozen=True)
class _Blob:
    """A file at one commit: its bytes, and for LFS files the sha256 the client addressed it by."""

    data: bytes
    lfs_sha256: str | None = None

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.lfs_sha256}\nsize {len(self.data)}\n"
        ).encode()

    @property
    def oid(self) -> str:  # the git blob id: of the content, or of the LFS pointer file
        return _git_blob_id(self.pointer if self.lfs_sha256 else self.data)

    def entry(self, path: str) -> dict:
        out = {"type": "file", "path": path, "size": len(self.data), "oid": self.oid}
        if self.lfs_sha256:
            out["lfs"] = {"oid": self.lfs_sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return out


@dataclasses.dataclass
class _Commit:
    oid: str
    title: str
    date: str
    files: dict[str, _Blob]


@dataclasses.dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: list[_Commit]

    @property
    def head(self) -> _Commit:
        return self.commits[-1]


class _Error(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.commit, self.extra = status, message, code, commit, extra


class FakeHub:
    """An in-memory Hub on 127.0.0.1, served by uvicorn in a background thread (use as a context manager)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, user: str = "fake-user"):
        self.host, self.port, self.user = host, port, user
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> FakeHub:
        import uvicorn

        from lamini_lm.testing import free_port

        self.port = self.port or free_port()
        config = uvicorn.Config(
            self._asgi, host=self.host, port=self.port, log_level="warning", lifespan="off", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-hub", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fake hub did not start on {self.endpoint}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- inspection helpers for tests ------------------------------------------------------------------------
    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """The files at the head of ``main`` of a repository, path -> bytes."""
        repo = self.repos[(repo_type, repo_id)]
        return {path: blob.data for path, blob in repo.head.files.items()}

    def commits(self, repo_id: str, repo_type: str = "model") -> list[str]:
        """Commit titles, oldest first (the first is the repository's creation)."""
        return [c.title for c in self.repos[(repo_type, repo_id)].commits]

    # ---- HTTP ------------------------------------------------------------------------------------------------
    # (method, path regex, handler). API routes carry the repo type; git/file routes a "datasets/" prefix.
    _API = r"/api/(?P<t>model|dataset|space)s/(?P<id>[^/]+/[^/]+)"
    _GIT = r"/(?P<prefix>datasets/|spaces/)?(?P<id>[^/]+/[^/]+)"
    _RESOLVE = _GIT + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)"
    _ROUTES: list[tuple[str, re.Pattern, str]] = [
        (m, re.compile(p), h)
        for m, p, h in [
            ("GET", r"/api/whoami-v2", "_whoami"),
            ("POST", r"/api/validate-yaml", "_validate_yaml"),
            ("POST", r"/api/repos/create", "_create_repo"),
            ("DELETE", r"/api/repos/delete", "_delete_repo"),
            ("POST", _API + r"/preupload/(?P<rev>[^/]+)", "_preupload"),
            ("POST", _API + r"/commit/(?P<rev>[^/]+)", "_commit"),
            ("GET", _API + r"/tree/(?P<rev>[^/]+)(?P<path>/.*)?", "_tree"),
            ("POST", _API + r"/paths-info/(?P<rev>[^/]+)", "_paths_info"),
            ("GET", _API + r"(?:/revision/(?P<rev>[^/]+))?", "_repo_info"),
            ("POST", _GIT + r"\.git/info/lfs/objects/batch", "_lfs_batch"),
            ("PUT", r"/__lfs/(?P<oid>[0-9a-f]{64})", "_lfs_put"),
            ("POST", r"/__lfs/verify", "_lfs_verify"),
            ("HEAD", _RESOLVE, "_resolve"),
            ("GET", _RESOLVE, "_resolve"),
        ]
    ]

    async def _asgi(self, scope, receive, send):
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = scope["path"]
        self.requests.append((request.method, path))
        try:
            for method, pattern, handler in self._ROUTES:
                match = pattern.fullmatch(path)
                if match and method == request.method:
                    body = await request.body()
                    with self._lock:
                        response = getattr(self, handler)(request, body, **match.groupdict())
                    break
            else:
                raise _Error(404, f"no route for {request.method} {path}")
        except _Error as e:
            headers = {"X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
            if e.commit:
                headers["X-Repo-Commit"] = e.commit
            response = JSONResponse({"error": e.message, **e.extra}, status_code=e.status, headers=headers)
        await response(scope, receive, send)

    # ---- helpers ---------------------------------------------------------------------------------------------
    def _require_token(self, request) -> None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise _Error(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, repo_id: str, request=None) -> _Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and request is not None and "authorization" not in request.headers):
            raise _Error(404, f"Repository Not Found for {repo_type} {repo_id}", code="RepoNotFound")
        return repo

    @staticmethod
    def _at(repo: _Repo, rev: str | None) -> _Commit:
        rev = unquote(rev or "main")
        if rev == "main":
            return repo.head
        for c in repo.commits:
            if c.oid == rev or (len(rev) >= 7 and c.oid.startswith(rev)):
                return c
        raise _Error(404, f"Invalid rev id: {rev}", code="RevisionNotFound")

    def _new_commit(self, repo: _Repo, title: str, files: dict[str, _Blob]) -> _Commit:
        seed = f"{repo.repo_type}/{repo.repo_id}/{len(repo.commits)}/{title}/{time.time_ns()}"
        date = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        commit = _Commit(hashlib.sha1(seed.encode()).hexdigest(), title, date, files)
        repo.commits.append(commit)
        return commit

    def _url(self, repo: _Repo) -> str:
        return f"{self.endpoint}/{_PREFIX[repo.repo_type]}{repo.repo_id}"

    @staticmethod
    def _json(data, status: int = 200, headers: dict | None = None):
        from starlette.responses import JSONResponse

        return JSONResponse(data, status_code=status, headers=headers)

    # ---- handlers --------------------------------------------------------------------------------------------
    def _whoami(self, request, body):
        self._require_token(request)
        return self._json({"type": "user", "name": self.user, "orgs": [], "auth": {"type": "access_token"}})

    def _validate_yaml(self, request, body):
        """The Hub rejects a README whose metadata block is not a YAML mapping; so does this."""
        content = json.loads(body or b"{}").get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, flags=re.S)
        if match is None:
            return self._json({"errors": [], "warnings": [{"message": "Empty or missing yaml metadata"}]})
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError as e:
            return self._json({"errors": [{"message": f"YAML parse error: {e}"}]}, status=400)
        if meta is not None and not isinstance(meta, dict):
            return self._json({"errors": [{"message": "metadata must be a YAML mapping"}]}, status=400)
        return self._json({"errors": [], "warnings": []})

    def _create_repo(self, request, body):
        self._require_token(request)
        payload = json.loads(body)
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        if (repo_type, repo_id) in self.repos:  # the Hub's 409 still carries the url (create_repo(exist_ok=True))
            raise _Error(409, "You already created this repo", url=self._url(self.repos[(repo_type, repo_id)]))
        repo = _Repo(repo_type, repo_id, payload.get("visibility") == "private", [])
        self._new_commit(repo, "initial commit", {".gitattributes": _Blob(_GITATTRIBUTES)})
        self.repos[(repo_type, repo_id)] = repo
        return self._json({"url": self._url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self, request, body):
        self._require_token(request)
        payload = json.loads(body)
        key = (payload.get("type") or "model", f"{payload.get('organization') or self.user}/{payload['name']}")
        if self.repos.pop(key, None) is None:
            raise _Error(404, "Repository Not Found", code="RepoNotFound")
        return self._json({})

    def _repo_info(self, request, body, t, id, rev=None):
        repo = self._repo(t, id, request)
        commit = self._at(repo, rev)
        info = {
            "id": repo.repo_id,
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "lastModified": commit.date,
            "createdAt": repo.commits[0].date,
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }
        readme = commit.files.get("README.md")
        if readme is not None:
            from huggingface_hub.repocard import RepoCard

            info["cardData"] = RepoCard(
                readme.data.decode("utf-8", "replace"), ignore_metadata_errors=True
            ).data.to_dict()
        if t == "model" and "config.json" in commit.files:
            try:
                info["config"] = json.loads(commit.files["config.json"].data)
            except json.JSONDecodeError:
                pass
        return self._json(info)

    def _preupload(self, request, body, t, id, rev):
        self._require_token(request)
        repo = self._repo(t, id, request)
        commit = self._at(repo, rev)
        out = []
        for f in json.loads(body)["files"]:
            sample = base64.b64decode(f.get("sample", ""))
            lfs = f["path"].endswith(_LFS_SUFFIXES) or f["size"] >= _LFS_MIN_SIZE or b"\x00" in sample
            existing = commit.files.get(f["path"])
            out.append(
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": existing.oid if existing else None,
                }
            )
        return self._json({"files": out, "commitOid": commit.oid})

    def _lfs_batch(self, request, body, id, prefix=None):
        self._require_token(request)
        repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(prefix or "", "model")
        self._repo(repo_type, id, request)
        payload = json.loads(body)
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs:  # already stored: no actions, the client skips the upload
                entry["actions"] = {
                    "upload": {"href": f"{self.endpoint}/__lfs/{obj['oid']}"},
                    "verify": {"href": f"{self.endpoint}/__lfs/verify"},
                }
            objects.append(entry)
        return self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_put(self, request, body, oid):
        if hashlib.sha256(body).hexdigest() != oid:
            raise _Error(400, f"sha256 of the uploaded content does not match {oid}")
        self.lfs[oid] = body
        return self._json({})

    def _lfs_verify(self, request, body):
        payload = json.loads(body)
        if len(self.lfs.get(payload["oid"], b"")) != payload["size"] or payload["oid"] not in self.lfs:
            raise _Error(404, f"LFS object {payload['oid']} not found")
        return self._json({})

    def _commit(self, request, body, t, id, rev):
        self._require_token(request)
        repo = self._repo(t, id, request)
        if unquote(rev) != "main":
            raise _Error(404, f"Invalid rev id: {unquote(rev)} (this fake hub only has main)", code="RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _Error(400, "the first NDJSON line of a commit must be its header")
        header = lines[0]["value"]
        parent = header.get("parentCommit")
        if parent and parent != repo.head.oid:
            raise _Error(412, f"parent commit {parent} is not the head of main ({repo.head.oid})")
        files = dict(repo.head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = _Blob(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                data = self.lfs.get(value["oid"])
                if data is None:
                    raise _Error(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                files[value["path"]] = _Blob(data, lfs_sha256=value["oid"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise _Error(404, f"A file with this name doesn't exist: {value['path']}", code="EntryNotFound")
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for p in [p for p in files if p.startswith(folder)]:
                    del files[p]
            else:
                raise _Error(400, f"unknown commit operation {key!r}")
        commit = self._new_commit(repo, header.get("summary", ""), files)
        return self._json(
            {"commitUrl": f"{self._url(repo)}/commit/{commit.oid}", "commitOid": commit.oid, "pullRequestUrl": None}
        )

    @staticmethod
    def _folders(files: dict[str, _Blob]) -> set[str]:
        return {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}

    def _entries(self, commit: _Commit, paths) -> list[dict]:
        folders = self._folders(commit.files)
        out = []
        for p in paths:
            if p in commit.files:
                out.append(commit.files[p].entry(p))
            elif p in folders:
                out.append(
                    {"type": "directory", "path": p, "oid": hashlib.sha1(f"{commit.oid}/{p}".encode()).hexdigest()}
                )
        return out

    def _tree(self, request, body, t, id, rev, path=None):
        repo = self._repo(t, id, request)
        commit = self._at(repo, rev)
        base = unquote(path or "").strip("/")
        recursive = request.query_params.get("recursive", "false").lower() in ("1", "true")
        folders = self._folders(commit.files)
        if base and base not in folders:
            raise _Error(404, f"Entry not found: {base}", code="EntryNotFound", commit=commit.oid)
        prefix = base + "/" if base else ""
        names = sorted(p for p in set(commit.files) | folders if p.startswith(prefix))
        if not recursive:
            names = [p for p in names if "/" not in p[len(prefix) :]]
        return self._json(self._entries(commit, names))

    def _paths_info(self, request, body, t, id, rev):
        repo = self._repo(t, id, request)
        commit = self._at(repo, rev)
        if request.headers.get("content-type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        return self._json(self._entries(commit, [p.strip("/") for p in paths]))

    def _resolve(self, request, body, id, rev, path, prefix=None):
        from starlette.responses import Response

        repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(prefix or "", "model")
        repo = self._repo(repo_type, id, request)
        commit = self._at(repo, rev)
        blob = commit.files.get(unquote(path))
        if blob is None:
            raise _Error(404, f"Entry not found: {unquote(path)}", code="EntryNotFound", commit=commit.oid)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.oid}"', "Accept-Ranges": "bytes"}
        if blob.lfs_sha256:
            headers.update({"X-Linked-Etag": f'"{blob.lfs_sha256}"', "X-Linked-Size": str(len(blob.data))})
        data, status = blob.data, 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(status_code=status, headers=headers)
        return Response(content=data, status_code=status, headers=headers, media_type="application/octet-stream")
