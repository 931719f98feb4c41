"""The stage contract: every stage writes a folder (an *artifact*) with a ``lamini_lm.json`` manifest beside its data.

A manifest records what made the artifact: the stage, lamini-lm's version, the full config (secrets removed), the
inputs (a path or Hub id, a fingerprint, and the manifest id of the artifact each came from: the lineage), the
versions of the packages that matter, prompt hashes, teacher models, row counts, tokens and cost, timings, the
data steps' :class:`StepReport` s and stage-specific facts (for training: base model, dataset ids, world size,
effective batch, precision, seed). A stage reads its input's manifest; cards are rendered from manifests alone.

Outputs are written by :func:`artifact_output`: into a temporary folder beside the target, renamed into place on
success. A target that holds anything but this stage's own artifact is refused unless ``overwrite`` is given, so a
user's files are never replaced by accident, and a crash never leaves half an artifact.

Example:
    >>> import tempfile, os
    >>> from lamini_lm.artifacts import Manifest, artifact_output, read_manifest
    >>> target = os.path.join(tempfile.mkdtemp(), "kept")
    >>> with artifact_output(target, "demo") as tmp:
    ...     Manifest(stage="demo", config={"api_key": "sk-secret", "n": 3}, rows=3).save(tmp)
    >>> m = read_manifest(target)
    >>> m.stage, m.rows, m.config
    ('demo', 3, {'api_key': '<redacted>', 'n': 3})
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from lamini_lm import __version__
from lamini_lm.errors import DataError, OutputExistsError
from lamini_lm.io import replace_dir, write_json

__all__ = [
    "MANIFEST_FILE",
    "Manifest",
    "StepReport",
    "artifact_output",
    "check_output",
    "describe_input",
    "describe_model",
    "fingerprint",
    "git_commit",
    "is_hub_id",
    "lineage",
    "package_versions",
    "read_manifest",
    "redact",
]

logger = logging.getLogger(__name__)

MANIFEST_FILE = "lamini_lm.json"
# The distributions whose versions change what a stage produces.
TRACKED_PACKAGES = (
    "lamini-lm",
    "datasets",
    "pyarrow",
    "huggingface_hub",
    "transformers",
    "tokenizers",
    "torch",
    "accelerate",
    "peft",
    "openai",
    "lm_eval",
)
# A key naming a secret; not settings that merely mention tokens (max_tokens, tokenizer_name, pad_token_id) or name
# the environment variable a secret is read from (api_key_env).
_SECRET_KEY = re.compile(r"(api[_-]?key|token(?!s|izer|_id)|secret|password|authorization|credential)(?!_env)", re.I)
_SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|Bearer\s+\S+)$")
REDACTED = "<redacted>"
# A Hub repo id: NAME or NAMESPACE/NAME (letters, digits, '-', '_', '.').
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Above this many bytes, an input is fingerprinted by names, sizes and modification times rather than content.
_CONTENT_HASH_LIMIT = 256 * 2**20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def redact(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, scalars) with secrets replaced by ``"<redacted>"``.

    A key that names a secret (``api_key``, ``token``, ``hub_token``, ...) loses its value whatever it is; a string
    that looks like a key (``sk-...``, ``hf_...``, ``Bearer ...``) is removed wherever it appears.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "", False) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return REDACTED if _SECRET_VALUE.match(value.strip()) else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return getattr(value, "value", None) if hasattr(value, "value") else str(value)  # enums, paths, objects


def package_versions(names: Sequence[str] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (those not installed are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit of the git checkout holding ``path`` (default: lamini-lm's own source), ``+dirty`` if changed."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    if not where.exists():
        return None
    where = where if where.is_dir() else where.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if head and dirty else head or None


def is_hub_id(value: str) -> bool:
    """Whether ``value`` reads as a Hub repo id rather than a local path (it is not an existing path either)."""
    return bool(_HUB_ID.match(value)) and not Path(value).exists() and not value.endswith((".json", ".jsonl"))


def describe_model(name: str) -> str:
    """A model name as a card shows it: a Hub id or an API model name as recorded; a local folder by its absolute
    path and what the folder's own manifest says it is (``extra["description"]``), else "a local model folder".

    Example:
        >>> describe_model("gpt-4o-mini")
        'gpt-4o-mini'
    """
    path = Path(name)
    if is_hub_id(name) or not path.is_dir():
        return name
    try:
        manifest = read_manifest(path)
    except DataError:  # a broken manifest there says nothing about the model
        manifest = None
    what = (manifest.extra.get("description") if manifest is not None else None) or "a local model folder"
    return f"{path.resolve()} ({what})"


def fingerprint(path: str | os.PathLike) -> str:
    """A SHA-256 of a file's or folder's content (names and bytes), or of names, sizes and mtimes past 256 MiB."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    files = [f for f in files if f.name != MANIFEST_FILE and not f.name.startswith(".")]
    total = sum(f.stat().st_size for f in files)
    h = hashlib.sha256()
    by_content = total <= _CONTENT_HASH_LIMIT
    for f in files:
        rel = f.name if f == path else str(f.relative_to(path))
        st = f.stat()
        h.update(f"{rel}\0{st.st_size}\0".encode())
        if by_content:
            with open(f, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(2**20), b""):
                    h.update(block)
        else:
            h.update(str(st.st_mtime_ns).encode())
    return ("sha256:" if by_content else "stat-sha256:") + h.hexdigest()


