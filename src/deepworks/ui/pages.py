"""The page's files, served at every address of the page's own (/train, /runs/NAME/try, ...): the page reads where
it is from the address, so a reload, Back or a shared link opens the same view."""

from __future__ import annotations

from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

NOT_PAGES = ("/api/", "/v1/", "/v2/", "/docs/")  # routes of their own: a miss there is the server's 404


def is_page_address(path: str) -> bool:
    """A path the page may be at: not under a route of the server's own, no file extension, no '..' or '.' part
    (the path as the client sent it, before StaticFiles normalises it)."""
    parts = path.split("/")
    return not path.startswith(NOT_PAGES) and "." not in parts[-1] and not {".", ".."} & set(parts) \
        and "%" not in path


class PageFiles(StaticFiles):
    """StaticFiles that answers index.html for a path with no file of its own that is a page address."""

    async def get_response(self, path: str, scope):
        try:
            return await super().get_response(path, scope)
        except HTTPException as err:
            if err.status_code != 404 or not is_page_address(scope["path"]):
                raise
            return await super().get_response("index.html", scope)
