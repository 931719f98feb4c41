"""Human A-D rating: the store, the per-rater order, kappa and alpha against hand computations, the server's checks,
the export, and the page in a real headless Chromium (rating by clicks and keys, a restart, XSS, the rubric)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lamini_lm.errors import DataError, UsageError
from lamini_lm.evaluation.judge import GRADE_DEFINITIONS
from lamini_lm.evaluation.rating import (
    RateItem,
    RatingStore,
    agreement,
    cohen_kappa,
    consensus_grade,
    krippendorff_alpha,
    landis_koch,
    load_answers,
    rater_order,
)

PROMPTS = ["Name a colour.", "Add 2 and 2.", "Write a haiku about rain."]
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold?</b>'


def _items(model: str, answers: list[str], grades: list[str | None] | None = None) -> list[RateItem]:
    grades = grades or [None] * len(answers)
    return [
        RateItem(model, str(i), PROMPTS[i], a, judge_grade=g, judge="judge-x" if g else None)
        for i, (a, g) in enumerate(zip(answers, grades))
    ]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ store and order


def test_store_keeps_exactly_one_rating_per_rater_item_model(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    assert store.add_items(_items("m1", ["Blue.", "4", "Rain."]) + _items("m2", ["Red.", "5", "Drops."])) == 6
    store.rate("ana", "0", "m1", "B")
    store.rate("ana", "0", "m1", "A")  # re-rating replaces
    store.rate("bo", "0", "m1", "C")
    store.rate("ana", "0", "m2", "D")
    assert store.grades("ana") == {("0", "m1"): "A", ("0", "m2"): "D"}
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM ratings").fetchone() == (3,)
        with pytest.raises(sqlite3.IntegrityError):  # the table itself refuses a second row for the same triple
            db.execute("INSERT INTO ratings VALUES ('ana', '0', 'm1', 'B', 'now')")
    with pytest.raises(UsageError, match="grade must be one of"):
        store.rate("ana", "0", "m1", "E")
    with pytest.raises(UsageError, match="no answer of model 'm3'"):
        store.rate("ana", "0", "m3", "A")
    # A restart (a new store on the same file) sees every rating, and re-adding the same answers adds nothing.
    again = RatingStore(tmp_path / "r.sqlite")
    assert again.add_items(_items("m1", ["Blue.", "4", "Rain."])) == 0
    assert again.grades("ana") == {("0", "m1"): "A", ("0", "m2"): "D"} and again.raters() == ["ana", "bo"]


def test_store_refuses_a_changed_answer_or_a_foreign_file(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    store.add_items(_items("m1", ["Blue.", "4", "Rain."]))
    with pytest.raises(DataError, match=r"different answer for model 'm1', item '1'.*another --db"):
        store.add_items(_items("m1", ["Blue.", "5", "Rain."]))
    clash = [RateItem("m2", "1", "Something else.", "x")]
    with pytest.raises(DataError, match="item '1' has 2 different prompts"):
        store.add_items(clash)
    assert store.units() == [("0", "m1"), ("1", "m1"), ("2", "m1")]  # the failed additions left nothing behind
    (tmp_path / "junk.sqlite").write_text("not a database")
    with pytest.raises(DataError, match="junk.sqlite: not a ratings database"):
        RatingStore(tmp_path / "junk.sqlite")


def test_each_rater_has_an_order_of_their_own_that_never_changes():
    units = [(str(i), m) for i in range(12) for m in ("m1", "m2", "m3")]
    ana = rater_order("ana", units)
    assert sorted(ana) == sorted(units)  # every answer exactly once
    assert rater_order("ana", list(reversed(units))) == ana  # the same name: the same order, whatever the input order
    others = [rater_order(name, units) for name in ("bo", "cy", "di")]
    assert all(o != ana for o in others)
    # An item's answers come together (the rater reads the instruction once), its models in a shuffled order.
    items = [i for i, _ in ana]
    assert [i for k, i in enumerate(items) if k == 0 or items[k - 1] != i] == list(dict.fromkeys(items))
    assert items[:3] != ["0", "0", "0"] or items[3:6] != ["1", "1", "1"]
    firsts = {o[0][1] for o in [ana, *others, *(rater_order(f"r{k}", units) for k in range(20))]}
    assert firsts == {"m1", "m2", "m3"}  # no model always comes first


def test_rater_names_are_checked():
    from lamini_lm.evaluation.rating import normalise_rater

    assert normalise_rater("  Ana   Lee ") == "Ana Lee"
    assert normalise_rater("<b>x</b>") == "<b>x</b>"  # kept as text; the page shows it as text
    for bad, why in (("", "empty"), ("x" * 65, "longer than 64"), ("a\x00b", "control"), (3, "text")):
        with pytest.raises(UsageError, match=why):
            normalise_rater(bad)


# ------------------------------------------------------------------------------------------------ agreement


def test_cohen_kappa_matches_the_hand_computation():
    a, b = list("AABBCD"), list("ABBBCC")
    # p_o = 4/6; marginals A2 B2 C1 D1 and A1 B3 C2 D0, so p_e = (2*1 + 2*3 + 1*2 + 1*0) / 36 = 10/36
    assert cohen_kappa(a, b) == pytest.approx((4 / 6 - 10 / 36) / (1 - 10 / 36))  # 7/13
    assert cohen_kappa(a, b) == pytest.approx(7 / 13)
    # quadratic weights (i-j)^2/9: observed 2/54, expected 58/324, so 1 - 12/58
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(23 / 29)
    assert cohen_kappa(list("AB"), list("AB")) == pytest.approx(1.0)
    assert cohen_kappa(list("AA"), list("AA")) is None  # chance agreement 1: undefined, not 0 or 1


def test_krippendorff_alpha_matches_the_hand_computation():
    two = {k: {"r1": x, "r2": y} for k, (x, y) in enumerate(zip("AABBCD", "ABBBCC"))}
    # coincidences: n_A=3 n_B=5 n_C=3 n_D=1 (n=12), 4 disagreeing pairs; D_e = (144 - 44)/11, alpha = 1 - 4/D_e
    assert krippendorff_alpha(two) == pytest.approx(0.56)
    # three raters, one missing rating: (A,A,A), (A,B,-), (B,B,B): n_A = n_B = 4, 2 disagreeing pairs of weight 1
    # D_e = (64 - 32)/7, alpha = 1 - 2/D_e = 1 - 14/32
    three = {"u1": {"r1": "A", "r2": "A", "r3": "A"}, "u2": {"r1": "A", "r2": "B"}, "u3": dict.fromkeys("xyz", "B")}
    assert krippendorff_alpha(three) == pytest.approx(0.5625)
    assert krippendorff_alpha({"u": {"r1": "A"}}) is None  # nothing rated twice
    assert krippendorff_alpha({"u": {"r1": "A", "r2": "A"}}) is None  # one grade throughout
    # ordinal: a near miss (A/B) counts less than a far one (A/D)
    near = {1: {"r1": "A", "r2": "B"}, 2: {"r1": "C", "r2": "C"}, 3: {"r1": "D", "r2": "D"}, 4: {"r1": "A", "r2": "A"}}
    far = {1: {"r1": "A", "r2": "D"}, 2: {"r1": "C", "r2": "C"}, 3: {"r1": "D", "r2": "D"}, 4: {"r1": "A", "r2": "A"}}
    assert krippendorff_alpha(near, "ordinal") > krippendorff_alpha(far, "ordinal")


def test_judge_against_people_confusion_and_consensus():
    assert consensus_grade(["A", "C", "B"]) == "B" and consensus_grade(["A", "B"]) == "B"  # of two middles, worse
    assert [landis_koch(v) for v in (-0.1, 0.1, 0.3, 0.5, 0.7, 0.9, None)] == [
        "poor", "slight", "fair", "moderate", "substantial", "almost perfect", "undefined"
    ]  # fmt: skip
    judge = dict(zip("012345", "AABBCD"))
    people = {"ana": "ABBBCC", "bo": "ABBBCC"}
    rows = [
        {"rater": r, "item": k, "model": "m", "grade": g, "judge_grade": judge[k], "judge": "judge-x"}
        for r, grades in people.items()
        for k, g in zip("012345", grades)
    ]
    rows.append({"rater": "ana", "item": "6", "model": "m", "grade": "A", "judge_grade": None, "judge": None})
    stats = agreement(rows)
    assert stats["raters"] == ["ana", "bo"] and stats["ratings"] == 13 and stats["answers"] == 7
    assert stats["pairs"][0]["kappa"] == pytest.approx(1.0) and stats["pairs"][0]["n"] == 6
    j = stats["judge"]
    assert j["consensus"]["kappa"] == pytest.approx(7 / 13) and j["consensus"]["n"] == 6
    assert [p["kappa"] for p in j["per_rater"]] == [pytest.approx(7 / 13)] * 2
    assert j["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    assert j["answers_without_judge_grade"] == 1 and j["judge"] == "judge-x"


# ------------------------------------------------------------------------------------------------ inputs and CLI


def test_answers_come_from_judge_folders_model_columns_or_names(tmp_path):
    from lamini_lm.artifacts import Manifest

    folder = tmp_path / "eval" / "flan" / "judge"
    folder.mkdir(parents=True)
    _write_jsonl(
        folder / "judgements.jsonl",
        [{"id": "7", "prompt": "P", "answer": "x", "grade": "B", "rule": "label", "raw": "Rating: B", "error": None}],
    )
    Manifest(stage="judge", teacher_models=["gpt-j"], extra={"model": "LaMini-Flan-T5-248M"}).save(folder)
    (item,) = load_answers(folder)
    assert (item.model, item.item, item.judge_grade, item.judge) == ("LaMini-Flan-T5-248M", "7", "B", "gpt-j")
    mixed = _write_jsonl(tmp_path / "all.jsonl", [{"prompt": "P", "answer": "x", "model": m} for m in ("a", "b")])
    assert [(i.model, i.item) for i in load_answers(mixed)] == [("a", "0"), ("b", "1")]
    plain = _write_jsonl(
        tmp_path / "mine.jsonl", [{"id": 1, "instruction": "I", "input": "", "prompt": "I", "answer": "y"}]
    )
    assert [(i.model, i.item, i.instruction) for i in load_answers(plain)] == [("mine", "1", "I")]
    dup = _write_jsonl(tmp_path / "dup.jsonl", [{"id": "1", "prompt": "P", "answer": "x"}] * 2)
    with pytest.raises(DataError, match=r"dup.jsonl, line 2: field 'id': '1' repeats line 1"):
        load_answers(dup)
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"id": "1", "prompt": "P"}])
    with pytest.raises(DataError, match=r"bad.jsonl, line 1: field 'answer': missing"):
        load_answers(bad)


def _cli(*args: str, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lamini_lm.cli", "rate", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0 serves the ratings beyond this machine; pass --allow_remote"),
        (["--host", "0.0.0.0", "--allow_remote"], "--allow_remote needs an access token"),
        (["--token", "short"], "--token must be at least 16 characters"),
        (["--token", "a;b" * 8], "--token may hold letters, digits"),
        (["--models", "a", "b"], "--models gives 2 names for 1 answers files"),
        ([], "a.jsonl, line 1: field 'answer': missing"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, message):
    answers = _write_jsonl(tmp_path / "a.jsonl", [{"id": "1", "prompt": "P"}])
    env = {k: v for k, v in os.environ.items() if k != "LAMINI_RATE_TOKEN"}
    proc = _cli(str(answers), "--db", str(tmp_path / "r.sqlite"), *args, env=env)
    assert proc.returncode in (1, 2) and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_export_without_ratings_says_what_to_do(tmp_path):
    proc = _cli("--export", str(tmp_path / "out"), "--db", str(tmp_path / "none.sqlite"))
    assert proc.returncode == 1 and "ratings database not found" in proc.stderr
    RatingStore(tmp_path / "empty.sqlite")
    proc = _cli("--export", str(tmp_path / "out"), "--db", str(tmp_path / "empty.sqlite"))
    assert proc.returncode == 1 and "no ratings yet; rate first" in proc.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ the server


@contextlib.contextmanager
def _server(store: RatingStore, token: str | None = None):
    from lamini_lm.evaluation.rating_app import make_server

    server = make_server(store, "127.0.0.1", 0, token=token)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _request(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=10) as res:
            return res.status, dict(res.headers), res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_server_checks_the_token_and_host_on_every_request_and_hides_models(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    store.add_items(_items("secret-model-one", ["Blue.", "4", "Rain."]) + _items("secret-model-two", ["R", "5", "D"]))
    token = "t0ken-" + "x" * 20
    with _server(store, token) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for path, body in (("/", None), ("/app.js", None), ("/api/session", {"rater": "ana"})):
            assert _request(base + path, body)[0] == 401
            assert _request(base + path, body, {"X-Rate-Token": token[:-1] + "y"})[0] == 401
        status, headers, _ = _request(f"{base}/?token={token}")
        assert status == 303 and "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        auth = {"X-Rate-Token": token}
        status, headers, page = _request(base + "/", headers=auth)
        assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
        assert _request(base + "/", headers={"Cookie": f"lamini_rate_token={token}"})[0] == 200
        assert _request(base + "/", headers={**auth, "Host": f"evil.example:{server.server_address[1]}"})[0] == 403
        cross = {**auth, "Origin": "http://evil.example"}
        assert _request(base + "/api/session", {"rater": "ana"}, cross)[0] == 403
        session = json.loads(_request(base + "/api/session", {"rater": "ana"}, auth)[2])
        assert session == {"rater": "ana", "total": 6, "rated": 0, "pos": 0}
        seen = [_request(base + "/api/task", {"rater": "ana", "pos": k}, auth)[2] for k in range(6)]
        assert not any("secret-model" in s for s in seen + [page])  # the browser never learns a model's name
        status, _, text = _request(base + "/api/rate", {"rater": "ana", "pos": 9, "grade": "A"}, auth)
        assert status == 400 and "pos must be an integer from 0 to 5" in text
        status, _, text = _request(base + "/api/rate", {"rater": "ana", "pos": 0, "grade": "A"}, auth)
        assert status == 200 and json.loads(text)["rated"] == 1
    item, model = rater_order("ana", store.units())[0]
    assert store.grades("ana") == {(item, model): "A"}


# ------------------------------------------------------------------------------------------------ in a browser


def _chromium() -> str | None:
    return os.environ.get("LAMINI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (never a downloaded browser). Skipped, with the reason, when
    either is missing, unless LAMINI_REQUIRE_BROWSER=1 (set by .ci/run), where it fails instead."""
    required = os.environ.get("LAMINI_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    executable = _chromium()
    if executable is None:
        if required:
            pytest.fail("LAMINI_REQUIRE_BROWSER=1 but no chromium binary (apt-get install chromium)")
        pytest.skip("no chromium binary on PATH (apt-get install chromium, or set LAMINI_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True)
        yield b
        b.close()


class _App:
    """``lamini-lm rate`` as a real process on a free port; ``url`` from the line it prints."""

    def __init__(self, *args: str, port: int = 0):
        cmd = [sys.executable, "-m", "lamini_lm.cli", "rate", *args, "--port", str(port)]
        # SIGINT as a terminal gives it: a runner that started pytest in the background (`cmd &` in a script, nohup)
        # left SIGINT ignored, and Python keeps an ignored SIGINT ignored, so Ctrl-C would never reach the app
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        self.output = []
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"rate did not start: {self.output}") from None
            self.output.append(line)
            if line.startswith("open http://"):
                self.url = line.split()[1]
                return

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # a failed test leaves no server behind
            raise


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _judge_folders(tmp_path: Path) -> list[Path]:
    folders = []
    for model, answers, grades in (
        ("model-one", ["Blue.", "4", XSS], ["A", "A", "D"]),
        ("model-two", ["Red, or green.", "5", "Rain falls."], ["B", "D", "B"]),
    ):
        folder = tmp_path / model / "judge"
        folder.mkdir(parents=True)
        _write_jsonl(
            folder / "judgements.jsonl",
            [
                {"id": str(i), "prompt": p, "answer": a, "grade": g, "rule": "label", "raw": f"Rating: {g}"}
                for i, (p, a, g) in enumerate(zip(PROMPTS, answers, grades))
            ],
        )
        folders.append(folder)
    return folders


def _start(page, url: str, rater: str) -> None:
    page.goto(url)
    page.fill("#rater", rater)
    page.click("#start")
    page.wait_for_selector("#task:not([hidden])")


def _wait_rated(page, n: int) -> None:
    from playwright.sync_api import expect  # polls from Playwright's side: the page's CSP forbids eval, rightly

    expect(page.locator("#progress")).to_have_attribute("data-rated", str(n))


@pytest.mark.integration
def test_browser_rates_by_click_and_keys_resumes_after_a_restart_and_exports(browser, tmp_path):
    from playwright.sync_api import expect

    folders = _judge_folders(tmp_path)
    db = tmp_path / "ratings.sqlite"
    port = _free_port()  # the same command twice: the same origin, so the browser remembers the rater's name
    app = _App(*map(str, folders), "--db", str(db), port=port)
    assert any("rating 6 answers" in line for line in app.output)
    store = RatingStore(db, create=False)
    order = rater_order("Ana", store.units())
    context = browser.new_context()
    page = context.new_page()
    _start(page, app.url, "Ana")
    assert page.text_content("#progress") == "0 / 6 rated"
    assert page.text_content("#answer") == store.item(*order[0]).answer
    page.click("#grade-A")  # by clicking
    _wait_rated(page, 1)
    assert page.text_content("#answer") == store.item(*order[1]).answer
    page.keyboard.press("b")  # by keys
    _wait_rated(page, 2)
    page.keyboard.press("Shift+C")
    _wait_rated(page, 3)
    assert page.text_content("#progress") == "3 / 6 rated"
    assert store.grades("Ana") == {order[0]: "A", order[1]: "B", order[2]: "C"}  # saved as given, before any export
    page.keyboard.press("ArrowLeft")  # back to the third: its grade is shown, and re-rating replaces it
    page.wait_for_selector("#grade-C.chosen")
    page.keyboard.press("d")
    expect(page.locator("#task")).to_have_attribute("data-pos", "3")
    assert store.grades("Ana")[order[2]] == "D" and len(store.grades("Ana")) == 3
    assert app.stop() == 130  # Ctrl-C

    app = _App(*map(str, folders), "--db", str(db), port=port)
    try:
        page = context.new_page()  # the name was entered once: the page remembers it and resumes
        page.goto(app.url)
        page.wait_for_selector("#task:not([hidden])")
        assert page.text_content("#who") == "Ana" and page.text_content("#progress") == "3 / 6 rated"
        assert page.text_content("#answer") == store.item(*order[3]).answer  # where Ana stopped
        for n, key in enumerate("ABC", start=4):
            page.keyboard.press(key)
            _wait_rated(page, n)
        page.wait_for_selector("#done:not([hidden])")
        assert page.text_content("#progress") == "6 / 6 rated"
        other = browser.new_context().new_page()  # a second rater, in another browser
        _start(other, app.url, "Bo")
        for n, key in enumerate("ABCDAB", start=1):
            other.keyboard.press(key)
            _wait_rated(other, n)
    finally:
        app.stop()
        context.close()

    out = tmp_path / "human"
    proc = _cli("--db", str(db), "--export", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "12 ratings by 2 rater(s) of 6 answers" in proc.stdout and "judge vs people: kappa" in proc.stdout
    import datasets

    ds = datasets.load_from_disk(str(out / "ratings"))
    assert len(ds) == 12 and set(ds["rater"]) == {"Ana", "Bo"} and set(ds["model"]) == {"model-one", "model-two"}
    assert sorted(ds.filter(lambda r: r["rater"] == "Ana")["grade"]) == sorted("ABDABC")
    stats = json.loads((out / "agreement.json").read_text())
    assert stats["pairs"][0]["n"] == 6 and stats["judge"]["consensus"]["n"] == 6
    assert sum(map(sum, stats["judge"]["confusion"]["matrix"])) == 6
    report = (out / "report.md").read_text()
    assert "Cohen's kappa" in report and "Krippendorff's alpha" in report and GRADE_DEFINITIONS["C"] in report
    assert (out / "rubric.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from lamini_lm.artifacts import read_manifest

    manifest = read_manifest(out)
    assert manifest.stage == "rate" and manifest.rows == 12 and manifest.input("ratings")["path"].endswith("sqlite")


@pytest.mark.integration
def test_browser_page_shows_the_rubric_verbatim_in_a_screenshot(browser, tmp_path):
    app = _App(*map(str, _judge_folders(tmp_path)), "--db", str(tmp_path / "r.sqlite"))
    try:
        page = browser.new_page(viewport={"width": 900, "height": 860})
        _start(page, app.url, "Ana")
        for grade, text in GRADE_DEFINITIONS.items():
            button = page.locator(f"#grade-{grade}")
            assert button.is_visible() and button.inner_text().split(None, 1) == [grade, text]
        shot = tmp_path / "rate.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if os.environ.get("LAMINI_SCREENSHOT"):  # keep the picture (LAMINI_SCREENSHOT=path)
            shutil.copy(shot, os.environ["LAMINI_SCREENSHOT"])
    finally:
        app.stop()


@pytest.mark.integration
def test_browser_shows_a_script_in_an_answer_as_text(browser, tmp_path):
    answers = _write_jsonl(tmp_path / "xss.jsonl", [{"id": "1", "prompt": "Say hi. <i>now</i>", "answer": XSS}])
    app = _App(str(answers), "--db", str(tmp_path / "r.sqlite"))
    try:
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        _start(page, app.url, '<img src=x onerror="window.__pwned=3">')
        assert page.text_content("#answer") == XSS  # the markup, as text
        assert page.text_content("#instruction") == "Say hi. <i>now</i>"
        assert page.text_content("#who") == '<img src=x onerror="window.__pwned=3">'
        assert page.locator("#answer *, #instruction *, #who *").count() == 0  # no element was made from the data
        assert page.evaluate("window.__pwned") is None and not errors
    finally:
        app.stop()