def _owning_manifest(path: Path) -> tuple[Path, Manifest] | None:
    """The artifact a path belongs to: the folder itself, or the nearest of its parents (3 levels) with a manifest."""
    for folder in [path, *list(path.parents)[:3]] if path.is_dir() else list(path.parents)[:4]:
        manifest = read_manifest(folder)
        if manifest is not None:
            return folder, manifest
    return None


def describe_input(source: Any, role: str = "input", revision: str | None = None) -> dict[str, Any]:
    """The manifest entry for one input: path or Hub id, fingerprint, and the artifact (manifest id) it came from.

    ``source`` is a local path, a Hub id, or an in-memory object (recorded by its type only).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.exists():
            entry: dict[str, Any] = {"role": role, "path": str(path.resolve()), "fingerprint": fingerprint(path)}
            owner = _owning_manifest(path.resolve())
            if owner is not None:
                folder, manifest = owner
                entry.update(manifest_id=manifest.id, stage=manifest.stage, artifact=str(folder))
            return entry
        if is_hub_id(str(source)):
            return {"role": role, "hub_id": str(source), "revision": revision}
        return {"role": role, "path": str(source), "missing": True}
    fp = getattr(source, "_fingerprint", None)  # a datasets.Dataset's own fingerprint
    return {"role": role, "object": type(source).__name__, **({"fingerprint": fp} if fp else {})}


@dataclass
class StepReport:
    """What one data step did: rows in and out, removed rows by reason and by source, examples, time, config.

    Every data step (dedup, filters, decontamination, generation parsing) returns one; it is stored in the output's
    manifest and read by the dataset card.
    """

    step: str
    rows_in: int
    rows_out: int
    removed: dict[str, int] = field(default_factory=dict)
    removed_by_source: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_removed(self) -> int:
        return self.rows_in - self.rows_out

    def to_dict(self) -> dict[str, Any]:
        return redact(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepReport:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self) -> str:
        """One line: ``dedup: 120 rows in, 97 out (exact 20, near 3)``."""
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(self.removed.items(), key=lambda kv: -kv[1]) if v)
        return f"{self.step}: {self.rows_in:,} rows in, {self.rows_out:,} out" + (f" ({reasons})" if reasons else "")


@dataclass
class Manifest:
    """The record of one artifact (``lamini_lm.json``); see the module docstring for what each field holds."""

    stage: str
    config: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    rows: int | None = None
    tokens: dict[str, int] | None = None
    cost_usd: float | None = None
    teacher_models: list[str] = field(default_factory=list)
    prompt_hashes: dict[str, str] | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # the top-level names the stage wrote (filled by artifact_output), so a user's file added later is noticed
    files: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    lamini_lm_version: str = __version__
    versions: dict[str, str] = field(default_factory=package_versions)
    git_commit: str | None = field(default_factory=git_commit)

    def __post_init__(self):
        self.config = redact(self.config)
        self.extra = redact(self.extra)
        self.reports = [r.to_dict() if isinstance(r, StepReport) else redact(r) for r in self.reports]

    def report(self, step: str) -> StepReport | None:
        """The stored report of ``step`` (``"dedup"``, ``"filters"``, ...), if this artifact ran it."""
        for r in self.reports:
            if r.get("step") == step:
                return StepReport.from_dict(r)
        return None

    def input(self, role: str = "input") -> dict[str, Any] | None:
        return next((i for i in self.inputs if i.get("role") == role), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/lamini_lm.json`` atomically."""
        return write_json(self.to_dict(), Path(folder) / MANIFEST_FILE)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def read_manifest(path: str | os.PathLike) -> Manifest | None:
    """The manifest of the artifact folder ``path`` (or of the manifest file itself); None if it has none."""
    path = Path(path)
    file = path / MANIFEST_FILE if path.is_dir() else path
    if file.name != MANIFEST_FILE or not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{file}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or "stage" not in data:
        raise DataError(f"{file}: not a lamini-lm manifest (no 'stage')")
    return Manifest.from_dict(data)


