"""`moewir serve` in a real headless Chromium (selenium): `make browser-test`, outside the default suite.

Needs the extras `moewir[web]` and selenium, and Debian's `chromium` + `chromium-driver`. Starts
the server on a free loopback port, uploads a broken file (the one-line error must show in the
page), a file above the upload bound (refused), then a bundled rainy sample, waits for the result,
and compares the downloaded PNG with `moewir restore --format png` of the same file. The
screenshot goes to $MOEWIR_SCREENSHOT (`make browser-test`: docs/images/web_page.png).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.common.by import By  # noqa: E402

from moewir.data import read_image  # noqa: E402
from moewir.models import DEFAULT_MODEL  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver")
SAMPLE = Path(str(resources.files("moewir") / "samples" / "rain_dragonfly.jpg"))
MAX_UPLOAD_MB = 20  # the default of `moewir serve`
pytestmark = pytest.mark.skipif(CHROMEDRIVER is None, reason="needs chromium-driver (apt-get install chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "moewir.cli.main", "serve", "--port", str(port),
                                    "--device", "cpu"],
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def up():
        assert process.poll() is None, log.read_text()
        try:
            return urllib.request.urlopen(url, timeout=5).status == 200
        except OSError:
            return False

    try:
        _wait(up, 600, f"the server at {url}")
        yield url
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, url):
    browser.get(url)
    return _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 120, "the page")[0]


def _restore(browser, upload, path: Path, timeout: float = 900) -> str:
    upload.send_keys(str(path))
    # the page shows the name as stem and extension in separate elements
    _wait(lambda: path.stem in browser.find_element(By.ID, "upload").text, 60, f"the upload of {path.name}")
    browser.find_element(By.ID, "restore").click()
    status = browser.find_element(By.CSS_SELECTOR, "#status textarea")
    return _wait(lambda: status.get_attribute("value"), timeout, "the status line")


def test_a_broken_file_shows_the_cli_error_line(server, browser, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("<html>this is not a photo</html>")
    assert _restore(browser, _open(browser, server), broken, 120) == \
        "moewir: error: broken.jpg: not an image (format not recognised)"
    assert not browser.find_elements(By.CSS_SELECTOR, "#slider img")


def test_an_upload_above_the_bound_is_refused(server, browser, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(int((MAX_UPLOAD_MB + 0.5) * 2 ** 20)))
    _open(browser, server).send_keys(str(big))
    _wait(lambda: "Error" in browser.find_element(By.ID, "upload").text, 60, "the upload box's error")
    assert "big" not in browser.find_element(By.ID, "upload").text
    # refused by the server too, not only by the page's script
    boundary = "moewirtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + big.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(server + "gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413


def test_the_rainy_sample_matches_moewir_restore(server, browser, tmp_path):
    status = _restore(browser, _open(browser, server), SAMPLE)
    # the page's first choice is the commands' default, and the download is what `moewir restore` writes
    assert status.startswith(f"restored rain_dragonfly.jpg (512x384) with {DEFAULT_MODEL} on cpu, tiles 512"), status
    assert len(_wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#slider img"), 60, "the slider")) == 2
    loaded = "return [...document.querySelectorAll('#slider img')].every(i => i.complete && i.naturalWidth > 0)"
    _wait(lambda: browser.execute_script(loaded), 60, "the slider's images to load")
    time.sleep(1)  # let the page paint them
    link = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#download a[href]"), 60, "the download link")[0]
    downloaded = tmp_path / "downloaded.png"
    downloaded.write_bytes(urllib.request.urlopen(link.get_attribute("href"), timeout=60).read())
    screenshot = os.environ.get("MOEWIR_SCREENSHOT") or str(tmp_path / "web_page.png")
    Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(screenshot)

    subprocess.run([sys.executable, "-m", "moewir.cli.main", "restore", str(SAMPLE), "-o", str(tmp_path / "cli"),
                    "--format", "png", "--device", "cpu", "--no-progress"], check=True, capture_output=True)
    page, cli = read_image(downloaded), read_image(tmp_path / "cli" / "rain_dragonfly.png")
    assert page.shape == cli.shape == (384, 512, 3)
    assert np.array_equal(page, cli)
    assert np.abs(page - read_image(SAMPLE)).mean() > 0.005  # restored, not the upload sent back


def test_the_app_lays_out_the_page(tmp_path):
    from moewir.web import Page, build_app, weight_sources

    config = build_app(Page(weight_sources(), device="cpu", workdir=tmp_path)).config
    ids = {c.get("props", {}).get("elem_id"): c.get("type") for c in config["components"]}
    assert {"upload": "file", "weights": "dropdown", "tile": "dropdown", "restore": "button", "status": "textbox",
            "download": "file", "slider": "imageslider"}.items() <= ids.items()
