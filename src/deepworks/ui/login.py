"""The page a browser gets from a token-protected `deepworks ui` before it has logged in: what to do, in words, and
a field for the token, instead of the API's JSON refusal. Pages only: the API's routes still answer 401 in JSON."""

from __future__ import annotations

import html

API_PREFIXES = ("/api/", "/v1/", "/v2/", "/openapi.json", "/metrics", "/docs/")


def wants_page(scope) -> bool:
    """A browser asking for a page (GET, HTML accepted, not an API route)."""
    if scope["method"] != "GET" or scope["path"].startswith(API_PREFIXES):
        return False
    accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
    return "text/html" in accept


def login_page(path: str, wrong: bool):
    """401 with a small page of its own (no script, no outside resource): the login link, or the token by hand."""
    from fastapi.responses import HTMLResponse

    said = ("<p class='wrong' role='alert'>That token is not this server's. Copy the link again from the terminal "
            "where <code>deepworks ui</code> runs.</p>" if wrong else "")
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>deepworks ui: log in</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; min-height: 100vh; display: grid; place-items: center;
       background: #f5f6f8; color: #1d2330; }}
main {{ max-width: 30rem; padding: 2rem; background: #fff; border-radius: 12px; box-shadow: 0 2px 12px #0002; }}
h1 {{ font-size: 1.4rem; margin-top: 0; }} code {{ background: #eef0f4; padding: 0 .3em; border-radius: 4px; }}
label {{ display: block; font-weight: 600; margin: 1rem 0 .3rem; }}
input {{ width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; border: 1px solid #8a93a6;
        border-radius: 6px; }}
button {{ margin-top: .8rem; font: inherit; padding: .5rem 1.2rem; border: 0; border-radius: 6px; background: #2b59c3;
         color: #fff; cursor: pointer; }}
.wrong {{ color: #a4161a; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #12151c; color: #e6e9ef; }}
  main {{ background: #1c212b; }} code {{ background: #2a303c; }} }}
</style></head>
<body><main data-testid="login">
<h1>This deepworks ui needs its login link</h1>
<p>When <code>deepworks ui</code> started, it printed a link ending in <code>?token=…</code> in its terminal.
Open that link once: this browser then stays logged in until the server stops.</p>
{said}
<form method="get" action="{html.escape(path, quote=True)}">
<label for="token">Or paste the token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Log in</button>
</form></main></body></html>"""
    return HTMLResponse(body, status_code=401)
