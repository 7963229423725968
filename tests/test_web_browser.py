"""``fundiff serve`` in a real browser: the server started as users start it, driven in headless Chromium.

The tests start ``python -m fundiff serve`` on a free port and drive it with Playwright (Debian's ``chromium``;
Playwright's own browser downloads are not used).  If no Chromium is found they try to install Debian's package (as
root, with apt-get) and skip, saying why, only when that fails.  The job functions behind each tab are tested without
a browser in ``test_web.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio", reason="the web UI needs gradio: pip install 'fundiff[web]'")

from helpers import free_port  # noqa: E402

from fundiff.web import app as web  # noqa: E402

# gradio's queue statistics use pandas options that pandas 3 deprecates: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

SCALE = web.DISPLAY // 28          # MNIST results are enlarged this many times
CELL = 28 * SCALE                  # one enlarged MNIST image

# ----------------------------------------------------------------------------------------------
# A real browser


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(path, os.X_OK):
            return path
    return None


def _install_chromium() -> str:
    """Install Debian's chromium (root + apt-get only); returns why not, or '' on success."""
    if not shutil.which("apt-get"):
        return "no apt-get to install Debian's chromium package with"
    if os.geteuid() != 0:
        return "not root, so cannot apt-get install chromium (run: sudo apt-get install -y chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "install", "-y", "-q", "chromium"],
                    ["sh", "-c", "apt-get update -q && apt-get install -y -q chromium"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
            if proc.returncode == 0 and _find_chromium():
                return ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get install chromium failed: {exc}"
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
    return f"apt-get install chromium failed (exit {proc.returncode}): {tail[0]}"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None:
        why = _install_chromium()
        path = _find_chromium()
        if path is None:
            pytest.skip(f"no Chromium for the browser test: {why}")
    return path


@pytest.fixture(scope="module")
def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "playwright>=1.40"],
                              capture_output=True, text=True, timeout=600)
        importlib.invalidate_caches()
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            pytest.skip(f"the Playwright package is missing and pip could not install it: {proc.stderr.strip()[-200:]}")
    return sync_playwright


@contextlib.contextmanager
def _serving(log_dir, *extra):
    """``python -m fundiff serve EXTRA`` on a free loopback port until the block ends (killed, pass or fail)."""
    port = free_port()
    log_path = log_dir / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fundiff", "serve", "--port", str(port), "--quiet", *extra],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"fundiff serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"fundiff serve did not answer on {url} within 120 s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield {"url": url, "proc": proc, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with _serving(tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium, sync_playwright):
    """One headless Chromium for the module's browser tests (Playwright's sync API runs once per process)."""
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(server["url"])
    page.wait_for_selector("#gen-button")
    yield page
    page.close()