def lineage(path: str | os.PathLike, max_depth: int = 32) -> list[Manifest]:
    """This artifact's manifest, then its inputs' artifacts' manifests, depth first, each once.

    Inputs are followed through their recorded ``artifact`` folder; an input moved or deleted since ends its branch.
    """
    seen: set[str] = set()
    out: list[Manifest] = []

    def visit(folder: Path, depth: int) -> None:
        manifest = read_manifest(folder)
        if manifest is None or manifest.id in seen or depth > max_depth:
            return
        seen.add(manifest.id)
        out.append(manifest)
        for entry in manifest.inputs:
            if entry.get("artifact"):
                visit(Path(entry["artifact"]), depth + 1)

    visit(Path(path), 0)
    return out


def check_output(
    target: str | os.PathLike, stage: str | Sequence[str], overwrite: bool = False, flag: str = "--output"
):
    """Refuse ``target`` unless it is missing, empty, this stage's own artifact, or ``overwrite`` is given.

    Call it before any paid or long work, so a bad output path costs nothing. ``stage`` may list several stage names
    whose artifacts this one may replace.
    """
    target = Path(target)
    stages = {stage} if isinstance(stage, str) else set(stage)
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        if overwrite:
            raise OutputExistsError(
                f"{flag} {target}: is a file, not a folder; remove it yourself or pick another path"
            )
        raise OutputExistsError(f"{flag} {target}: a file is there; choose another {flag}")
    if overwrite or not any(target.iterdir()):
        return
    manifest = read_manifest(target)
    if manifest is not None and manifest.stage in stages:
        added = sorted(p.name for p in target.iterdir() if p.name != MANIFEST_FILE and p.name not in manifest.files)
        if not manifest.files or not added:  # (a manifest without a file list predates the list)
            return
        raise OutputExistsError(
            f"{flag} {target}: a lamini-lm {manifest.stage!r} output, but {added[:3]} were added to it since; move "
            f"them out, choose another {flag}, or pass --overwrite to replace it all"
        )
    theirs = sorted(p.name for p in target.iterdir())[:3]
    what = (
        f"a lamini-lm {manifest.stage!r} output" if manifest is not None else f"files that are not its own ({theirs})"
    )
    raise OutputExistsError(f"{flag} {target}: holds {what}; choose another {flag} or pass --overwrite to replace it")


@contextlib.contextmanager
def artifact_output(
    target: str | os.PathLike, stage: str | Sequence[str], overwrite: bool = False, flag: str = "--output"
) -> Iterator[Path]:
    """A temporary folder beside ``target`` to write the artifact into; renamed onto ``target`` when the block ends.

    The target is checked first (:func:`check_output`); on an error or Ctrl-C the temporary folder is removed and
    ``target`` is as it was.
    """
    check_output(target, stage, overwrite, flag=flag)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folders are 0700; an artifact gets the mode mkdir would give
    try:
        yield tmp
        manifest = read_manifest(tmp)
        if manifest is not None:  # record what the stage wrote
            manifest.files = sorted(p.name for p in tmp.iterdir() if p.name != MANIFEST_FILE)
            manifest.save(tmp)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
