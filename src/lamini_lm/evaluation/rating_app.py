"""The rating page of ``lamini-lm rate``: a small HTTP server from the standard library and one static page.

Why not Gradio: gradio 6 pins ``pillow<13`` (it would downgrade the Pillow the rest of the stack uses) and adds a
dozen packages and a front end of its own, while this page needs four buttons, a progress line and exact control
over what reaches the browser. Here:

* Untrusted text (answers, instructions, rater names) travels as JSON and is put on the page with
  ``textContent`` only; the page's own HTML holds nothing from the data. A Content-Security-Policy allows scripts
  from this server only (no inline script), so even injected markup could not run.
* The browser never learns a model's name: it asks for position ``pos`` in the rater's own order
  (:func:`lamini_lm.evaluation.rating.rater_order`) and gets the instruction and the answer.
* With a token (required off this machine), every request must carry it: the first page load as ``?token=``
  (then an HttpOnly, SameSite=Strict cookie), or the ``X-Rate-Token`` header; compared in constant time.
* Served on 127.0.0.1, requests must name this machine in their ``Host`` header (no DNS rebinding); API calls are
  JSON POSTs from this origin only (no cross-site form posts).

API (all POST, JSON in and out): ``/api/session {rater}`` -> where the rater resumes; ``/api/task {rater, pos}``
-> the answer at ``pos``; ``/api/rate {rater, pos, grade}`` -> saved, and the next position.
"""

from __future__ import annotations

import hmac
import html
import http.cookies
import json
import logging
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lamini_lm.errors import UsageError
from lamini_lm.evaluation.judge import GRADE_DEFINITIONS, GRADES
from lamini_lm.evaluation.rating import RatingStore, normalise_rater, rater_order

__all__ = ["RatingServer", "make_server", "page_html", "serve"]

logger = logging.getLogger(__name__)

COOKIE = "lamini_rate_token"
MAX_BODY = 16 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def page_html() -> str:
    """The page: static HTML (the rubric's texts are the library's own, escaped all the same)."""
    buttons = "\n".join(
        f'      <button type="button" class="grade" data-grade="{g}" id="grade-{g}" title="key {g}">'
        f"<kbd>{g}</kbd> <span>{html.escape(d)}</span></button>"
        for g, d in GRADE_DEFINITIONS.items()
    )
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>lamini-lm rate</title>
  <link rel="stylesheet" href="/app.css">
  <script src="/app.js" defer></script>
</head>
<body>
  <header>
    <h1>Rate the answers A-D</h1>
    <p id="status" hidden>rater <strong id="who"></strong> &middot; <span id="progress"></span>
      <button type="button" id="switch">change rater</button></p>
  </header>
  <section id="login">
    <form id="login-form">
      <label for="rater">Your name</label>
      <input id="rater" name="rater" maxlength="64" autocomplete="name" required autofocus>
      <button type="submit" id="start">Start</button>
    </form>
    <p class="note">Enter it once: your ratings are saved as you give them and a restart resumes where you stopped.
    Models are anonymous and come in an order of your own.</p>
  </section>
  <main id="task" hidden>
    <h2>Instruction</h2>
    <pre id="instruction"></pre>
    <div id="input-block" hidden><h2>Input</h2><pre id="input"></pre></div>
    <h2>Answer <small id="which"></small></h2>
    <pre id="answer"></pre>
    <h2>The answer is ...</h2>
    <div id="grades">
{buttons}
    </div>
    <nav>
      <button type="button" id="prev">&larr; previous</button>
      <button type="button" id="next">next &rarr;</button>
      <span class="note">Keys A, B, C, D rate and move on; arrows move back and forth. Re-rating replaces.</span>
    </nav>
  </main>
  <section id="done" hidden>
    <h2>All answers rated</h2>
    <p>Thank you. Your ratings are saved; use &larr; previous to review them.</p>
    <button type="button" id="review">&larr; previous</button>
  </section>
  <p id="error" role="alert"></p>
