"""The Open Inference Protocol (V2) REST routes, so that KServe, Triton and MLServer clients work unchanged.

Spec: kserve/open-inference-protocol, specification/protocol/inference_rest.md. A request's tensors go to the task's
`decode_inputs` (one tensor as the inputs, several as {name: tensor}); its `parameters` are the use's options; the
answers come back as the task's `v2_outputs` tensors. Triton's binary tensor extension (the header
Inference-Header-Content-Length, tensors' bytes after the JSON) is read, since tritonclient sends it by default;
answers are JSON, which every client reads.
"""

from __future__ import annotations

import math
import re
import struct

import numpy as np
from fastapi import Request  # at module level: the routes' annotations are read from here

from .requests import ClientError, check_work, checked_options, compute, decode, find
from .reading import parse_json

DATATYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
             "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
             "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_}
MAX_VALUES = 2 ** 28  # in one input, and so along any one of its dimensions (numpy refuses [0, 2**63])
PROTOCOL_PARAMETERS = ("binary_data_output", "binary_data", "binary_data_size", "sequence_id", "sequence_start",
                       "sequence_end", "priority", "timeout")


def datatype_of(array: np.ndarray) -> str:
    for name, dtype in DATATYPES.items():
        if array.dtype == dtype:
            return name
    raise ValueError(f"no V2 datatype for {array.dtype}")


def add_v2_routes(app, by_name: dict, batchers: dict, limits) -> None:
    from fastapi.responses import JSONResponse

    @app.get("/v2")
    async def server_metadata():
        return {"name": "deepworks", "version": app.version, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        ok = all(s.ready for s in by_name.values())
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str = "1"):
        s = find(by_name, name)
        return {"name": name, "versions": ["1"], "platform": f"deepworks_{s.runtime}",
                "inputs": s.face.v2_inputs(), "outputs": s.v2_outputs}

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str = "1"):
        s = find(by_name, name)
        return JSONResponse({"name": name, "ready": s.ready}, status_code=200 if s.ready else 503)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str = "1"):
        s = find(by_name, name)
        body = await request.body()
        header, tensors = read_infer_request(body, request.headers.get("inference-header-content-length"))
        parameters = {k: v for k, v in mapping(header.get("parameters"), "parameters").items()
                      if k not in PROTOCOL_PARAMETERS}
        options = checked_options(s, parameters, limits)
        inputs = next(iter(tensors.values())) if len(tensors) == 1 else tensors
        items = await decode(s, inputs, options, limits, batchers.get(name))
        check_work(items, options, limits)
        results = await compute(s, items, options, limits, batchers.get(name), request)
        outputs = s.face.v2_outputs(results)
        requested = header.get("outputs") or []
        if not isinstance(requested, list):
            raise ClientError(400, f"Expected 'outputs' to be a list of {{\"name\": ...}}. Received: a "
                                   f"{type(requested).__name__}.")
        wanted = [mapping(o, "each output").get("name") for o in requested]
        unknown = [w for w in wanted if w not in outputs]
        if unknown:
            raise ClientError(400, f"Model '{name}' has no output '{unknown[0]}'. Expected one of: {', '.join(outputs)}.")
        return {"model_name": name, "model_version": "1", **({"id": header["id"]} if "id" in header else {}),
                "outputs": [tensor_json(k, v) for k, v in outputs.items() if not wanted or k in wanted]}


def mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ClientError(400, f"Expected {what} to be an object. Received: a {type(value).__name__}.")
    return value


def as_sent(header: str) -> str:
    """A header's text as the client wrote it: HTTP hands its bytes over as Latin-1, so UTF-8's '²' arrives 'Â²'."""
    try:
        return header.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return header


def read_infer_request(body: bytes, header_length: str | None) -> tuple[dict, dict]:
    """(the JSON header, {input name: numpy array, or a list of str for BYTES})."""
    if header_length is not None:
        if not re.fullmatch(r"[0-9]{1,15}", header_length) or int(header_length) > len(body):  # ('²'.isdigit())
            raise ClientError(400, f"Expected Inference-Header-Content-Length to be the JSON header's size in bytes "
                                   f"(at most {len(body)}). Received: {as_sent(header_length)!r}.")
        split = int(header_length)
        text, binary = body[:split], body[split:]
    else:
        text, binary = body, b""
    header = parse_json(text, "a JSON inference request")
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise ClientError(400, "Expected {\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}, ...]}. Received: "
                               "no list of inputs.")
    tensors, offset = {}, 0
    for spec in header["inputs"]:
        array, offset = read_tensor(spec, binary, offset)
        if spec["name"] in tensors:  # a dict would keep the last one without a word
            raise ClientError(400, f"Expected each input once. Received: two inputs named '{spec['name']}'.")
        tensors[spec["name"]] = array
    return header, tensors


