"""`unblur serve`: the JSON API through Starlette's test client (limits, bad files, one job per client, full-size
download), and the page end to end in a real browser (headless Chromium from the system packages, driven by
Playwright; skipped when either is missing)."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("starlette.testclient")  # needs httpx2 (or httpx)
from starlette.testclient import TestClient  # noqa: E402

from unblur.web import Limits, create_app  # noqa: E402
from unblur.web.app import choices  # noqa: E402


def _png(path: Path, size=(48, 40), bits=8, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    if bits == 16:  # 16-bit grey: Pillow writes it as "I;16"
        Image.fromarray(rng.integers(0, 65536, size[::-1], dtype=np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return path


def _wait(client, job_id, timeout=120.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def _fake_run(job, progress):
    """Instant stand-in for a restoration: copies the upload as result and previews, reports tiles."""
    for done in range(1, 4):
        progress("restoring", done, 3)
    out = job.folder / "output"
    out.mkdir()
    shutil.copy(job.input_path, out / job.name)
    job.outputs.update(result=out / job.name, before=job.input_path, after=out / job.name)


@pytest.fixture
def fake_app(tmp_path):
    app = create_app(workdir=tmp_path / "work", limits=Limits(max_bytes=20_000, max_pixels=4000), run=_fake_run)
    yield app
    app.state.jobs.close(timeout=5)


def test_choices_offer_the_default_first_and_only_blind_ones():
    offered = choices()
    assert offered[0]["default"] and offered[0]["value"] == "method:blind-l0"
    assert sum(c["default"] for c in offered) == 1
    values = {c["value"] for c in offered}
    assert "model:auto" in values and "model:fdikp-tiny.defocus" in values
    assert not any(v.startswith("method:") and v[7:] in ("wiener", "hqs-hl", "hqs-tv", "richardson-lucy")
                   for v in values)  # non-blind methods need a kernel the page cannot take


def test_page_and_static_files_are_local(fake_app):
    with TestClient(fake_app) as client:
        page = client.get("/")
        assert page.status_code == 200 and "unblur_client" in page.cookies
        html = page.text
        assert "http://" not in html and "https://" not in html  # offline: nothing from the internet
        for asset in ("/static/app.js", "/static/style.css"):
            r = client.get(asset)
            assert r.status_code == 200 and "http" not in r.text
        options = client.get("/api/options").json()
        assert options["max_bytes"] == 20_000 and options["max_pixels"] == 4000


def test_upload_runs_and_reports_progress_then_downloads(fake_app, tmp_path):
    photo = _png(tmp_path / "photo.png")
    with TestClient(fake_app) as client:
        client.get("/")
        r = client.post("/api/jobs", params={"name": "../../photo.png", "choice": "method:blind-l0"},
                        content=photo.read_bytes())
        assert r.status_code == 202, r.text
        job = _wait(client, r.json()["id"])
        assert job["state"] == "done" and job["name"] == "photo.png"  # folders stripped from the name
        assert (job["done"], job["total"]) == (3, 3)
        download = client.get(f"/api/jobs/{job['id']}/files/result")
        assert download.status_code == 200 and download.content == photo.read_bytes()
        assert 'filename="photo.png"' in download.headers["content-disposition"]
        assert client.get(f"/api/jobs/{job['id']}/files/kernel").status_code == 404  # not made by this run


@pytest.mark.parametrize("name, body, status, words", [
    ("notes.txt", b"hello", 400, "not a photo this page takes"),
    ("photo.png", b"", 400, "empty"),
    ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 400, "cannot read image photo.png"),
    ("photo.jpg", b"\xff" * 30_000, 413, "larger than"),
])
def test_bad_uploads_get_one_line_errors(fake_app, name, body, status, words):
    with TestClient(fake_app) as client:
        r = client.post("/api/jobs", params={"name": name}, content=body)
        assert r.status_code == status
        message = r.json()["error"]
        assert words in message and "\n" not in message
        assert str(fake_app.state.workdir) not in message  # the server's folders are not shown
    assert not any(fake_app.state.workdir.iterdir())  # nothing kept of a refused upload


def test_pixel_limit_and_unknown_choice(fake_app, tmp_path):
    with TestClient(fake_app) as client:
        big = _png(tmp_path / "big.png", size=(100, 50))  # 5000 px > 4000
        r = client.post("/api/jobs", params={"name": "big.png"}, content=big.read_bytes())
        assert r.status_code == 413 and "megapixels" in r.json()["error"]
        r = client.post("/api/jobs", params={"name": "a.png", "choice": "method:wiener"},
                        content=_png(tmp_path / "a.png").read_bytes())
        assert r.status_code == 400 and "unknown method" in r.json()["error"]


def test_one_unfinished_job_per_client_and_clients_see_only_their_own(tmp_path):
    release = threading.Event()

    def slow_run(job, progress):
        release.wait(30)
        _fake_run(job, progress)

    app = create_app(workdir=tmp_path / "work", run=slow_run)
    photo = _png(tmp_path / "p.png").read_bytes()
    try:
        with TestClient(app) as alice, TestClient(app) as bob:
            alice.get("/"), bob.get("/")
            assert alice.cookies["unblur_client"] != bob.cookies["unblur_client"]
            first = alice.post("/api/jobs", params={"name": "p.png"}, content=photo)
            assert first.status_code == 202
            assert alice.post("/api/jobs", params={"name": "p.png"}, content=photo).status_code == 429
            queued = bob.post("/api/jobs", params={"name": "p.png"}, content=photo)  # another client may queue
            assert queued.status_code == 202
            assert bob.get(f"/api/jobs/{first.json()['id']}").status_code == 404
            assert bob.get(f"/api/jobs/{queued.json()['id']}").json()["state"] == "queued"  # one at a time
            release.set()
            assert _wait(alice, first.json()["id"])["state"] == "done"
            assert _wait(bob, queued.json()["id"])["state"] == "done"
            assert alice.post("/api/jobs", params={"name": "p.png"}, content=photo).status_code == 202
    finally:
        release.set()
        app.state.jobs.close(timeout=5)


def test_a_failing_job_reports_one_line_and_the_server_goes_on(tmp_path):
    calls = []

    def flaky(job, progress):
        calls.append(job.id)
        if len(calls) == 1:
            raise RuntimeError("out of memory\nsecond line")
        _fake_run(job, progress)

    app = create_app(workdir=tmp_path / "work", run=flaky)
    photo = _png(tmp_path / "p.png").read_bytes()
    try:
        with TestClient(app) as client:
            failed = _wait(client, client.post("/api/jobs", params={"name": "p.png"}, content=photo).json()["id"])
            assert failed["state"] == "failed" and failed["error"] == "RuntimeError: out of memory"
            ok = _wait(client, client.post("/api/jobs", params={"name": "p.png"}, content=photo).json()["id"])
            assert ok["state"] == "done"
    finally:
        app.state.jobs.close(timeout=5)


def test_real_restoration_keeps_size_and_bit_depth_and_writes_the_kernel(tmp_path):
    """The real job function: blind-l0 on a small 16-bit photo; the download is 16-bit at full size, the
    kernel and the 8-bit previews are there."""
    photo = _png(tmp_path / "grey16.png", size=(72, 64), bits=16)
    app = create_app(workdir=tmp_path / "work")
    try:
        with TestClient(app) as client:
            r = client.post("/api/jobs", params={"name": "grey16.png", "choice": "method:blind-l0"},
                            content=photo.read_bytes())
            job = _wait(client, r.json()["id"], timeout=300)
            assert job["state"] == "done", job
            assert set(job["files"]) == {"result", "kernel", "before", "after"}
            result = tmp_path / "result.png"
            result.write_bytes(client.get(f"/api/jobs/{job['id']}/files/result").content)
            with Image.open(result) as im:
                assert im.size == (72, 64) and im.mode.startswith("I;16")
            kernel = client.get(f"/api/jobs/{job['id']}/files/kernel")
            assert kernel.status_code == 200 and kernel.headers["content-type"] == "image/png"
    finally:
        app.state.jobs.close(timeout=5)


# ------------------------------------------------------------------ the page in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def served(tmp_path):
    """The real application on a free localhost port (uvicorn in a thread)."""
    pytest.importorskip("uvicorn")
    from unblur.web.server import background

    app = create_app(workdir=tmp_path / "work")
    with background(app) as url:
        yield url


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium)")
def test_page_end_to_end_in_chromium(served, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from skimage import data

    photo = tmp_path / "camera.png"
    Image.fromarray(data.camera()[150:278, 180:340]).save(photo)  # 160 x 128, 8-bit grey
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(served)
            page.wait_for_function("document.getElementById('choice').options.length > 0")
            assert page.input_value("#choice") == "method:blind-l0"  # the default preselected

            page.set_input_files("#file", str(photo))  # what a drop or a click-to-choose hands the page
            page.wait_for_selector("#result", state="visible", timeout=240_000)
            assert page.is_hidden("#message")
            page.wait_for_function("document.getElementById('after').naturalWidth > 0")
            assert page.evaluate("document.getElementById('after').naturalWidth") == 160
            assert page.is_visible("#estimate")  # the kernel blind-l0 found
            page.wait_for_function("document.getElementById('estimate-img').naturalWidth > 0")

            page.focus("#slider")  # the slider, by keyboard as a user would
            page.keyboard.press("Home")
            assert page.evaluate("document.getElementById('before-clip').style.width") == "0%"
            page.keyboard.press("End")
            assert page.evaluate("document.getElementById('before-clip').style.width") == "100%"

            with page.expect_download() as info:
                page.click("#download")
            saved = tmp_path / "downloaded.png"
            info.value.save_as(saved)
            assert info.value.suggested_filename == "camera.png"
            with Image.open(saved) as im:
                assert im.size == (160, 128) and im.mode == "L"

            page.set_input_files("#file", str(bad))
            page.wait_for_selector("#message", state="visible", timeout=30_000)
            assert "cannot read image broken.png" in page.text_content("#message")
            assert page.is_hidden("#result")
        finally:
            browser.close()


# ------------------------------------------------------------------ the command


def test_serve_command_bad_values_are_one_line_errors(tmp_path, capsys):
    from unblur.cli.main import main
    from unblur.web.server import bind

    assert main(["serve", "--port", "70000"]) == 2
    assert "must be in 0..65535" in capsys.readouterr().err
    assert main(["serve", "--max-mb", "0"]) == 2
    assert "a size in MB must be in 0.001.." in capsys.readouterr().err
    taken = bind("127.0.0.1", 0)
    taken.listen()
    try:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) != 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("unblur: error: cannot listen on 127.0.0.1:") and "\n" not in err
    finally:
        taken.close()
    (tmp_path / "file").write_text("x")
    assert main(["serve", "--workdir", str(tmp_path / "file")]) != 0
    assert "not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "x"


def test_closing_the_queue_drops_the_jobs_still_waiting(tmp_path):
    from unblur.web.jobs import Job, JobQueue

    started, release, ran = threading.Event(), threading.Event(), []

    def run(job, progress):
        ran.append(job.id)
        started.set()
        release.wait(30)

    jobs = JobQueue(tmp_path, run)
    first = jobs.submit(Job("a", "alice", "p.png", "method:blind-l0", jobs.new_folder()[1]))
    second = jobs.submit(Job("b", "bob", "p.png", "method:blind-l0", jobs.new_folder()[1]))
    assert started.wait(10)
    closer = threading.Thread(target=jobs.close, kwargs={"timeout": 30})
    closer.start()
    time.sleep(0.2)
    release.set()
    closer.join(30)
    assert ran == ["a"] and first.state == "done" and second.state == "queued"
