"""First paint and page weight of the web UI's pools and runs pages, with 10,000 runs stored.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_ui.py [--runs 10000] [--repeat 5]

Seeds a fresh SQLite store with benchmarks/seed_scale.py, starts `push-pools server start` on
127.0.0.1, and loads each page in Debian's chromium (Playwright) with a fresh browser context
(empty cache) each time. First paint is the browser's own first-contentful-paint entry; page
weight is the sum of the bodies of every response the page load received (uncompressed).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
PAGES = ("/work-pools", "/flow-runs", "/")
FIRST_PAINT = """new Promise((resolve) => {
  new PerformanceObserver((list) => {
    const entry = list.getEntriesByName("first-contentful-paint")[0];
    if (entry) resolve(entry.startTime);
  }).observe({ type: "paint", buffered: true });
  setTimeout(() => resolve(-1), 5000);
})"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(browser: object, url: str) -> tuple[float, int]:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    sizes: list[int] = []
    page.on("response", lambda response: sizes.append(len(response.body())))
    page.goto(url, wait_until="load")
    # The entry can come after the load event (the first frame is not painted yet): wait for
    # it rather than read it at once, which answers "none" on a fast load.
    paint = page.evaluate(FIRST_PAINT)
    context.close()
    return float(paint), sum(sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home:
        url = f"sqlite:///{home}/store.db"
        subprocess.run(
            [
                sys.executable,
                str(HERE / "seed_scale.py"),
                url,
                "--deployments",
                "50",
                "--pools",
                "10",
                "--runs",
                str(args.runs),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = _free_port()
        env = {**os.environ, "PUSH_POOLS_HOME": home, "PUSH_POOLS_DATABASE_URL": url}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "push_pools.cli.main",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                print(
                    f"{'page':<14} {'first paint median (ms)':>24} {'max':>8} {'weight (KB)':>12}"
                )
                for path in PAGES:
                    _measure(browser, base + path)  # the first render loads Jinja2: not counted
                    results = [_measure(browser, base + path) for _ in range(args.repeat)]
                    paints = [p for p, _w in results]
                    print(
                        f"{path:<14} {statistics.median(paints):>24.0f} {max(paints):>8.0f} "
                        f"{results[-1][1] / 1024:>12.1f}"
                    )
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
