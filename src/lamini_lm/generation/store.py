"""The exactly-once store: every teacher answer, committed to SQLite (WAL) the moment it arrives.

A request is keyed by :func:`request_key`, a SHA-256 of (model, messages, sampling parameters, prompt version).
Re-running a command after a crash, Ctrl-C or ``kill -9`` sends only the keys the store does not hold: a cached
answer is never requested again. Failures that would fail again (a 400, a prompt longer than the context) are
stored too; transient ones (retries exhausted, budget reached) are not, so a re-run tries them again.

Batch API runs also record their batch ids here, so polling resumes after a restart.

Several processes may share one store (the same command started twice, or two commands whose requests overlap):
before sending, a run *claims* its missing keys (:meth:`Store.claim`); a key claimed by another live process is
not sent again but waited for. Claims of a process that died (``kill -9``) are taken over by the next claimant.

Example:
    >>> from lamini_lm.generation.store import Store, request_key
    >>> from lamini_lm.records import Response
    >>> key = request_key("m", [{"role": "user", "content": "hi"}], {"temperature": 1.0})
    >>> with Store(":memory:") as store:
    ...     store.put(key, Response("hello"))
    ...     store.get_many([key])[key].text
    'hello'
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from lamini_lm.errors import DataError, UsageError
from lamini_lm.records import Response

__all__ = ["CACHE_ENV", "Store", "default_store_path", "request_key"]

CACHE_ENV = "LAMINI_LM_CACHE"  # a folder: the teacher cache is <folder>/teacher.sqlite
STORE_FILE = "teacher.sqlite"


def default_store_path() -> str:
    """The shared teacher cache: ``$LAMINI_LM_CACHE/teacher.sqlite``, else ``$XDG_CACHE_HOME/lamini_lm/teacher.sqlite``
    (``~/.cache/lamini_lm/teacher.sqlite``), the convention huggingface_hub follows for its own cache.

    One cache for every output folder: the same request is never paid twice, whatever ``--output`` a run writes.
    Read at call time, so a changed environment variable applies.
    """
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(xdg, "lamini_lm")
    return os.path.join(os.path.expanduser(folder), STORE_FILE)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    response TEXT NOT NULL,
    ok INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    base_url TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    keys TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL
);
"""
SCHEMA_VERSION = "1"


