"""MkDocs hooks (mkdocs.yml `hooks:`): the pages made from the code and the benchmark results at build time.

on_files adds the reference pages (CLI, HTTP API with its two OpenAPI schemas, Python API) to the build as
generated files, never written into docs/; on_page_markdown fills the benchmark page's tables from
bench/results/*.json. deepworks is imported from this checkout's src/, so the pages describe the code beside
them even where another deepworks is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "src"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from mkdocs.plugins import event_priority  # noqa: E402

import gen_bench  # noqa: E402
import gen_reference  # noqa: E402


@event_priority(-100)  # after Material's offline plugin, which adds the script this removes
def on_config(config):
    """No script from another host: Material's offline plugin adds a shim from unpkg.com (for reading the site from
    file://, where a browser refuses the search's web worker). The site is read over HTTP (`mkdocs serve`,
    `deepworks ui` at /docs), where the search works without it, and a page that fetched it would leave this
    machine."""
    polyfills = config.extra.get("polyfills") or []
    config.extra["polyfills"] = [url for url in polyfills if "://" not in url]
    return config


def on_files(files, config):
    """Add the generated reference pages and schemas."""
    from mkdocs.structure.files import File

    http, serve, ui = gen_reference.http_reference()
    generated = {
        "reference/cli.md": gen_reference.cli_reference(),
        "reference/http.md": http,
        "reference/openapi-serve.json": gen_reference.openapi_json(serve),
        "reference/openapi-ui.json": gen_reference.openapi_json(ui),
        "reference/python.md": gen_reference.python_reference(),
    }
    for uri, content in generated.items():
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    """The benchmark page's markers become tables of the figures in bench/results."""
    if page.file.src_uri == "benchmarks.md":
        return gen_bench.fill(markdown)
    return markdown
