"""Render the `dvc plots show` page in headless Chromium with the network blocked; fail if it is blank.

    make plots-check
    # = dvc plots show -o dvc_plots   (.dvc/config: plots.html_template = plots/offline.html)
    #   python -m scripts.plots_check dvc_plots/index.html --screenshot docs/plots.png

Checks, each printed with its number: every plot div holds vega's rendered <svg class="marks">
(our templates ask vega-embed for SVG); every method of params.yaml `methods` appears as text in
the page (the trade-off labels); the methods of `trained` whose loss curves are drawn; the
screenshot is not blank (grey-level standard deviation and share of non-white pixels). Needs a
Chromium binary (Debian: `apt-get install -y chromium`); any request to the network fails, so a
page that still loads vega from a CDN (DVC's own page, used when plots.html_template is unset)
comes out blank.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image, ImageStat

from aligntax.config import read_params
from aligntax.methods import load_methods, trained_names

OFFLINE = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND"]


class PlotDom(HTMLParser):
    """Per top-level plot div (DVC gives each an id): how many svg/canvas it holds, and its visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.in_code = False
        self.plots: dict[str, int] = {}
        self.current: str | None = None
        self.texts: list[str] = []
        self.div_texts: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "style"):
            self.in_code = True
        elif tag == "div":
            self.depth += 1
            if self.current is None and a.get("id"):
                self.current, self.div_depth = a["id"], self.depth
                self.plots[self.current] = 0
                self.div_texts[self.current] = []
        elif tag in ("svg", "canvas") and "marks" in (a.get("class") or "").split() and self.current is not None:
            self.plots[self.current] += 1  # vega's drawing (class "marks"), not the actions-menu icon

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.in_code = False
        elif tag == "div":
            if self.current is not None and self.depth == self.div_depth:
                self.current = None
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if data.strip() and not self.in_code:
            self.texts.append(data.strip())
            if self.current is not None:
                self.div_texts[self.current].append(data.strip())


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    raise SystemExit("no Chromium found: install it (Debian: apt-get install -y chromium)")


def headless(page: Path, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--virtual-time-budget=20000", *OFFLINE, *args, page.resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("page", type=Path, help="the index.html written by `dvc plots show`")
    p.add_argument("--screenshot", type=Path, default=Path("docs/plots.png"), help="PNG written (default: %(default)s)")
    p.add_argument("--params", default="params.yaml", help="methods expected on the page (default: %(default)s)")
    p.add_argument("--size", default="800,1100", help="window width,height in pixels (default: %(default)s)")
    args = p.parse_args()
    if not args.page.is_file():
        raise SystemExit(f"{args.page}: not found; run `make plots` first")

    start = time.perf_counter()
    dom = PlotDom()
    dom.feed(headless(args.page, "--dump-dom").stdout)
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    headless(args.page, f"--window-size={args.size}", f"--screenshot={args.screenshot.resolve()}")
    seconds = time.perf_counter() - start

    grey = Image.open(args.screenshot).convert("L")
    std = ImageStat.Stat(grey).stddev[0]
    non_white = sum(grey.histogram()[:250]) / (grey.width * grey.height)
    params = read_params(args.params)
    methods, trained = list(load_methods(params)), trained_names(params)
    missing = [m for m in methods if m not in dom.texts]
    curve_divs = [k for k, t in dom.div_texts.items() if any("Training" in x for x in t)]
    curves = [m for m in trained if any(m in dom.div_texts[k] for k in curve_divs)]
    blank = [k for k, n in dom.plots.items() if n == 0]
    print(f"chromium headless, network blocked: {seconds:.1f} s")
    print(f"plot divs: {len(dom.plots)}; with a rendered svg: {len(dom.plots) - len(blank)}")
    print(f"methods labelled: {len(methods) - len(missing)}/{len(methods)}; "
          f"training-curve plots: {len(curve_divs)}, their methods: {', '.join(curves) or 'none'}")
    print(f"screenshot {args.screenshot}: {grey.width}x{grey.height}, grey std {std:.1f}, non-white {100 * non_white:.1f}%")
    problems = []
    if not dom.plots or blank:
        problems.append(f"blank plot(s): {', '.join(blank) or 'no plot divs'}")
    if missing:
        problems.append(f"method(s) not labelled: {', '.join(missing)}")
    if std < 10 or non_white < 0.01:
        problems.append("the screenshot is (nearly) blank")
    if not curves:
        problems.append("no training curve of a trained method on the page")
    if problems:
        print("FAIL: " + "; ".join(problems))
        sys.exit(1)
    print("OK: the page renders offline")


if __name__ == "__main__":
    main()