def request_key(
    model: str, messages: Sequence[Mapping[str, Any]], sampling: Mapping[str, Any], prompt_version: str | None = None
) -> str:
    """Hex SHA-256 of the request's identity: what the teacher is asked, how, and with which prompt version."""
    payload = json.dumps(
        [model, list(messages), dict(sampling), prompt_version], sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Store:
    """SQLite store of answers keyed by :func:`request_key`; safe to share between processes (WAL, busy timeout)."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            # autocommit mode: each put() is its own transaction, durable once it returns
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (SIGKILL); only a power cut can drop the last commits
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise UsageError(
                f"--store {self.path}: cannot open it as a teacher cache ({e}); "
                f"pass another --store or set ${CACHE_ENV}"
            ) from None
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise DataError(f"{self.path}: store schema {row[0]}, this lamini-lm reads {SCHEMA_VERSION}")
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"

    @functools.cached_property
    def _started(self) -> float:
        """This process's start time: with the pid, what tells a live claimant from a reused pid."""
        import psutil

        return psutil.Process(self.pid).create_time()

    # answers
    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        """The stored responses among ``keys``."""
        q = "SELECT key, response FROM responses WHERE key IN ({})"
        return {key: Response.from_dict(json.loads(blob)) for key, blob in self._select_in(q, keys)}

    def _select_in(self, query: str, keys: Iterable[str], *params: Any) -> Iterator[tuple]:
        """Rows of ``query`` (its ``{}`` standing for the placeholders of ``keys``), in chunks under SQLite's cap on
        bound parameters; ``params`` bind before the keys."""
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            yield from self._db.execute(query.format(",".join("?" * len(chunk))), [*params, *chunk])

    def put(self, key: str, response: Response) -> None:
        """Commit one answer (or permanent failure) now."""
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
            (key, response.to_json(), int(response.ok), time.time()),
        )

    def first_asked(self, keys: Iterable[str]) -> set[str]:
        """The ``keys`` this store object has not been asked before: what a run counts as its distinct requests.

        Remembered in a temporary table of this connection (on disk, dropped on close), so a streaming run counts
        a request repeated in two chunks once without holding millions of keys in memory.
        """
        keys = list(dict.fromkeys(keys))
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS asked (key TEXT PRIMARY KEY)")
        seen = {k for (k,) in self._select_in("SELECT key FROM temp.asked WHERE key IN ({})", keys)}
        new = [k for k in keys if k not in seen]
        self._db.execute("BEGIN")  # one transaction for the batch; the temporary table locks nothing in the file
        self._db.executemany("INSERT INTO temp.asked VALUES (?)", ((k,) for k in new))
        self._db.execute("COMMIT")
        return set(new)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def keys(self) -> set[str]:
        return {k for (k,) in self._db.execute("SELECT key FROM responses")}

    def rows(self) -> Iterator[tuple[str, Response, float]]:
        """Every stored ``(key, response, created)`` (created: seconds since the epoch), oldest first."""
        for key, blob, created in self._db.execute("SELECT key, response, created FROM responses ORDER BY created"):
            yield key, Response.from_dict(json.loads(blob)), created

    def delete(self, keys: Iterable[str]) -> int:
        """Remove the answers of ``keys``; returns how many were there."""
        removed = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for key in dict.fromkeys(keys):
                removed += self._db.execute("DELETE FROM responses WHERE key = ?", (key,)).rowcount
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return removed

    def spent_usd(self) -> float:
        """Total cost of every stored answer (all runs that used this store)."""
        total = 0.0
        for (blob,) in self._db.execute("SELECT response FROM responses"):
            total += json.loads(blob).get("cost_usd") or 0.0
        return total

    # claims: which process is answering which key
    def claim(self, keys: Iterable[str]) -> set[str]:
        """Claim the ``keys`` that are neither answered in the store nor claimed by another live process.

        Returns the keys of ``keys`` this store object now holds (claimed before or now): send those, and wait for
        the rest (:meth:`claimed_by_others`). Atomic against other processes; claims of dead processes on this host are
        dropped first.
        """
        keys = list(dict.fromkeys(keys))
        started = self._started  # looked up once, outside the transaction
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._drop_dead_claims()
            self._db.executemany(
                "INSERT OR IGNORE INTO claims SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS "
                "(SELECT 1 FROM responses WHERE key = ?)",
                ((k, self.owner, self.host, self.pid, started, k) for k in keys),
            )
            # only among ``keys``: a streaming run claims chunk after chunk, and its earlier claims stay
            mine = {k for (k,) in self._select_in("SELECT key FROM claims WHERE owner = ? AND key IN ({})", keys,
                                                  self.owner)}  # fmt: skip
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return mine.intersection(keys)

    def claimed_by_others(self, keys: Iterable[str]) -> dict[str, str]:
        """``{key: "host:pid"}`` for the ``keys`` another process has claimed."""
        q = "SELECT key, host, pid FROM claims WHERE owner != ? AND key IN ({})"
        return {key: f"{host}:{pid}" for key, host, pid in self._select_in(q, keys, self.owner)}

    def release(self) -> None:
        """Drop this store object's claims (answered keys are in the store; the others are free to take)."""
        self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))

    def _drop_dead_claims(self) -> None:
        q = "SELECT DISTINCT owner, host, pid, started FROM claims WHERE owner != ?"
        for owner, host, pid, started in self._db.execute(q, (self.owner,)).fetchall():
            # another host's process cannot be checked from here; SQLite's WAL needs one host anyway
            if host == self.host and not _alive(pid, started):
                self._db.execute("DELETE FROM claims WHERE owner = ?", (owner,))

    # Batch API bookkeeping
    def add_batch(self, batch_id: str, base_url: str, input_file_id: str, keys: Sequence[str]) -> None:
        self._db.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, 'submitted', ?)",
            (batch_id, base_url, input_file_id, json.dumps(list(keys)), time.time()),
        )

    def set_batch_status(self, batch_id: str, status: str) -> None:
        self._db.execute("UPDATE batches SET status=? WHERE batch_id=?", (status, batch_id))

    def open_batches(self) -> list[dict[str, Any]]:
        """Submitted batches whose results are not yet in the store."""
        rows = self._db.execute(
            "SELECT batch_id, base_url, input_file_id, keys, status FROM batches WHERE status='submitted'"
        ).fetchall()
        return [
            {"batch_id": b, "base_url": u, "input_file_id": f, "keys": json.loads(k), "status": s}
            for b, u, f, k, s in rows
        ]

    def close(self) -> None:
        try:
            self.release()
        except sqlite3.Error:  # pragma: no cover - a closed or broken connection; dead claims expire anyway
            pass
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _alive(pid: int, started: float) -> bool:
    """Whether process ``pid`` that started at ``started`` still runs (a live pid that started later is reused)."""
    import psutil

    try:
        process = psutil.Process(pid)
        return process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # another user's live process
        return True
