"""The documentation site at /docs of `deepworks ui`, so that it is there offline, beside the page it documents.

`pip install` builds the site (setup.py, with MkDocs) into static/docs, after the page's own build, which empties
static/. It is served read-only as files, behind the same checks as everything else on this server (the token, the
Host, the Origin: the middlewares wrap every route and mount); Starlette's StaticFiles serves only files inside its
folder, so no path (`/docs/../../etc/passwd`, encoded or not) reaches another. Without MkDocs the package installs
all the same, and /docs says how to build the site.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).parent / "static" / "docs"
BUILD = "pip install mkdocs mkdocs-material \"mkdocstrings[python]\" && mkdocs build -d src/deepworks/ui/static/docs"


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
