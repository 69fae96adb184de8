"""The web UI's Lighthouse scores: `deepworks ui` on 127.0.0.1 with one small trained run, every main page audited
by Lighthouse in Debian's Chromium (headless), with the desktop preset and the mobile default, and the size of the
page's bundle.

Lighthouse is not a dependency of the package nor of the page's build: it lives in bench/package.json, installed
beside this script (Node 20; Lighthouse 12.2.3, as 13 wants Node 22):

    npm ci --prefix bench                         # once: bench/node_modules/.bin/lighthouse
    npm run build --prefix ui                     # the page as it is now (pip install -e . builds it too)
    python bench/ui.py                            # every section (about 8 minutes on 2 cores)
    python bench/ui.py --sections desktop --pages data,train --repeat 3

CHROME_PATH defaults to /usr/bin/chromium, started with --headless --no-sandbox. Nothing leaves 127.0.0.1: the
page loads no resource from another host (each report's network requests are checked, and a request elsewhere
fails the run), and Chromium's background networking is off (Lighthouse's own launch flags). With --offline the
whole run (training, server, Lighthouse, Chromium) is in a network namespace of its own whose only interface is the
loopback (unshare -n, as root), so nothing could reach another host if it tried.

The run: `deepworks train --model mlp --epochs 2 --no-baseline` on the built-in digits, into a temporary runs
folder, which `deepworks ui --token TOKEN` serves; Lighthouse sends `Authorization: Bearer TOKEN` with every
request (--extra-headers), as a script would, so the token-protected server is the one measured.

Sections:
  bundle   the built JS and CSS under src/deepworks/ui/static/assets: raw and gzip bytes per file, and what the
           first load of a page fetches (the entry chunk, its CSS and the chunks it imports statically)
  desktop  Lighthouse's desktop preset (no CPU slow-down; 40 ms, 10 Mbit/s simulated) on every page
  mobile   Lighthouse's default: a phone's screen, 4x CPU slow-down, slow 4G simulated
Per page: the four category scores (0-100), FCP, LCP, TBT (ms), CLS, Speed Index, the failed audits of each
category (what keeps a score below 100), the number of requests and the bytes transferred, and the load average.
With --repeat N each page is audited N times and the median run (by performance) is kept, with every score listed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
ASSETS = ROOT / "src" / "deepworks" / "ui" / "static" / "assets"
INDEX = ROOT / "src" / "deepworks" / "ui" / "static" / "index.html"
LIGHTHOUSE = BENCH / "node_modules" / ".bin" / "lighthouse"
RUN = "digits-mlp"
# address -> name in the results; RUN is the trained run. /docs/ only where the site is built.
PAGES = {"start": "/start", "data": "/data", "model": "/model", "train": "/train", "results": "/results",
         "run-results": f"/runs/{RUN}/results", "run-try": f"/runs/{RUN}/try", "run-trust": f"/runs/{RUN}/trust",
         "run-export": f"/runs/{RUN}/export", "docs": "/docs/"}
MAIN = ["start", "data", "model", "train", "results", "run-results", "run-try", "docs"]
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
METRICS = {"first-contentful-paint": "fcp_ms", "largest-contentful-paint": "lcp_ms", "total-blocking-time": "tbt_ms",
           "cumulative-layout-shift": "cls", "speed-index": "speed_index_ms", "interactive": "tti_ms"}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the bundle -----------------------------------------------------------------------------------------------------

def first_load_files() -> list[str]:
    """The assets a page's first load fetches: what index.html names (the entry script, its CSS, modulepreloads)."""
    html = INDEX.read_text()
    return sorted({Path(p).name for p in re.findall(r'(?:src|href)="/assets/([^"]+)"', html)})


