"""Face recognition in the browser (test_ui.py's server): a person enrolled from the API is boxed and named on an
uploaded photo and on the webcam's picture (Chromium's fake camera playing a video of that photo)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_faces import real_weights  # noqa: F401 (fixture: MTCNN's weights)
from test_task_contract import quick_fid, runs, safe  # noqa: F401 (fixtures: the tiny runs, made once per test run)
from test_ui import CHROMIUM, FLAGS, browser, logged_in, server  # noqa: F401 (fixtures: the browser and the server)

import deepworks as dw

from playwright.sync_api import expect  # noqa: E402 (test_ui skips this module where there is no browser)


def webcam_video(photo: np.ndarray, path: Path, frames: int = 10) -> Path:
    """`photo` centred on grey in a 640 x 480 Y4M video (what Chromium's fake camera plays): YCbCr 4:2:0, full
    range."""
    canvas = np.full((480, 640, 3), 128, np.uint8)
    side = 440
    face = np.asarray(Image.fromarray(photo).resize((side, side), Image.BILINEAR))
    canvas[20:20 + side, 100:100 + side] = face
    ycbcr = np.asarray(Image.fromarray(canvas).convert("YCbCr"))
    y = ycbcr[..., 0]
    cb, cr = (np.asarray(Image.fromarray(ycbcr[..., k]).resize((320, 240), Image.BILINEAR)) for k in (1, 2))
    with path.open("wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            f.write(b"FRAME\n" + y.tobytes() + cb.tobytes() + cr.tobytes())
    return path


@pytest.fixture(scope="module")
def faces_run(server, runs, real_weights, tmp_path_factory):  # noqa: F811
    """The tiny face run in the UI's runs folder, with the astronaut enrolled from her photo; the webcam plays it."""
    from skimage.data import astronaut

    folder = tmp_path_factory.mktemp("faces-ui")
    run = Path(server["runs"]) / "faces-tried"
    shutil.copytree(runs["faces"], run, ignore=shutil.ignore_patterns("export", "gallery.safetensors"))
    video = webcam_video(astronaut(), folder / "webcam.y4m")
    Image.fromarray(astronaut()).save(folder / "astronaut.png")
    dw.load(run).enroll("Eileen", [str(folder / "astronaut.png")])
    return {"run": run.name, "photo": folder / "astronaut.png", "video": video}


def test_try_names_an_enrolled_person_in_a_photo_and_on_the_webcam(browser, server, faces_run):  # noqa: F811
    with logged_in(browser, server) as page:
        page.goto(f"{server['url']}/runs/{faces_run['run']}/try")
        page.get_by_test_id("faces-file").set_input_files(str(faces_run["photo"]))
        expect(page.get_by_test_id("faces-box")).to_have_count(1)
        expect(page.get_by_test_id("faces-box")).to_contain_text("Eileen")
        expect(page.get_by_test_id("faces-count")).to_contain_text("1 face found: Eileen")
    camera = browser.browser_type.launch(executable_path=str(CHROMIUM), args=FLAGS + [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={faces_run['video']}"])
    try:
        with logged_in(camera, server, permissions=["camera"]) as page:
            page.goto(f"{server['url']}/runs/{faces_run['run']}/try")
            page.get_by_test_id("faces-camera").click()
            expect(page.get_by_test_id("faces-video")).to_be_visible()
            expect(page.get_by_test_id("faces-box").first).to_contain_text("Eileen", timeout=30_000)
            page.get_by_test_id("faces-camera").click()  # stopped: the photo view again
            expect(page.get_by_test_id("faces-video")).to_have_count(0)
    finally:
        camera.close()
