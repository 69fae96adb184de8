"""The documentation: the site builds with `mkdocs build --strict` (dead links, missing pages and anchors fail), its
generated pages hold what they are made from (every command of `deepworks --help`, the figures in bench/results),
it loads nothing from another host, and every relative link of the README leads to a file."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEEDS_MKDOCS = ("mkdocs", "material", "mkdocstrings_handlers.python")


def missing_builders() -> list[str]:
    return [name for name in NEEDS_MKDOCS if importlib.util.find_spec(name.split(".")[0]) is None
            or importlib.util.find_spec(name) is None]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this file as `mkdocs build --strict` builds it."""
    missing = missing_builders()
    if missing:
        pytest.skip(f"the documentation needs {', '.join(missing)}: pip install -e \".[test]\" brings them")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def commands_of_help() -> list[str]:
    """The command names `deepworks --help` lists under COMMAND."""
    text = subprocess.run([sys.executable, "-m", "deepworks", "--help"], capture_output=True, text=True,
                          check=True).stdout
    block = text.split("COMMAND\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^ {4}(\S+)", block, re.M)


def test_the_site_builds_strictly_and_loads_nothing_from_another_host(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20 and (site / "index.html").is_file() and (site / "search" / "search_index.json").is_file()
    for page in pages:
        text = page.read_text()
        remote = re.findall(r"<(?:script|link|img|iframe)\b[^>]*(?:src|href)=\"(?:https?:)?//[^\"]*\"", text)
        assert not [tag for tag in remote if "<a " not in tag], (page, remote)
        assert "fonts.googleapis" not in text and "unpkg.com" not in text, page


def test_the_cli_reference_holds_every_command_of_deepworks_help(site):
    names = commands_of_help()
    assert {"train", "serve", "ui", "import"} <= set(names)
    page = (site / "reference" / "cli.html").read_text()
    for name in names:
        assert f'id="deepworks-{name}"' in page, name
        assert f"$ deepworks {name} --help" in page, name


def test_the_benchmark_page_shows_the_figures_of_bench_results(site):
    spec = importlib.util.spec_from_file_location("gen_bench", ROOT / "docs" / "gen_bench.py")
    gen_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_bench)
    page = (site / "benchmarks.html").read_text()
    image = json.loads((ROOT / "bench" / "results" / "image.json").read_text())
    assert gen_bench.fmt(image["throughput"]["deepworks_median"]) in page
    assert gen_bench.fmt(image["throughput"]["ratio_vs_plain"]) in page
    for results in (ROOT / "bench" / "results").glob("*.json"):
        assert f"bench/results/{results.name}" in page, results.name


def test_the_http_and_python_references_are_generated(site):
    http = (site / "reference" / "http.html").read_text()
    assert "/v2/models/{name}/infer" in http and "/api/jobs/{job_id}/events" in http
    schema = json.loads((site / "reference" / "openapi-ui.json").read_text())
    assert "/api/design" in schema["paths"]
    python = (site / "reference" / "python.html").read_text()
    assert 'id="dwtrain"' in python and "Train a model and write its run directory" in python


def readme_links() -> list[str]:
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # commands, not links
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text) + re.findall(r"<img[^>]+src=\"([^\"]+)\"", text)
    return [t for t in targets if not re.match(r"[a-z]+:|#", t)]


def test_every_relative_link_of_the_readme_leads_to_a_file():
    links = readme_links()
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (ROOT / link.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