def _set_number(page, selector: str, value) -> None:
    box = page.locator(f"{selector} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _fetched_image(page, selector: str) -> Image.Image:
    """Wait for the output image of ``selector`` to load in the page, then fetch its file."""
    img = page.locator(f"{selector} img").first
    img.wait_for(state="visible")
    page.wait_for_function("s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }",
                           arg=f"{selector} img")
    response = page.request.get(img.get_attribute("src"))
    assert response.ok, response.status
    return Image.open(io.BytesIO(response.body()))


@pytest.mark.slow
def test_browser_generate(page, server):
    page.get_by_role("tab", name="Generate").click()
    page.locator("#gen-prompt textarea").fill("7")
    _set_number(page, "#gen-steps", 5)
    _set_number(page, "#gen-n", 1)
    page.click("#gen-button")
    image = _fetched_image(page, "#gen-output")
    assert image.size == (CELL, CELL)
    assert np.asarray(image.convert("L")).std() > 10                      # a digit, not a blank square
    assert server["proc"].poll() is None


@pytest.mark.slow
def test_browser_bad_upload_shows_a_message(page, server, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is a text file renamed .png")
    page.get_by_role("tab", name="SDEdit").click()
    page.locator("#sdedit-upload input[type=file]").set_input_files(str(bad))
    toast = page.locator(".toast-body").filter(has_text="notes.png is not an image")
    toast.first.wait_for(state="visible", timeout=30_000)
    # the upload box is emptied, ready for another file, and the server is still up
    page.locator("#sdedit-upload input[type=file]").wait_for(state="attached", timeout=30_000)
    assert server["proc"].poll() is None


@pytest.mark.slow
def test_browser_sdedit_of_a_digit_drawn_on_the_canvas(page, server):
    page.get_by_role("tab", name="SDEdit").click()
    canvas = page.locator("#sdedit-canvas canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 30, cy - 80)                                     # a '7': the bar, then the stem
    page.mouse.down()
    page.mouse.move(cx + 30, cy - 80, steps=12)
    page.mouse.move(cx - 10, cy + 80, steps=20)
    page.mouse.up()
    _set_number(page, "#sdedit-steps", 5)
    _set_number(page, "#sdedit-n", 1)
    page.click("#sdedit-button")
    image = _fetched_image(page, "#sdedit-output")
    assert image.size == ((2 * (28 + 2) + 2) * SCALE, (28 + 4) * SCALE)   # the drawing as the model sees it + 1 result
    drawn = np.asarray(image.convert("L"))[2 * SCALE:30 * SCALE, 2 * SCALE:30 * SCALE]
    assert drawn.max() > 200 and drawn.mean() < 128                       # white strokes on black: the drawing arrived
    assert "i_start" in page.locator("#sdedit-caption").inner_text()
    assert server["proc"].poll() is None


@pytest.mark.slow
def test_browser_anagram_from_a_report_pair_with_its_measured_rate(page, server):
    page.get_by_role("tab", name="Anagram").click()
    page.locator("#tab-anagram").get_by_text("pairs the report shows").scroll_into_view_if_needed()
    page.locator("#tab-anagram tr.tr-body").filter(has_text="rotate_cw").first.click()   # the example 7 / 1
    page.wait_for_function("() => document.querySelector('#tab-anagram textarea').value === '7'")
    _set_number(page, "#anagram-steps", 4)
    _set_number(page, "#anagram-measure", 4)
    page.click("#anagram-button")
    page.wait_for_function("() => (document.querySelector('#anagram-caption') || {}).innerText?.includes('Measured')")
    caption = page.locator("#anagram-caption").inner_text()
    assert "reads this image as" in caption and "under rotate_cw" in caption and "of 4 new images" in caption
    assert _fetched_image(page, "#anagram-image").size == (CELL, CELL)
    assert server["proc"].poll() is None


@pytest.mark.slow
def test_browser_hybrid_forks_as_asked(page, server):
    page.get_by_role("tab", name="Hybrid").click()
    _set_number(page, "#hybrid-steps", 4)
    page.locator("#hybrid-fork textarea").fill("soon")
    page.click("#hybrid-button")
    toast = page.locator(".toast-body").filter(has_text="fork at t must be 'auto', 'off' or a timestep")
    toast.first.wait_for(state="visible", timeout=30_000)
    page.locator("#hybrid-fork textarea").fill("800")
    page.click("#hybrid-button")
    page.wait_for_function("() => (document.querySelector('#hybrid-caption') || {}).innerText?.includes('Forked at t')")
    assert "Forked at t 750, the first step (at or below t 800)" in page.locator("#hybrid-caption").inner_text()
    assert _fetched_image(page, "#hybrid-image").size == (CELL, CELL)
    assert server["proc"].poll() is None


@pytest.mark.slow
def test_browser_logs_in_through_the_login_page(browser, tmp_path):
    """With --auth-file the UI is behind gradio's login page: a wrong password is refused, the right one lets in."""
    import re

    logins = tmp_path / "logins.txt"
    logins.write_text("# who may use the UI\nada:correct horse battery\n")
    with _serving(tmp_path, "--auth-file", str(logins)) as running:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.set_default_timeout(60_000)
            page.goto(running["url"])
            login = page.get_by_role("button", name=re.compile("login", re.I))
            login.wait_for()
            assert page.locator("#gen-button").count() == 0                  # nothing of the UI before logging in
            page.get_by_label(re.compile("username", re.I)).fill("ada")
            page.get_by_label(re.compile("password", re.I)).fill("wrong")
            login.click()
            page.get_by_text(re.compile("incorrect", re.I)).first.wait_for()
            page.get_by_label(re.compile("username", re.I)).fill("ada")          # the form comes back empty
            page.get_by_label(re.compile("password", re.I)).fill("correct horse battery")
            login.click()
            page.wait_for_selector("#gen-button")                            # the UI itself
            assert running["proc"].poll() is None
        finally:
            page.close()
