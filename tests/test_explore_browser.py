"""vaekit explore as a person uses it: the page in headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium). Move a slider and see the picture change (and how long it took), upload a file that is no image
and read the message, upload a digit and see the sliders go to its posterior mean."""

from __future__ import annotations

import io
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_runs import tiny_run

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
pytest.importorskip("fastapi", reason="vaekit explore needs the explore extra: pip install 'vaekit[explore]'")
if not (Path(CHROMIUM).exists() or shutil.which("chromium")) or not (Path(CHROMEDRIVER).exists()
                                                                     or shutil.which("chromedriver")):
    pytest.skip("no chromium / chromedriver (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "tiny_runs"


@pytest.fixture
def served(tiny_root: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """The explorer of a tiny VAE run, served by uvicorn in a thread on a free loopback port."""
    from vaekit.views.explore.app import load_explorer, serving

    explorer, title = load_explorer(tiny_run("vae", tiny_root, data_dir, monkeypatch), examples=16)
    with serving(explorer, title, max_upload=2**20) as url:
        yield url, explorer


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"):
        opts.add_argument(arg)
    driver_path = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    except Exception as e:  # a chromium that cannot start here (no display libraries, ...) is a skip, not a failure
        pytest.skip(f"headless chromium did not start: {str(e).splitlines()[0][:200]}")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def picture(driver: object) -> list[int]:
    """The decoded image's pixels as the browser drew them (a canvas read-back)."""
    return driver.execute_script("""
        const img = document.getElementById('out'), c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        return Array.from(ctx.getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0));""")


def settled(driver: object, decodes: int, timeout: float = 30) -> None:
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "const v = window.vaekit; return v.decodes >= arguments[0] && !v.state.inflight && !v.state.pending;",
        decodes))


def message(driver: object, contains: str, timeout: float = 30) -> str:
    WebDriverWait(driver, timeout).until(lambda d: contains in d.find_element(By.ID, "message").text)
    return driver.find_element(By.ID, "message").text


def test_move_a_slider_and_upload(served: tuple[str, object], browser: object, tmp_path: Path) -> None:
    url, explorer = served
    browser.get(url)
    settled(browser, 1)
    sliders = browser.find_elements(By.CSS_SELECTOR, "#sliders input[type=range]")
    assert len(sliders) == len(explorer.all_sliders()) == 3
    before = picture(browser)

    # drag the first slider across its range, as a hand would: many input events, a few ms apart
    count = browser.execute_script("return window.vaekit.decodes")
    start = time.perf_counter()
    for v in [x / 4 for x in range(-12, 13)]:
        browser.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
                               sliders[0], v)
    settled(browser, count + 1)
    drag = time.perf_counter() - start
    after = picture(browser)
    assert after != before, "the picture did not change when the slider moved"
    assert browser.execute_script("return window.vaekit.state.z[0]") == 3.0
    expected = (explorer.model.decode(torch.tensor([browser.execute_script("return window.vaekit.state.z")])).mean
                * 255).round().flatten()
    assert (torch.tensor(after, dtype=torch.float32) - expected).abs().max() <= 1  # the newest values won
    timings = browser.execute_script("return window.vaekit.timings")[1:]  # the first includes the page's start
    server = statistics.median(t["server"] for t in timings)
    roundtrip = statistics.median(t["roundtrip"] for t in timings)
    print(f"\nslider updates: {len(timings)} decodes for 25 moves in {drag * 1000:.0f} ms; median server "
          f"{server:.1f} ms, round trip {roundtrip:.1f} ms")
    assert roundtrip < 1000  # generous: a loaded CI machine; the target (< 100 ms) is measured in benchmarks/
    assert "round trip" in browser.find_element(By.ID, "timing").text

    # a file that is no image: a message on the page, and the server still answers
    bad = tmp_path / "notes.png"
    bad.write_text("these are not pixels")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    browser.find_element(By.ID, "upload").click()
    text = message(browser, "not an image")
    assert "notes.png" in text and browser.find_element(By.ID, "message").get_attribute("class") == "error"

    # a file over the size limit (1 MiB here)
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * (2**20 + 100))
    browser.find_element(By.ID, "file").send_keys(str(huge))
    browser.find_element(By.ID, "upload").click()
    message(browser, "larger than the limit")

    # a digit of another size: resized, encoded, and the sliders at its posterior mean
    digit = explorer.examples["x"][7, 0]
    big = Image.fromarray((digit * 255).byte().numpy(), "L").resize((56, 56), Image.Resampling.NEAREST)
    good = tmp_path / "digit.png"
    big.save(good)
    count = browser.execute_script("return window.vaekit.decodes")
    browser.find_element(By.ID, "file").send_keys(str(good))
    browser.find_element(By.ID, "upload").click()
    text = message(browser, "encoded to its posterior mean")
    assert "resized from 56x56 to 28x28" in text
    settled(browser, count + 1)
    from vaekit.views.explore.base import read_upload_image

    buf = io.BytesIO()
    big.save(buf, format="PNG")
    x, _ = read_upload_image(buf.getvalue(), (1, 28, 28), dark_background=True)
    mean = explorer.model.encode(x[None]).mean[0].clamp(-4, 4)
    shown = [float(s.get_attribute("value")) for s in sliders]
    assert max(abs(a - b) for a, b in zip(shown, mean.tolist(), strict=True)) <= 0.006  # slider step 0.01
    state = browser.execute_script("return window.vaekit.state.z")
    torch.testing.assert_close(torch.tensor(state), mean, atol=1e-5, rtol=0)


def test_test_example_and_prior_buttons(served: tuple[str, object], browser: object) -> None:
    url, explorer = served
    browser.get(url)
    settled(browser, 1)
    field = browser.find_element(By.ID, "control-example")
    field.clear()
    field.send_keys("4")
    field.send_keys("\n")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", field)
    message(browser, "test example 4")
    z = torch.tensor(browser.execute_script("return window.vaekit.state.z"))
    torch.testing.assert_close(z, explorer.model.encode(explorer.examples["x"][4:5]).mean[0].clamp(-4, 4))
    count = browser.execute_script("return window.vaekit.decodes")
    browser.find_element(By.ID, "zero").click()
    settled(browser, count + 1)
    assert browser.execute_script("return window.vaekit.state.z") == [0, 0, 0]
