"""How fast ``vaekit explore`` follows a slider (issue 14's target: under 100 ms per update on this CPU).

For each run: (1) the server's own work per update, in process: decode one z with torch.no_grad and write the PNG
(``Explorer.decode`` + ``image_png``), 300 random slider settings after 20 warm-up ones; (2) what a person sees:
the page in headless Chromium, one slider moved 60 times, each move waiting for its picture to be drawn, with the
server time (the X-Decode-Ms header, which covers decode + PNG) and the round trip (input event to decoded image
in the page, performance.now()) recorded by the page. One torch thread, as ``vaekit explore`` runs by default.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/explore_latency.py runs/rerun/vae_mnist_60k_1250 \\
        runs/rerun/conv_vae_mnist runs/dsprites/beta1_s0 --out results/explore_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def quantiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"median": round(statistics.median(values), 2), "p90": round(values[int(0.9 * (len(values) - 1))], 2),
            "max": round(values[-1], 2), "n": len(values)}


def server_side(explorer: object, n: int = 300) -> dict[str, float]:
    from vaekit.views.explore.base import image_png

    torch.manual_seed(0)
    d = len(explorer.all_sliders())
    controls = explorer.default_controls()
    times = []
    for i in range(20 + n):
        z = (torch.randn(d) * 1.5).tolist()
        start = time.perf_counter()
        with torch.no_grad():
            image_png(explorer.decode(z, controls))
        if i >= 20:
            times.append((time.perf_counter() - start) * 1000)
    return quantiles(times)


def in_browser(explorer: object, title: str, moves: int = 60) -> dict[str, dict[str, float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from vaekit.views.explore.app import serving

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    with serving(explorer, title) as url:
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        try:
            driver.get(url)
            done = lambda k: lambda d: d.execute_script("return window.vaekit.decodes >= arguments[0] && "
                                                        "!window.vaekit.state.inflight", k)
            WebDriverWait(driver, 60).until(done(1))
            active = max(range(len(explorer.all_sliders())), key=lambda i: explorer.all_sliders()[i].activity or 0)
            slider = driver.find_element(By.CSS_SELECTOR, f"#sliders input[data-index='{active}']")
            for k in range(moves):
                value = -3 + 6 * (k % 20) / 19
                driver.execute_script("arguments[0].value = arguments[1]; "
                                      "arguments[0].dispatchEvent(new Event('input'))", slider, value)
                WebDriverWait(driver, 30).until(done(k + 2))
            timings = driver.execute_script("return window.vaekit.timings")[1:]
        finally:
            driver.quit()
    return {"server_ms": quantiles([t["server"] for t in timings]),
            "round_trip_ms": quantiles([t["roundtrip"] for t in timings])}


def main() -> None:
    from vaekit.views.explore.app import load_explorer

    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--out")
    p.add_argument("--moves", type=int, default=60)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        explorer, title = load_explorer(run)
        row = {"run": run, "model": type(explorer.model).__name__,
               "input": list(explorer.examples["x"].shape[1:]), "sliders": len(explorer.all_sliders()),
               "server_in_process_ms": server_side(explorer), **in_browser(explorer, title, args.moves)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"cpu": cpu_name(), "cores": os.cpu_count(),
              "load_average_1min": round(os.getloadavg()[0], 2), "torch_threads": 1, "runs": rows}
    print("\n| model | input | sliders | server, in process (median / p90) | server, per request | round trip in "
          "Chromium (median / p90) |\n|---|---|---|---|---|---|")
    for r in rows:
        s, h, b = r["server_in_process_ms"], r["server_ms"], r["round_trip_ms"]
        print(f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['sliders']} | {s['median']} / {s['p90']} ms "
              f"| {h['median']} / {h['p90']} ms | {b['median']} / {b['p90']} ms |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