def bundle_section() -> dict:
    if not ASSETS.is_dir():
        raise SystemExit("The page is not built: npm run build --prefix ui")
    files = {}
    for path in sorted(ASSETS.iterdir()):
        if path.suffix in (".js", ".css"):
            raw = path.read_bytes()
            files[path.name] = {"bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 9))}
    first = [f for f in first_load_files() if f in files]
    total = lambda names, key: sum(files[n][key] for n in names)  # noqa: E731
    js = [n for n in files if n.endswith(".js")]
    css = [n for n in files if n.endswith(".css")]
    out = {"files": files,
           "js_bytes": total(js, "bytes"), "js_gzip_bytes": total(js, "gzip_bytes"),
           "css_bytes": total(css, "bytes"), "css_gzip_bytes": total(css, "gzip_bytes"),
           "total_bytes": total(files, "bytes"), "total_gzip_bytes": total(files, "gzip_bytes"),
           "first_load": first, "first_load_bytes": total(first, "bytes"),
           "first_load_gzip_bytes": total(first, "gzip_bytes")}
    print({k: v for k, v in out.items() if k != "files"}, flush=True)
    return out


# --- the server and its run -----------------------------------------------------------------------------------------

class Server:
    """A trained run in a temporary runs folder and `deepworks ui` serving it on a free port, with a token."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="deepworks-bench-ui-"))
        self.runs = self.tmp / "runs"
        self.token = secrets.token_urlsafe(24)
        self.port = free_port()
        self.process = None

    def start(self) -> "Server":
        # the deepworks of this checkout, with the page built in it (src/deepworks/ui/static)
        path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "DEEPWORKS_THREADS": "2", "PYTHONPATH": path}
        subprocess.run([sys.executable, "-m", "deepworks", "train", "--model", "mlp", "--epochs", "2", "--no-baseline",
                        "--name", RUN, "--runs-dir", str(self.runs), "--quiet"], cwd=self.tmp, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        self.log = open(self.tmp / "ui.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "deepworks", "ui", "--runs-dir", str(self.runs),
                                         "--host", "127.0.0.1", "--port", str(self.port), "--token", self.token],
                                        cwd=self.tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                request = urllib.request.Request(self.url("/api/info"),
                                                 headers={"Authorization": f"Bearer {self.token}"})
                with urllib.request.urlopen(request, timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit(f"deepworks ui stopped: {(self.tmp / 'ui.log').read_text()}")
                time.sleep(0.5)
        raise SystemExit("deepworks ui did not answer within 120 s")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def has_docs(self) -> bool:
        request = urllib.request.Request(self.url("/docs/"), headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- Lighthouse -----------------------------------------------------------------------------------------------------

def lighthouse(server: Server, path: str, preset: str, keep: Path | None = None) -> dict:
    """One Lighthouse run of one page; its JSON report (also written into `keep`, a folder, when given)."""
    if not LIGHTHOUSE.exists():
        raise SystemExit("Lighthouse is not installed: npm ci --prefix bench")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        command = [str(LIGHTHOUSE), server.url(path), "--quiet", "--output=json", f"--output-path={out}",
                   "--chrome-flags=--headless --no-sandbox",
                   f"--extra-headers={json.dumps({'Authorization': f'Bearer {server.token}'})}",
                   "--only-categories=" + ",".join(CATEGORIES)]
        if preset == "desktop":
            command.append("--preset=desktop")
        env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"lighthouse failed on {path} ({preset}): {done.stderr[-2000:]}")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            name = path.strip("/").replace("/", "_") or "index"
            shutil.copy(out, keep / f"{name}-{preset}.json")
        return json.loads(out.read_text())


def offsite(report: dict) -> list[str]:
    """Every request of the page's load to a host other than 127.0.0.1 (data: and blob: URLs are not requests)."""
    items = (report["audits"].get("network-requests", {}).get("details") or {}).get("items", [])
    return sorted({i["url"] for i in items if urlparse(i["url"]).scheme in ("http", "https", "ws", "wss")
                   and urlparse(i["url"]).hostname != "127.0.0.1"})


def summary(report: dict) -> dict:
    """The figures kept of one report: scores, key metrics, the audits that failed, requests and bytes."""
    audits = report["audits"]
    scores = {c: round(100 * report["categories"][c]["score"]) if report["categories"][c]["score"] is not None
              else None for c in CATEGORIES}
    metrics = {}
    for audit, key in METRICS.items():
        value = audits.get(audit, {}).get("numericValue")
        if value is not None:
            metrics[key] = round(value, 3) if key == "cls" else round(value)
    failed = {}
    for c in CATEGORIES:
        for ref in report["categories"][c]["auditRefs"]:
            audit = audits.get(ref["id"], {})
            score, mode = audit.get("score"), audit.get("scoreDisplayMode")
            if ref.get("weight", 0) > 0 and mode in ("binary", "numeric", "metricSavings") and score is not None \
                    and score < 0.9:
                failed.setdefault(c, []).append(f"{ref['id']} ({score:.2f})")
    items = (audits.get("network-requests", {}).get("details") or {}).get("items", [])
    warnings = report.get("runWarnings", [])
    out = {**scores, **metrics, "requests": len(items),
           "transferred_bytes": sum(i.get("transferSize", 0) for i in items), "failed_audits": failed,
           "console_errors": len((audits.get("errors-in-console", {}).get("details") or {}).get("items", [])),
           "offsite_requests": offsite(report)}
    if warnings:
        out["warnings"] = warnings
    return out


def pages_section(server: Server, names: list[str], preset: str, repeat: int, keep: Path | None) -> dict:
    """Every page of `names` with one preset; the pages an earlier run measured and this one does not are kept
    (each page has its own date)."""
    out = {"lighthouse": None, "chromium": None, "repeat": repeat,
           "offline": bool(os.environ.get("DEEPWORKS_BENCH_NETNS"))}
    old = RESULTS / "ui.json"
    if old.exists():
        kept = json.loads(old.read_text()).get(preset, {})
        out.update({k: v for k, v in kept.items() if k in PAGES and k not in names})
    for name in names:
        runs = []
        for _ in range(repeat):
            load = load_average()
            report = lighthouse(server, PAGES[name], preset, keep)
            row = summary(report)
            row["load_before"] = load
            out["lighthouse"] = report.get("lighthouseVersion")
            out["chromium"] = report.get("environment", {}).get("hostUserAgent")
            if row["offsite_requests"]:
                raise SystemExit(f"{PAGES[name]} fetched from another host: {row['offsite_requests']}")
            runs.append(row)
        runs.sort(key=lambda r: r["performance"] or 0)
        kept = runs[len(runs) // 2]
        if repeat > 1:
            kept["performance_runs"] = [r["performance"] for r in runs]
        kept["address"] = PAGES[name].replace(RUN, "RUN")
        kept["date"] = time.strftime("%Y-%m-%d %H:%M")
        out[name] = kept
        print(preset, name, {k: kept.get(k) for k in (*CATEGORIES, "fcp_ms", "lcp_ms", "tbt_ms", "cls")},
              kept["failed_audits"], flush=True)
    scores = [out[n] for n in PAGES if n in out]
    out["lowest"] = {c: min(s[c] for s in scores if s[c] is not None) for c in CATEGORIES}
    out["median_performance"] = statistics.median(s["performance"] for s in scores)
    out["load_most"] = max(s["load_before"] for s in scores)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="bundle,desktop,mobile")
    parser.add_argument("--pages", default=",".join(MAIN), help=f"of {', '.join(PAGES)}; 'all' for every one")
    parser.add_argument("--repeat", type=int, default=1, help="Lighthouse runs per page (the median is kept)")
    parser.add_argument("--keep-reports", type=Path, help="a folder for Lighthouse's full JSON reports")
    parser.add_argument("--offline", action="store_true",
                        help="run in a network namespace with the loopback alone (unshare -n; root)")
    args = parser.parse_args(argv)
    if args.offline and not os.environ.get("DEEPWORKS_BENCH_NETNS"):
        inner = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
        os.execvpe("unshare", ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"],
                   {**os.environ, "DEEPWORKS_BENCH_NETNS": "1"})
    selected = args.sections.split(",")
    names = list(PAGES) if args.pages == "all" else args.pages.split(",")
    unknown = set(names) - set(PAGES)
    if unknown:
        raise SystemExit(f"unknown pages: {sorted(unknown)}; known: {', '.join(PAGES)}")
    server = None

    def started() -> Server:
        nonlocal server, names
        if server is None:
            server = Server().start()
            if "docs" in names and not server.has_docs():
                print("the documentation site is not built: /docs/ left out", flush=True)
                names = [n for n in names if n != "docs"]
        return server

    try:
        def preset(name):
            return lambda: pages_section(started(), names, name, args.repeat, args.keep_reports)

        measure("ui", {"bundle": bundle_section, "desktop": preset("desktop"), "mobile": preset("mobile")}, selected)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
