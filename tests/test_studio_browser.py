"""`lofi studio` in a real headless Chromium (Debian's chromium + chromium-driver, via selenium).

The whole flow a user goes through: load the page, generate a short song, wait for the player,
play, regenerate the drums (the melody stem's bytes must not change), reload, download the zip.
A screenshot is saved on the way (``$LOFI_STUDIO_SCREENSHOT``, else in the test's tmp folder).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
if not CHROMIUM.exists() or not DRIVER.exists():
    pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {DRIVER} missing; "
                "`apt-get install --no-install-recommends chromium chromium-driver`, as "
                "install.sh does)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
uvicorn = pytest.importorskip("uvicorn")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from arranger.compose.song_folder import Output  # noqa: E402
from arranger.studio.app import create_app  # noqa: E402
from arranger.studio.server import bind  # noqa: E402
from tests.helpers import save_models, tiny_models  # noqa: E402

pytestmark = pytest.mark.slow
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return tmp_path_factory.mktemp("browser") / "library"


@pytest.fixture(scope="module")
def url(library, tmp_path_factory):
    weights = save_models(tiny_models(), tmp_path_factory.mktemp("weights"))
    app = create_app(library, weights=weights, output=Output(pictures=False, progress=False))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def until(driver, condition, timeout: float = 240.0, what: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message=what)


def player_ready(driver, other_than: str = "") -> str:
    """Wait until the page has a song's audio decoded (a version other than ``other_than``)."""
    body = driver.find_element(By.TAG_NAME, "body")
    until(driver, lambda d: body.get_attribute("data-player") == "ready"
          and body.get_attribute("data-version") not in ("", None, other_than),
          what=f"player not ready: {driver.find_element(By.ID, 'status-text').text}")
    return body.get_attribute("data-version")


def fill(driver, field: str, value: str) -> None:
    box = driver.find_element(By.ID, field)
    box.clear()
    box.send_keys(value)


def test_generate_listen_regenerate_drums_and_download(browser, url, library, tmp_path):
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.get(url)
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#preset option"), 30, "presets")
    fill(browser, "bars", "4")
    fill(browser, "seed", "5")
    browser.find_element(By.ID, "generate").click()
    first = player_ready(browser)
    song_id = browser.execute_script("return window.studio.state.current")
    folder = library / song_id
    assert (folder / "stems/melody.wav").is_file()
    assert "rainy-night" in browser.find_element(By.ID, "meta").text

    browser.find_element(By.ID, "play").click()  # the stems play on the Web Audio clock
    until(browser, lambda d: d.execute_script("return window.studio.player.position()") > 0.2,
          30, "the play position does not move")
    browser.find_element(By.ID, "play").click()

    roll = browser.find_element(By.ID, "roll")  # drag over bars 2-3 of the melody lane
    lane_y = 20 + 64 + 60 - roll.size["height"] / 2
    bar = roll.size["width"] / 4
    (ActionChains(browser).move_to_element_with_offset(roll, -bar * 0.5, lane_y)
     .click_and_hold().move_by_offset(bar, 0).release().perform())
    assert "melody, bars 2-3" in browser.find_element(By.ID, "selection").text

    melody, drums = sha(folder / "stems/melody.wav"), sha(folder / "stems/drums.wav")
    browser.find_element(By.CSS_SELECTOR, ".lane[data-layer=drums] .lane-name").click()
    assert "drums, the whole song" in browser.find_element(By.ID, "selection").text
    browser.find_element(By.ID, "regenerate").click()
    second = player_ready(browser, other_than=first)
    assert sha(folder / "stems/melody.wav") == melody
    assert sha(folder / "stems/drums.wav") != drums
    assert "1 change" in browser.find_element(By.ID, "history").text
    _screenshot(browser, tmp_path)

    browser.refresh()  # a reload shows the same song, in the same state
    assert player_ready(browser) == second
    assert browser.find_element(By.ID, "title").text == song_id

    browser.find_element(By.ID, "zip").click()
    zipped = tmp_path / f"{song_id}.zip"
    until(browser, lambda d: zipped.is_file() and not list(tmp_path.glob("*.crdownload")), 60,
          "the zip did not download")
    with zipfile.ZipFile(zipped) as z:
        assert z.read(f"{song_id}/stems/melody.wav") == (folder / "stems/melody.wav").read_bytes()
        assert z.read(f"{song_id}/score.mid") == (folder / "score.mid").read_bytes()
        layers = {f"{song_id}/stems/{layer}.wav" for layer in ("chords", "melody", "bass", "drums")}
        assert layers <= set(z.namelist())


def _screenshot(browser, tmp_path: Path) -> None:
    target = Path(os.environ.get("LOFI_STUDIO_SCREENSHOT") or tmp_path / "studio.png")
    assert browser.save_screenshot(str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
