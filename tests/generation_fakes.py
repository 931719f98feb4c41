"""A fault-injecting OpenAI-compatible server for the generation tests and benchmark (127.0.0.1 only).

It speaks ``/v1/chat/completions`` plus the ``/v1/files`` and ``/v1/batches`` endpoints of the Batch API, and can
add latency, cap requests in flight, and inject 429 (with ``Retry-After``), 500, garbage bodies, empty bodies,
slow answers and context-length errors, either at random rates or from a script consumed in order. It records
every chat request (the last user message) so a test can check what was sent, and how often.

Run in a thread (``with FakeOpenAI(...) as base_url``) or as a process:
``python tests/generation_fakes.py --port 8123 --latency 0.5 --max-in-flight 32 --p429 0.05 --p500 0.02``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import threading
import time
import uuid

from aiohttp import web

_GENERATE = re.compile(r"Generate (\d+) diverse examples")


def answer_for(content: str) -> str:
    """The fake teacher's answer: <example> lists for generation prompts (sloppy on purpose), else an echo."""
    m = _GENERATE.search(content)
    if m:
        n = int(m.group(1))
        tag = abs(hash(content)) % 10_000
        items = [f"{i + 1}. <example>Write instruction {i} number {tag} about the topic.</example>" for i in range(n)]
        return "Sure! Here are the examples you asked for:\n" + "\n".join(items) + "\nI hope these help."
    return "Answer: " + content[-80:]


def completion_body(body: dict, model: str | None = None) -> dict:
    content = body["messages"][-1]["content"] if body.get("messages") else ""
    text = answer_for(content)
    prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_chars // 4 + 1, "completion_tokens": len(text) // 4 + 1},
    }