def read_tensor(spec, binary: bytes, offset: int):
    if not isinstance(spec, dict) or not {"name", "shape", "datatype"} <= set(spec):
        raise ClientError(400, "Expected each input to have name, shape and datatype. Received: "
                               f"{sorted(spec) if isinstance(spec, dict) else type(spec).__name__}.")
    name, shape, kind = spec["name"], spec["shape"], spec["datatype"]
    if not isinstance(name, str) or not isinstance(kind, str):
        raise ClientError(400, f"Expected each input's name and datatype as text. Received: {name!r}, {kind!r}.")
    if kind not in DATATYPES:
        raise ClientError(400, f"Input '{name}': expected a datatype among {', '.join(DATATYPES)}. Received: {kind!r}.")
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d <= MAX_VALUES for d in shape):
        raise ClientError(400, f"Input '{name}': expected a shape of whole numbers from 0 to {MAX_VALUES:,}. "
                               f"Received: {shape!r}.")
    count = math.prod(shape)  # Python's ints: np.prod wraps [2**32, 2**32] round to 0
    if count > MAX_VALUES:
        raise ClientError(413, f"Input '{name}': shape {shape} holds {count:,} values, more than one request may send.")
    if math.prod(d for d in shape if d) > MAX_VALUES:  # empty, yet numpy cannot even shape it ([0, 2**17, 2**21, ...])
        raise ClientError(400, f"Input '{name}': shape {shape} is empty, and its other axes hold more than "
                               f"{MAX_VALUES:,} values together. Expected a shape one request may send.")
    size = mapping(spec.get("parameters"), f"input '{name}' parameters").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0:
            raise ClientError(400, f"Input '{name}': expected binary_data_size in bytes. Received: {size!r}.")
        blob = binary[offset:offset + int(size)]
        if len(blob) != int(size):
            raise ClientError(400, f"Input '{name}': expected {size} bytes of binary data. Received: {len(blob)}.")
        offset += int(size)
        values = unpack_bytes(blob, name) if kind == "BYTES" else binary_values(blob, kind, name)
    else:
        if "data" not in spec:
            raise ClientError(400, f"Input '{name}': expected 'data' (or binary data). Received: neither.")
        data = spec["data"]
        try:
            if kind == "BYTES":
                values = np.array([str(v) for v in np.asarray(data, dtype=object).reshape(-1)], dtype=object)
            else:
                values = np.asarray(data, dtype=DATATYPES[kind]).reshape(-1)
        except (ValueError, TypeError, OverflowError):
            raise ClientError(400, f"Input '{name}': expected {kind} values in a flat or nested list. Received: data "
                                   f"that are not.") from None
    if values.size != count:
        raise ClientError(400, f"Input '{name}': shape {shape} needs {count} values. Received: {values.size}.")
    values = values.reshape(shape)
    return (list(values.reshape(-1)) if kind == "BYTES" else values), offset


def binary_values(blob: bytes, kind: str, name: str) -> np.ndarray:
    """A tensor's raw little-endian bytes as its datatype's values."""
    width = np.dtype(DATATYPES[kind]).itemsize
    if len(blob) % width:
        raise ClientError(400, f"Input '{name}': expected {kind} binary data in whole {width}-byte values. Received: "
                               f"{len(blob):,} bytes.")
    return np.frombuffer(blob, dtype=DATATYPES[kind])


def unpack_bytes(blob: bytes, name: str) -> np.ndarray:
    """Triton's BYTES layout: each element as a 4-byte little-endian length and then its bytes."""
    out, i = [], 0
    while i < len(blob):
        if i + 4 > len(blob):
            raise ClientError(400, f"Input '{name}': expected BYTES elements as length + bytes. Received: a truncated one.")
        (n,) = struct.unpack_from("<I", blob, i)
        out.append(blob[i + 4:i + 4 + n].decode("utf-8", errors="replace"))
        i += 4 + n
    return np.array(out, dtype=object)


def tensor_json(name: str, array: np.ndarray) -> dict:
    kind = datatype_of(array)
    data = ([v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
            if kind == "BYTES" else array.reshape(-1).tolist())
    return {"name": name, "datatype": kind, "shape": list(array.shape), "data": data}
