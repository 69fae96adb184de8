"""The documentation site at /docs of `deepworks ui`, so that it is there offline, beside the page it documents.

`pip install` builds the site (setup.py, with MkDocs) into ui/site, beside the page's static/ (which Vite empties when
it builds); where MkDocs came after that build (the [test] extra brings it in the same pip run), `deepworks ui` builds
it at its first start from the source folder (build_if_missing). It is served read-only as files, behind the same checks as everything else on this server (the token, the
Host, the Origin: the middlewares wrap every route and mount); Starlette's StaticFiles serves only files inside its
folder, so no path (`/docs/../../etc/passwd`, encoded or not) reaches another. Without MkDocs the package installs
all the same, and /docs says how to build the site.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).parent / "site"
SOURCE = Path(__file__).resolve().parents[3]  # the source folder of an editable install: mkdocs.yml and docs/
BUILD = "pip install mkdocs mkdocs-material \"mkdocstrings[python]\" && mkdocs build -d src/deepworks/ui/site"


def build_if_missing(folder: Path = DOCS, source: Path = SOURCE) -> None:
    """Build the site once, at `deepworks ui`'s start, when it is missing and both MkDocs and the docs' sources are
    here; otherwise leave /docs to say how. Seconds, said before they start."""
    import os
    import shutil
    import subprocess

    mkdocs = shutil.which("mkdocs")
    if (folder / "index.html").is_file() or mkdocs is None or not (source / "mkdocs.yml").is_file():
        return
    print("deepworks ui: building the documentation for /docs (once, some seconds)...", flush=True)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([mkdocs, "build", "--quiet", "--site-dir", str(folder)], cwd=source, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"deepworks ui: the documentation did not build; /docs says how to build it. {done.stderr[-500:]}")


def mount_docs(app, folder: Path | None = None) -> None:
    """Serve the built site at /docs, or a page saying how to build it. Call before the page's mount at /."""
    from fastapi.staticfiles import StaticFiles

    folder = Path(folder or DOCS)
    if (folder / "index.html").is_file():
        app.add_api_route("/docs", to_docs, include_in_schema=False)  # else the page's mount at / would answer it
        app.mount("/docs", StaticFiles(directory=folder, html=True), name="docs")
    else:
        app.add_api_route("/docs", docs_not_built, include_in_schema=False)
        app.add_api_route("/docs/{rest:path}", docs_not_built, include_in_schema=False)


async def to_docs():
    from fastapi.responses import RedirectResponse

    return RedirectResponse("/docs/", status_code=307)


async def docs_not_built():
    """The answer at /docs when the site was not built at install time (MkDocs was missing)."""
    from fastapi.responses import HTMLResponse

    return HTMLResponse("<h1>deepworks documentation</h1><p>The documentation site is not built. From the deepworks "
                        f"source folder: <code>{BUILD}</code>, then reload. The same pages are in the source's "
                        "<code>docs/</code> folder as Markdown.</p>", status_code=503)
