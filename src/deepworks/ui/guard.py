"""What keeps `deepworks ui` the user's own, even from the pages their browser has open (as Jupyter does):

- a token, random per launch unless one is given, which the printed login link puts in an HttpOnly cookie;
- a Host allow-list: a page on attacker.example that rebinds its name to 127.0.0.1 (DNS rebinding) is refused;
- an Origin check on every request that changes something: another site, or another port of this machine, is
  refused, as is a JSON body sent as text/plain or a form (what a cross-site page can send without asking);
- data roots: the paths a client names (data, data_dir, init_from, ...) must lie inside the runs folder or the
  folders given with --data-root, so no request reads /etc/passwd or ~/.ssh.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..serving.app import TOKEN_COOKIE, ClientError, check_token, error_response
from .login import login_page, wants_page

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def new_token() -> str:
    """A token for one launch of the UI, long enough that no page can guess it."""
    return secrets.token_urlsafe(24)


class LoginLink:
    """A browser opens http://HOST:PORT/?token=TOKEN once (the link `deepworks ui` prints, as Jupyter does): the
    token goes into an HttpOnly, SameSite=strict cookie, and the page's requests and event streams carry it from then
    on. A wrong token goes on to the server's refusal."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            if wants_page(scope) and not self.logged_in(scope):  # a browser without the token: a page, not JSON
                return await login_page(scope["path"], wrong=bool(given))(scope, receive, send)
            return await self.app(scope, receive, send)
        from fastapi.responses import RedirectResponse

        response = RedirectResponse(scope["path"], status_code=303)
        response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        await response(scope, receive, send)

    def logged_in(self, scope) -> bool:
        headers = dict(scope["headers"])
        try:
            check_token(scope["path"], headers.get(b"authorization", b"").decode("latin-1"), self.token,
                        headers.get(b"cookie", b"").decode("latin-1"))
        except ClientError:
            return False
        return True


class SameOrigin:
    """Every HTTP request: its Host must name this server (127.0.0.1, localhost, ::1 or the --host, on the port
    served when it is known), and a request that changes something must come from the UI's own page when it comes
    from a page at all (its Origin, when present, is this server's)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None):
        self.app, self.port = app, port
        self.any_host = host in WILDCARDS  # every address of the machine: a token guards it (check_exposure)
        self.names = {*LOOPBACK_NAMES, host.strip("[]").lower()}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        try:
            host = headers.get(b"host", b"").decode("latin-1")
            self.check_host(host)
            if scope["method"] in CHANGING:
                check_origin(headers.get(b"origin", b"").decode("latin-1"), host)
        except ClientError as err:
            return await error_response(err.status, str(err))(scope, receive, send)
        await self.app(scope, receive, send)

    def check_host(self, host: str) -> None:
        try:
            parts = urlsplit(f"http://{host}")
            name, port = (parts.hostname or "").lower(), parts.port
        except ValueError:
            name, port = "", None
        if self.any_host and name:
            return
        if name not in self.names or (self.port is not None and port not in (self.port, None)):
            raise ClientError(403, f"Expected a request to this deepworks ui ({', '.join(sorted(self.names))}"
                                   f"{f' on port {self.port}' if self.port else ''}). Received: Host {host!r}. Open "
                                   f"the link `deepworks ui` printed; to reach it by another name, start it with "
                                   f"--host NAME.")


def check_origin(origin: str, host: str) -> None:
    """A state-changing request from a page must come from the UI's own page: its Origin is this server."""
    if origin and origin.lower() not in (f"http://{host}".lower(), f"https://{host}".lower()):
        raise ClientError(403, f"Expected a request from the deepworks ui's own page (Origin http://{host}). "
                               f"Received: Origin {origin!r}: another site or port cannot change anything here.")


def check_json_type(content_type: str) -> None:
    """A JSON body must say so: a cross-site page can send text/plain or a form without asking, never JSON."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ClientError(415, f"Expected a JSON body with the header 'Content-Type: application/json'. Received: "
                               f"{content_type or 'no Content-Type'!r}.")


class DataRoots:
    """The folders whose files a client may name: the runs folder (uploads are kept there) and --data-root's."""

    def __init__(self, runs_dir: Path, roots=()):
        self.roots = [Path(p).expanduser().resolve() for p in (runs_dir, *roots)]

    def check(self, value, what: str = "data") -> None:
        """Refuse a path outside the roots. A name that is no path (a built-in such as digits or shapes:40) is
        fine: a path is what names a folder, holds a separator, or is there."""
        if not isinstance(value, (str, Path)) or not value or not looks_like_path(str(value)):
            return
        target = Path(str(value)).expanduser().resolve()
        if not any(root == target or root in target.parents for root in self.roots):
            raise ClientError(403, f"Expected {what} inside the folders this UI reads ({', '.join(map(str, self.roots))})"
                                   f" or a built-in dataset. Received: '{value}'. Upload it, or start `deepworks ui "
                                   f"--data-root FOLDER` with the folder that holds it.")


def looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(("~", ".")) or Path(text).exists()


def loopback_link(host: str, port: int, token: str | None) -> str:
    """The link `deepworks ui` prints: the login link when there is a token."""
    shown = "127.0.0.1" if host in WILDCARDS else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


__all__ = ["DataRoots", "LoginLink", "SameOrigin", "check_json_type", "loopback_link", "new_token"]
