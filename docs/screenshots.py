"""The README's pictures of ``vaekit report`` and ``vaekit explore``, taken in headless Chromium:

    OMP_NUM_THREADS=1 .venv/bin/python docs/screenshots.py --report /tmp/beta_sweep.html \\
        --explore runs/dsprites/beta4_s0 --example 3

writes docs/report.png (the top of the report page) and docs/explorer.png (the explorer at a test example's
posterior mean), each a palette PNG well under 300 KB."""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parent


def browser(width: int, height: int):  # noqa: ANN201 (a selenium driver)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def save_small(png: bytes, out: Path, width: int) -> None:
    """Scaled to ``width`` and reduced to 256 colours (text and charts stay sharp; the file stays small)."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    img.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


def report_shot(html: Path, out: Path) -> None:
    driver = browser(1280, 2900)
    try:
        driver.get(html.resolve().as_uri())
        time.sleep(1)
        save_small(driver.get_screenshot_as_png(), out, 880)
    finally:
        driver.quit()


def explorer_shot(run: str, example: int, out: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    from vaekit.views.explore.app import load_explorer, serving

    explorer, title = load_explorer(run)
    with serving(explorer, title) as url:
        driver = browser(1100, 760)
        try:
            driver.get(url)
            idle = "return window.vaekit && window.vaekit.decodes >= arguments[0] && !window.vaekit.state.inflight"
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(idle, 1))
            driver.execute_script("const f = document.getElementById('control-example'); f.value = arguments[0];"
                                  "f.dispatchEvent(new Event('change'));", example)
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(idle, 2))
            thumb = ("const t = document.getElementById('example'); "
                     "return t.complete && t.naturalWidth > 0 && t.src.endsWith('/' + arguments[0] + '.png');")
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(thumb, example))  # the example's thumbnail
            time.sleep(0.3)
            save_small(driver.get_screenshot_as_png(), out, 1100)
        finally:
            driver.quit()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--report", type=Path, help="a report written by vaekit report")
    p.add_argument("--explore", help="a run to open in the explorer")
    p.add_argument("--example", type=int, default=0)
    args = p.parse_args()
    if args.report:
        report_shot(args.report, DOCS / "report.png")
    if args.explore:
        explorer_shot(args.explore, args.example, DOCS / "explorer.png")


if __name__ == "__main__":
    main()
