"""A small client for `deepworks serve`, with the calls of `Trained`, on the standard library alone.

    import deepworks as dw
    client = dw.Client("http://127.0.0.1:8000", token="...")
    client.models()                                     # every served model with its card
    client.predict("photos-resnet", ["cat.jpg", pil_image, array], top_k=2)
    client.generate("notes-gru", "Dear ", length=100)   # the text; stream(...) yields characters as they come
    client.translate("dates-gru", ["3 march 1998"])
    client.sample("faces-dcgan", n=4, seed=1)           # uint8 images (N, C, H, W)

A server's refusal raises ServerError with its status and its message ("Expected ... Received ..."); no server at
the URL (refused, reset, unknown host) raises ServerUnreachable, which says so and is both a DeepworksError and a
ConnectionError.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from .errors import DeepworksError


class ServerError(DeepworksError):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class ServerUnreachable(DeepworksError, ConnectionError):
    """No deepworks server answered at the client's URL: nothing listens there (connection refused), the connection
    broke, or the host is unknown. A ConnectionError too, so `except OSError` catches it as it caught urllib's."""


def unreachable(url: str, err: Exception) -> ServerUnreachable:
    reason = getattr(err, "reason", err)  # URLError wraps the socket's error
    if isinstance(reason, ConnectionRefusedError):
        received = "connection refused"
    elif isinstance(reason, ConnectionError):
        received = f"the connection broke ({type(reason).__name__})"
    else:
        received = str(reason) or type(reason).__name__
    return ServerUnreachable(f"Expected a deepworks server at {url} (is `deepworks serve` running?). "
                             f"Received: {received}.")


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 60.0):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    # --- the calls of Trained ------------------------------------------------------------------
    def predict(self, model: str, images, top_k: int | None = None) -> list[dict]:
        """Image files (read here and sent as bytes), bytes, PIL images or arrays -> the top classes of each."""
        return self.use(model, "predict", [self.image_json(i) for i in as_list(images)], top_k=top_k)

    def detect(self, model: str, images, threshold: float | None = None, max_boxes: int | None = None,
               class_iou: float | None = None) -> list[dict]:
        """Image files, bytes, PIL images or arrays -> each image's boxes (class, score, x1, y1, x2, y2 in its own
        pixels); threshold None: the run's own."""
        return self.use(model, "detect", [self.image_json(i) for i in as_list(images)], threshold=threshold,
                        max_boxes=max_boxes, class_iou=class_iou)

    def segment(self, model: str, images, rle: bool = False) -> list[dict]:
        """Image files, bytes, PIL images or arrays -> each image's classes with their shares, and its mask: 'mask', a
        uint8 array of class indices at the image's own size (decoded here from the PNG the server sends), or with
        rle=True 'masks_rle', COCO's RLE of each class."""
        from PIL import Image

        answers = self.use(model, "segment", [self.image_json(i) for i in as_list(images)], rle=rle)
        for a in answers:
            if "mask_png_base64" in a:
                a["mask"] = np.asarray(Image.open(io.BytesIO(base64.b64decode(a["mask_png_base64"]))))
        return answers

    def restore(self, model: str, images) -> list[dict]:
        """Image files, bytes, PIL images or arrays -> each restored photo: 'image', a uint8 array (H, W, 3 or 4)
        decoded here from the PNG the server sends, with its width and height."""
        return self.pictures(model, "restore", images)

    def stylize(self, model: str, images) -> list[dict]:
        """Image files, bytes, PIL images or arrays -> each photo painted in the run's style, answered as `restore`
        answers."""
        return self.pictures(model, "stylize", images)

    def pictures(self, model: str, verb: str, images) -> list[dict]:
        from PIL import Image

        answers = self.use(model, verb, [self.image_json(i) for i in as_list(images)])
        for a in answers:
            a["image"] = np.asarray(Image.open(io.BytesIO(base64.b64decode(a["image_png_base64"]))))
        return answers

    def generate(self, model: str, prime: str = "", length: int = 500, temperature: float = 0.8,
                 top_k: int | None = None, seed: int | None = None) -> str:
        return self.use(model, "generate", prime, length=length, temperature=temperature, top_k=top_k,
                        seed=seed)[0]["text"]

    def stream(self, model: str, prime: str = "", length: int = 500, temperature: float = 0.8,
               top_k: int | None = None, seed: int | None = None):
        """The characters as the server writes them (Server-Sent Events)."""
        body = {"inputs": prime, "length": length, "temperature": temperature, "top_k": top_k, "seed": seed,
                "stream": True}
        with self.open(f"/v1/models/{model}/generate", body) as response:
            event = None
            for raw in response:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    part = json.loads(line[5:])
                    if event == "error":
                        raise ServerError(400, part.get("error", ""))
                    if event == "end":
                        return
                    if "token" in part:
                        yield part["token"]
                    event = None

    def translate(self, model: str, sentences, beam: int = 1, length_penalty: float = 0.6,
                  attention: bool = False) -> list[dict]:
        return self.use(model, "translate", sentences, beam=beam, length_penalty=length_penalty, attention=attention)

    def transcribe(self, model: str, recordings, beam: int | None = None, lm_weight: float | None = None,
                   words: bool | None = None) -> list[dict]:
        """Audio files (read here and sent as bytes), their bytes, or arrays of samples at the run's rate -> each
        recording's transcript and its words' times."""
        sent = [{"base64": base64.b64encode(Path(r).read_bytes() if isinstance(r, (str, Path)) else bytes(r))
                 .decode("ascii")} if isinstance(r, (str, Path, bytes, bytearray)) else np.asarray(r).tolist()
                for r in as_list(recordings)]
        return self.use(model, "transcribe", sent, beam=beam, lm_weight=lm_weight, words=words)

    def sample(self, model: str, n: int = 16, seed: int | None = None, label: str | int | None = None) -> np.ndarray:
        from PIL import Image

        outputs = self.use(model, "sample", None, n=n, seed=seed, label=None if label is None else str(label))
        images = [np.asarray(Image.open(io.BytesIO(base64.b64decode(o["image_png_base64"])))) for o in outputs]
        return np.stack([a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in images])

    # --- any model -----------------------------------------------------------------------------
    def models(self) -> list[dict]:
        return self.request("GET", "/v1/models")["models"]

    def card(self, model: str) -> dict:
        return self.request("GET", f"/v1/models/{model}")

    def use(self, model: str, verb: str, inputs=None, **options) -> list[dict]:
        """POST /v1/models/MODEL/VERB with JSON; the answers."""
        body = {"inputs": to_json(inputs), **{k: v for k, v in options.items() if v is not None}}
        return self.request("POST", f"/v1/models/{model}/{verb}", body)["outputs"]

    def ready(self) -> bool:
        try:
            self.request("GET", "/v2/health/ready")
            return True
        except (ServerError, OSError):
            return False

    # --- plumbing ------------------------------------------------------------------------------
    @staticmethod
    def image_json(image):
        """One image as a request carries it: a file's or PIL image's bytes as {'base64': ...}, an array as nested
        lists."""
        from PIL import Image

        if isinstance(image, (str, Path)):
            return {"base64": base64.b64encode(Path(image).read_bytes()).decode("ascii")}
        if isinstance(image, (bytes, bytearray)):
            return {"base64": base64.b64encode(bytes(image)).decode("ascii")}
        if isinstance(image, Image.Image):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            return {"base64": base64.b64encode(buffer.getvalue()).decode("ascii")}
        return np.asarray(image).tolist()

    def open(self, path: str, body: dict | None = None, method: str = "POST"):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error", err.reason)
            except ValueError:
                message = err.reason
            raise ServerError(err.code, message) from None
        except (urllib.error.URLError, ConnectionError) as err:  # nothing listens at the URL, or the connection broke
            raise unreachable(self.url, err) from None

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        with self.open(path, body, method) as response:
            return json.loads(response.read())


def as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def to_json(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value