class FakeOpenAI:
    """The server. ``script``: fault names served in order to the first requests, then normal behaviour;
    names: "429", "500", "401", "garbage", "empty", "slow", "ok". Rates ``p429``/``p500``/``p_garbage`` apply
    after it. ``slow_if``: a request whose last message contains this text answers in ``slow_seconds``."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        max_in_flight: int | None = None,
        p429: float = 0.0,
        p500: float = 0.0,
        p_garbage: float = 0.0,
        retry_after: float = 0.05,
        slow_seconds: float = 3.0,
        context_length: int | None = None,
        slow_if: str | None = None,
        script: list[str] | None = None,
        batch_polls: int = 1,
        seed: int = 0,
        port: int = 0,
    ):
        self.latency = latency
        self.max_in_flight = max_in_flight
        self.p429, self.p500, self.p_garbage = p429, p500, p_garbage
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.context_length = context_length
        self.slow_if = slow_if  # requests whose last message contains it answer in slow_seconds
        self.script = list(script or [])
        self.batch_polls = batch_polls
        self.rng = random.Random(seed)
        self.port = port
        self.requests: list[str] = []  # last user message of every chat request, in arrival order
        self.bodies: list[dict] = []  # every chat request body (kept only when record_bodies)
        self.record_bodies = False
        self.statuses: list[int] = []
        self.in_flight = self.peak_in_flight = 0
        self.slot_seconds = 0.0  # time answers held a slot (latency as actually slept, on a loaded machine)
        self.slot_answers = 0
        self.slot_log: list[tuple[float, float]] = []  # (acquired, released), monotonic clock
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_creates = 0

    # chat completions
    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body["messages"][-1]["content"] if body.get("messages") else "")
        if self.record_bodies:
            self.bodies.append(body)
        fault = self.script.pop(0) if self.script else self._random_fault()
        if self.slow_if and fault == "ok" and self.slow_if in self.requests[-1]:
            fault = "slow"
        if fault == "429":
            self.statuses.append(429)
            headers = {"Retry-After": f"{self.retry_after:g}"}
            return web.json_response(
                {"error": {"message": "rate limited", "code": "rate_limit"}}, status=429, headers=headers
            )
        if fault == "401":
            self.statuses.append(401)
            return web.json_response({"error": {"message": "Incorrect API key provided"}}, status=401)
        if fault == "500":
            self.statuses.append(500)
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        prompt_tokens = sum(len(m.get("content") or "") for m in body.get("messages", [])) // 4 + 1
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        if self.context_length and prompt_tokens + max_tokens > self.context_length:
            self.statuses.append(400)
            msg = (
                f"This model's maximum context length is {self.context_length} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                "completion). Please reduce the length of the messages or completion."
            )
            return web.json_response({"error": {"message": msg, "code": "context_length_exceeded"}}, status=400)
        sem = self._sem
        if sem is not None:
            await sem.acquire()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        held = time.monotonic()
        try:
            delay = self.slow_seconds if fault == "slow" else self.latency
            if delay:
                await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
            self.slot_seconds += time.monotonic() - held
            self.slot_log.append((held, time.monotonic()))
            self.slot_answers += 1
            if sem is not None:
                sem.release()
        self.statuses.append(200)
        if fault == "garbage":
            return web.Response(text="<html>502 Bad Gateway</html>{not json", content_type="application/json")
        if fault == "empty":
            return web.Response(body=b"", content_type="application/json")
        return web.json_response(completion_body(body))

    def _random_fault(self) -> str:
        r = self.rng.random()
        if r < self.p429:
            return "429"
        if r < self.p429 + self.p500:
            return "500"
        if r < self.p429 + self.p500 + self.p_garbage:
            return "garbage"
        return "ok"

    # Batch API
    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        f = form["file"]
        data = f.file.read()
        fid = "file-" + uuid.uuid4().hex[:12]
        self.files[fid] = data
        return web.json_response(_file_obj(fid, len(data), f.filename, form.get("purpose", "batch")))

    async def file_content(self, request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        if fid not in self.files:
            return web.json_response({"error": {"message": f"no file {fid}"}}, status=404)
        return web.Response(body=self.files[fid], content_type="application/octet-stream")

    async def create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["input_file_id"] not in self.files:
            return web.json_response({"error": {"message": "no such file"}}, status=400)
        self.batch_creates += 1
        bid = "batch_" + uuid.uuid4().hex[:12]
        self.batches[bid] = {
            "id": bid,
            "object": "batch",
            "endpoint": body["endpoint"],
            "completion_window": body["completion_window"],
            "created_at": int(time.time()),
            "input_file_id": body["input_file_id"],
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "_polls": 0,
        }
        return web.json_response(_public(self.batches[bid]))

    async def get_batch(self, request: web.Request) -> web.Response:
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        b["_polls"] += 1
        if b["status"] != "completed" and b["_polls"] >= self.batch_polls:
            self._complete(b)
        elif b["status"] == "validating":
            b["status"] = "in_progress"
        return web.json_response(_public(b))

    def _complete(self, b: dict) -> None:
        out, err = [], []
        for line in self.files[b["input_file_id"]].decode().splitlines():
            req = json.loads(line)
            content = req["body"]["messages"][-1]["content"]
            self.requests.append(content)
            rid = "req_" + uuid.uuid4().hex[:8]
            if "BATCH-ERROR" in content:
                error = {"code": "invalid_request", "message": "the fake refuses this one"}
                err.append({"id": rid, "custom_id": req["custom_id"], "response": None, "error": error})
            else:
                response = {"status_code": 200, "request_id": rid, "body": completion_body(req["body"])}
                out.append({"id": rid, "custom_id": req["custom_id"], "response": response, "error": None})
        for rows, field in ((out, "output_file_id"), (err, "error_file_id")):
            if rows:
                fid = "file-" + uuid.uuid4().hex[:12]
                self.files[fid] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                b[field] = fid
        b["status"] = "completed"
        b["request_counts"] = {"total": len(out) + len(err), "completed": len(out), "failed": len(err)}

    async def stats(self, request: web.Request) -> web.Response:
        stats = {"requests": len(self.requests), "peak_in_flight": self.peak_in_flight}
        stats.update(slot_seconds=self.slot_seconds, slot_answers=self.slot_answers)
        if "log" in request.query:
            stats["slot_log"] = self.slot_log
        return web.json_response(stats)

    # lifecycle
    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 2**20)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{fid}/content", self.file_content)
        app.router.add_post("/v1/batches", self.create_batch)
        app.router.add_get("/v1/batches/{bid}", self.get_batch)
        app.router.add_get("/stats", self.stats)
        return app

    async def _start(self) -> None:
        self._sem = asyncio.Semaphore(self.max_in_flight) if self.max_in_flight else None
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def __enter__(self) -> str:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _file_obj(fid: str, size: int, name: str, purpose: str) -> dict:
    return {
        "id": fid,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": name,
        "purpose": purpose,
        "status": "processed",
    }


def _public(b: dict) -> dict:
    return {k: v for k, v in b.items() if not k.startswith("_")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--max-in-flight", type=int, default=None)
    p.add_argument("--p429", type=float, default=0.0)
    p.add_argument("--p500", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=600.0, help="exit after this many seconds at most")
    a = p.parse_args()
    fake = FakeOpenAI(
        latency=a.latency,
        max_in_flight=a.max_in_flight,
        p429=a.p429,
        p500=a.p500,
        retry_after=a.retry_after,
        seed=a.seed,
        port=a.port,
    )

    async def run() -> None:
        await fake._start()
        print(f"ready http://127.0.0.1:{fake.port}/v1", flush=True)
        await asyncio.sleep(a.duration)

    asyncio.run(run())


if __name__ == "__main__":
    main()