</body>
</html>
"""


APP_CSS = """
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 1rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.3rem; margin-bottom: 0.2rem; }
h2 { font-size: 1rem; margin: 1rem 0 0.3rem; color: #555; }
pre { white-space: pre-wrap; word-wrap: break-word; font-family: inherit; background: #f6f6f6; padding: 0.6rem;
      border-radius: 4px; margin: 0; }
#answer { background: #eef4ff; }
#grades { display: grid; gap: 0.4rem; }
button.grade { text-align: left; padding: 0.5rem; font-size: 1rem; border: 1px solid #bbb; border-radius: 4px;
               background: white; cursor: pointer; }
button.grade.chosen { border: 2px solid #1565c0; background: #e3f2fd; font-weight: 600; }
kbd { display: inline-block; min-width: 1.2rem; text-align: center; border: 1px solid #999; border-radius: 3px;
      padding: 0 0.2rem; margin-right: 0.4rem; font-weight: 700; }
nav { margin-top: 0.8rem; display: flex; gap: 0.5rem; align-items: center; flex-wrap: wrap; }
.note { color: #666; font-size: 0.85rem; }
#error { color: #b71c1c; }
#status { color: #444; }
"""

APP_JS = """'use strict';
// Every text from the server goes in with textContent: nothing from the data is ever parsed as HTML.
const $ = (id) => document.getElementById(id);
const state = { rater: null, pos: 0, total: 0, busy: false };

async function api(path, body) {
  const res = await fetch(path, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  const data = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function showError(e) { $('error').textContent = e ? String(e.message || e) : ''; }

function showProgress(d) {
  state.total = d.total;
  $('progress').textContent = `${d.rated} / ${d.total} rated`;
  $('progress').dataset.rated = d.rated;
}

async function start(name) {
  try {
    const d = await api('/api/session', { rater: name });
    state.rater = d.rater;
    try { localStorage.setItem('lamini-rate-rater', d.rater); } catch (e) { /* private mode */ }
    $('who').textContent = d.rater;
    $('status').hidden = false;
    $('login').hidden = true;
    if (document.activeElement) document.activeElement.blur();  // keys now rate, not type
    showProgress(d);
    await show(d.pos);
  } catch (e) { showError(e); }
}

async function show(pos) {
  showError(null);
  if (pos < 0) pos = 0;
  state.pos = pos;
  if (pos >= state.total) {
    $('task').hidden = true; $('done').hidden = false; return;
  }
  const d = await api('/api/task', { rater: state.rater, pos });
  $('done').hidden = true; $('task').hidden = false;
  $('instruction').textContent = d.instruction;
  $('input').textContent = d.input || '';
  $('input-block').hidden = !d.input;
  $('answer').textContent = d.answer;
  $('which').textContent =
    `(${d.pos + 1} of ${d.total}; answer ${d.answer_number} of ${d.answers_here} to this instruction)`;
  $('task').dataset.pos = d.pos;
  for (const b of document.querySelectorAll('button.grade')) {
    b.classList.toggle('chosen', b.dataset.grade === d.grade);
    b.setAttribute('aria-pressed', b.dataset.grade === d.grade ? 'true' : 'false');
  }
  showProgress(d);  // last: once the count changes, the page shows the new answer
}

async function rate(grade) {
  if (state.busy || state.rater === null || $('task').hidden) return;
  state.busy = true;
  try {
    const d = await api('/api/rate', { rater: state.rater, pos: state.pos, grade });
    if (d.next >= d.total) showProgress(d);
    await show(d.next);
  } catch (e) { showError(e); } finally { state.busy = false; }
}

async function move(step) {
  if (state.busy || state.rater === null) return;
  state.busy = true;
  try { await show(Math.min(state.pos + step, state.total)); } catch (e) { showError(e); }
  finally { state.busy = false; }
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (ev) => { ev.preventDefault(); start($('rater').value); });
  for (const b of document.querySelectorAll('button.grade')) b.addEventListener('click', () => rate(b.dataset.grade));
  $('prev').addEventListener('click', () => move(-1));
  $('review').addEventListener('click', () => move(-1));
  $('next').addEventListener('click', () => move(1));
  $('switch').addEventListener('click', () => {
    try { localStorage.removeItem('lamini-rate-rater'); } catch (e) { /* private mode */ }
    location.reload();
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target instanceof HTMLInputElement) return;
    const key = ev.key.toUpperCase();
    if (['A', 'B', 'C', 'D'].includes(key)) { ev.preventDefault(); rate(key); }
    else if (ev.key === 'ArrowLeft') { ev.preventDefault(); move(-1); }
    else if (ev.key === 'ArrowRight') { ev.preventDefault(); move(1); }
  });
  let saved = null;
  try { saved = localStorage.getItem('lamini-rate-rater'); } catch (e) { /* private mode */ }
  if (saved) start(saved);
});
"""


class RatingServer(ThreadingHTTPServer):
    """The HTTP server: holds the store, the token and each rater's order (computed once per rater)."""

    daemon_threads = True

    def __init__(self, address, store: RatingStore, token: str | None = None):
        self.store = store
        self.token = token
        self._orders: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()
        self.units = store.units()
        super().__init__(address, _Handler)

    def order(self, rater: str) -> list[tuple[str, str]]:
        with self._lock:
            if rater not in self._orders:
                self._orders[rater] = rater_order(rater, self.units)
            return self._orders[rater]

    @property
    def loopback(self) -> bool:
        return self.server_address[0] in ("127.0.0.1", "::1")

    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        query = f"?{urllib.parse.urlencode({'token': self.token})}" if self.token else ""
        return f"http://{host}:{port}/{query}"


class _Handler(BaseHTTPRequestHandler):
    server: RatingServer
    server_version = "lamini-lm-rate"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        logger.debug("%s %s", self.address_string(), format % args)

    # --- responses
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        if self.path.startswith("/api/"):
            self._json(status, {"error": message})
        else:
            self._send(status, f"{message}\n".encode(), "text/plain; charset=utf-8")

    # --- checks on every request
    def _allowed(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        if self.server.loopback:
            port = self.server.server_address[1]
            names = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
            if host not in names:
                self._error(HTTPStatus.FORBIDDEN, "forbidden: this page is served for this machine only")
                return False
        if self.server.token is not None:
            given = self.headers.get("X-Rate-Token") or self._cookie_token() or self._query_token()
            if not given or not hmac.compare_digest(given.encode(), self.server.token.encode()):
                self._error(HTTPStatus.UNAUTHORIZED, "unauthorized: open the URL with ?token=... that rate printed")
                return False
        return True

    def _cookie_token(self) -> str | None:
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
        except http.cookies.CookieError:
            return None
        return jar[COOKIE].value if COOKIE in jar else None

    def _query_token(self) -> str | None:
        values = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("token")
        return values[0] if values else None

    # --- routes
    def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            headers = {}
            if self.server.token is not None and self._query_token():
                cookie = f"{COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
                self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Set-Cookie": cookie, "Location": "/"})
                return
            self._send(HTTPStatus.OK, page_html().encode(), "text/html; charset=utf-8", headers)
        elif path == "/app.js":
            self._send(HTTPStatus.OK, APP_JS.encode(), "text/javascript; charset=utf-8")
        elif path == "/app.css":
            self._send(HTTPStatus.OK, APP_CSS.encode(), "text/css; charset=utf-8")
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        path = urllib.parse.urlsplit(self.path).path
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON (Content-Type: application/json)")
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{(self.headers.get('Host') or '').lower()}":
            return self._error(HTTPStatus.FORBIDDEN, "forbidden: requests from another site")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return self._error(HTTPStatus.BAD_REQUEST, f"a JSON body of at most {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return self._error(HTTPStatus.BAD_REQUEST, "the body is not a JSON object")
        routes = {"/api/session": self._session, "/api/task": self._task, "/api/rate": self._rate}
        if path not in routes:
            return self._error(HTTPStatus.NOT_FOUND, "not found")
        try:
            self._json(HTTPStatus.OK, routes[path](body))
        except UsageError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))

    # --- API
    def _progress(self, rater: str) -> tuple[list[tuple[str, str]], dict[tuple[str, str], str], dict[str, Any]]:
        order = self.server.order(rater)
        grades = self.server.store.grades(rater)
        rated = sum(u in grades for u in order)
        return order, grades, {"rater": rater, "total": len(order), "rated": rated}

    def _pos(self, body: dict[str, Any], order: list) -> int:
        pos = body.get("pos")
        if not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos < len(order):
            raise UsageError(f"pos must be an integer from 0 to {len(order) - 1}")
        return pos

    def _session(self, body: dict[str, Any]) -> dict[str, Any]:
        rater = normalise_rater(body.get("rater"))
        order, grades, progress = self._progress(rater)
        first = next((k for k, u in enumerate(order) if u not in grades), len(order))
        return {**progress, "pos": first}

    def _task(self, body: dict[str, Any]) -> dict[str, Any]:
        rater = normalise_rater(body.get("rater"))
        order, grades, progress = self._progress(rater)
        pos = self._pos(body, order)
        item, model = order[pos]
        it = self.server.store.item(item, model)
        here = [k for k, u in enumerate(order) if u[0] == item]
        instruction = it.instruction if it.instruction is not None else it.prompt
        return {
            **progress,
            "pos": pos,
            "instruction": instruction,
            "input": it.input if it.instruction is not None else "",
            "answer": it.answer,
            "grade": grades.get((item, model)),
            "answer_number": here.index(pos) + 1,
            "answers_here": len(here),
        }

    def _rate(self, body: dict[str, Any]) -> dict[str, Any]:
        rater = normalise_rater(body.get("rater"))
        order = self.server.order(rater)
        pos = self._pos(body, order)
        grade = body.get("grade")
        if grade not in GRADES:
            raise UsageError(f"grade must be one of {list(GRADES)}")
        item, model = order[pos]
        self.server.store.rate(rater, item, model, grade)
        _, _, progress = self._progress(rater)
        return {**progress, "pos": pos, "grade": grade, "next": pos + 1}


def make_server(store: RatingStore, host: str = "127.0.0.1", port: int = 7860, token: str | None = None):
    """A :class:`RatingServer` bound to ``host:port`` (not yet serving)."""
    try:
        return RatingServer((host, port), store, token)
    except OSError as e:
        raise UsageError(f"cannot serve on {host}:{port} ({e.strerror or e}); pick another --port or --host") from None


def serve(store: RatingStore, host: str, port: int, token: str | None = None, ready=None) -> None:
    """Serve until Ctrl-C; ``ready(url)`` is called once the server listens."""
    server = make_server(store, host, port, token)
    if ready is not None:
        ready(server.url())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
