"""Reading what a client sends: a JSON body (no deeper than MAX_JSON_DEPTH, checked before parsing) or a multipart
form, into the inputs a task's face decodes and the options of its use."""

from __future__ import annotations

import base64
import json
import re

import numpy as np

from .requests import ClientError, Limits

MAX_FORM_FIELDS = 100


async def read_request(request, limits: Limits) -> tuple:
    """(inputs, options, stream, format) from a JSON body or a multipart form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        body = parse_json(await request.body(), "a JSON body")
        if not isinstance(body, dict):
            raise ClientError(400, f"Expected a JSON object such as {{\"inputs\": ...}}. Received: a "
                                   f"{type(body).__name__}.")
        body = dict(body)
        inputs = from_json(body.pop("inputs", None))
    elif kind == "multipart/form-data":
        form = await read_form(request, limits)
        files = [v for _, v in form.multi_items() if hasattr(v, "read")]
        body = {k: v for k, v in form.multi_items() if not hasattr(v, "read")}
        inputs = [await f.read() for f in files] if files else from_json(body.pop("inputs", None))
    else:
        raise ClientError(415, f"Expected Content-Type application/json or multipart/form-data. Received: "
                               f"{kind or 'none'}.")
    stream = str(body.pop("stream", False)).lower() in ("true", "1", "yes")
    fmt = str(body.pop("format", "json")).lower()
    if fmt not in ("json", "png"):
        raise ClientError(400, f"Expected format 'json' or 'png'. Received: {fmt!r}.")
    count = len(inputs) if isinstance(inputs, list) else 1
    if count > limits.max_items:
        raise ClientError(413, f"Expected at most {limits.max_items} inputs in one request. Received: {count}.")
    return inputs, body, stream, fmt


MAX_JSON_DEPTH = 32  # nested lists and objects: an image batch is 5 deep, numpy's arrays at most 32 (64 in 2.x)
NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
QUOTED = re.compile(rb'"[^"]*"')
BRACKET_STEPS = np.zeros(256, np.int8)
BRACKET_STEPS[[ord("["), ord("{")]], BRACKET_STEPS[[ord("]"), ord("}")]] = 1, -1


def json_depth(text: bytes) -> int:
    """How deep the lists and objects of a JSON text nest, read before parsing (json.loads recurses, and a
    100,000-deep text would exhaust Python's stack); brackets inside strings do not count. Read on the text's
    skeleton: escaped backslashes and quotes dropped, then all but brackets and quotes, then what lies between
    quotes (a 32 x 32 x 3 image's 16 KB in 20 us; a regular expression over the whole text took 55 us)."""
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = text.translate(None, NOT_STRUCTURE)
    opened = skeleton.count(b"[") + skeleton.count(b"{")
    if opened <= MAX_JSON_DEPTH:
        return opened  # (a small body: no deeper than its count of brackets, which is within the limit)
    skeleton = QUOTED.sub(b"", skeleton)
    return int(np.cumsum(BRACKET_STEPS[np.frombuffer(skeleton, np.uint8)], dtype=np.int64).max(initial=0))


def parse_json(text: bytes, what: str, exact: bool = False):
    """A request's JSON text -> its value, no deeper than MAX_JSON_DEPTH (`loads`: exact)."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ClientError(400, f"Expected {what} nested at most {MAX_JSON_DEPTH} levels deep. Received: {depth:,} "
                               f"levels.")
    try:
        return loads(text, exact)
    except UnicodeDecodeError as err:
        raise ClientError(400, f"Expected {what} in UTF-8, JSON's encoding. Received: bytes that are not UTF-8 "
                               f"({str(err)[:200]}).") from None
    except (ValueError, RecursionError) as err:
        raise ClientError(400, f"Expected {what}. Received: text that is not JSON ({str(err)[:200]}).") from None


try:  # serve's extra installs it, and a package's requirements
    from orjson import loads as fast_loads
except ImportError:
    fast_loads = None


def loads(text: bytes, exact: bool = False):
    """A JSON text's value: read by orjson (an image sent as nested lists, most of a small model's request: 5x the
    json module for 28 x 28 pixels, 1.5x for 32 x 32 x 3), or by the json module where orjson refuses the text (NaN,
    infinity, text that is not JSON: the json module's reading and words). exact: by the json module alone, which
    keeps a whole number past 64 bits whole where orjson makes it a float (the web UI's settings, whose messages
    say the number received). UTF-8 alone (RFC 8259), with or without a byte-order mark: the json module given bytes
    would read UTF-16 and UTF-32 too, whose escaped quotes json_depth's skeleton does not see (a 900-deep body
    passed as 1 deep)."""
    if fast_loads is not None and not exact:
        try:
            return fast_loads(text)
        except ValueError:
            pass
    return json.loads(text.decode("utf-8-sig") if isinstance(text, (bytes, bytearray)) else text)


async def read_form(request, limits: Limits):
    """A multipart form, its parser's refusals (too many files or fields, no boundary) said as the server's."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    try:
        return await request.form(max_files=limits.max_items, max_fields=MAX_FORM_FIELDS)
    except (HTTPException, MultiPartException) as err:
        detail = getattr(err, "detail", None) or getattr(err, "message", str(err))
        raise ClientError(400, f"Expected a multipart/form-data body with at most {limits.max_items} files and "
                               f"{MAX_FORM_FIELDS} fields. Received: {detail}") from None


def from_json(value):
    """JSON values -> what a face decodes: {"base64": ...} -> bytes; nested lists of numbers -> a numpy array; lists
    of anything else item by item; text stays text (and is never read as a path: decode_inputs(trusted=False))."""
    if isinstance(value, dict):
        if set(value) == {"base64"} and isinstance(value["base64"], str):
            try:
                return base64.b64decode(value["base64"], validate=True)
            except ValueError:
                raise ClientError(400, "Expected {\"base64\": the file's bytes in base64}. Received: text that is not "
                                       "base64.") from None
        raise ClientError(400, f"Expected an input as text, a list of numbers or {{\"base64\": ...}}. Received: an "
                               f"object with keys {sorted(value)[:5]}.")
    if isinstance(value, list) and value and is_numeric(value):
        try:
            array = np.asarray(value)  # numpy reads the nesting and the number type in one pass
        except (ValueError, TypeError, OverflowError):
            array = None
        if array is None or array.dtype.kind not in "iuf":
            raise ClientError(400, "Expected a rectangular array of numbers (every row the same length). Received: "
                                   "rows of different lengths, or numbers mixed with other values.")
        return array
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def is_numeric(value) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, (int, float)) and not isinstance(value, bool)
