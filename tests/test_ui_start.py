"""The Start page in a real browser, as a newcomer meets it at /: classes named, samples added by upload (files, zips,
folders) and by the webcam or the microphone (Chromium's fake devices: a moving green pattern, and a WAV file played
in a loop), trained with the task's defaults bar the epochs, watched, and tried live. The server and the browser are
test_ui.py's."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from conftest import draw
from test_ui import CHROMIUM, FLAGS, TRAIN_S, browser, logged_in, server, shot  # noqa: F401 (fixtures)

from playwright.sync_api import expect  # noqa: E402 (test_ui skips this module where there is no browser)

MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TONE_HZ = 300


@pytest.fixture(scope="module")
def media_browser(browser, tmp_path_factory):  # noqa: F811
    """Chromium with a fake webcam and a fake microphone that plays a 300 Hz tone (on 0.3 s, off 0.2 s), both allowed
    without asking."""
    import scipy.io.wavfile

    t = np.arange(48000) / 48000
    tone = 0.5 * np.sin(2 * np.pi * TONE_HZ * t) * ((t % 0.5) < 0.3)
    mic = tmp_path_factory.mktemp("mic") / "mic.wav"
    scipy.io.wavfile.write(mic, 48000, (tone * 32767).astype(np.int16))
    b = browser.browser_type.launch(executable_path=str(CHROMIUM),
                                    args=FLAGS + MEDIA + [f"--use-file-for-fake-audio-capture={mic}"])
    yield b
    b.close()


@pytest.fixture
def start(media_browser, server):  # noqa: F811
    """A fresh page at the login link, which opens /: the Start page. Requests to any other host fail the test."""
    with logged_in(media_browser, server, permissions=["camera", "microphone"]) as page:
        yield page


def squares(folder: Path, n: int = 10) -> list[str]:
    """n drawn white squares on dark grey (conftest.draw), unlike the fake webcam's green pattern."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(str(folder / f"square-{i}.png"))
        draw("square", 40, rng, "RGB").save(paths[-1])
    return paths


def count_of(page, index: int) -> int:
    return int(page.get_by_test_id(f"class-{index}-count").inner_text().split()[0])


def fast_settings(page, epochs: int) -> None:
    """Advanced: a few epochs, no audit and no baseline (seconds on two cores)."""
    page.locator("details.advanced summary").click()
    page.get_by_test_id("start-epochs").fill(str(epochs))
    page.get_by_test_id("start-audit").uncheck()
    page.get_by_test_id("start-baseline").uncheck()


def trained(page) -> str:
    """Wait for the job to finish (saying why when it did not); the run's name."""
    job = page.get_by_test_id("start-job")
    expect(job).to_have_attribute("data-state", re.compile("finished|failed|stopped"), timeout=TRAIN_S)
    if job.get_attribute("data-state") != "finished":
        pytest.fail(f"the job ended {job.get_attribute('data-state')}: {job.inner_text()}")
    jobs = page.evaluate("fetch('/api/jobs').then(r => r.json())")["jobs"]
    return Path(jobs[0]["run"]).name


def test_a_newcomer_names_classes_adds_uploads_and_webcam_frames_trains_and_tries_it_live(start, server,  # noqa: F811
                                                                                         tmp_path):
    page = start
    expect(page.get_by_test_id("nav-start")).to_have_class("active")  # the first page, at /
    assert urlparse(page.url).path == "/"
    expect(page.get_by_test_id("start-train")).to_be_disabled()  # nothing to train yet, and it says what to do
    expect(page.get_by_test_id("start-needs")).to_contain_text("Add at least 7 pictures to each class")
    page.get_by_test_id("class-0-name").fill("me")
    page.get_by_test_id("class-0-name").press("Enter")
    page.get_by_test_id("class-1-name").fill("squares")
    page.get_by_test_id("class-1-files").set_input_files(squares(tmp_path))  # several files at once
    expect(page.get_by_test_id("class-1-count")).to_have_text("10 pictures")
    expect(page.get_by_test_id("class-1-gallery").locator("img")).to_have_count(10)
    page.wait_for_function("""() => {  // the thumbnails load (from the server, behind the token)
        const img = document.querySelector('[data-testid=class-1-gallery] img');
        return img && img.complete && img.naturalWidth > 0; }""")

    page.get_by_test_id("class-0-webcam").click()
    hold = page.get_by_test_id("class-0-hold")
    expect(hold).to_be_enabled()  # the camera's first frame is there
    hold.hover()
    page.mouse.down()  # held: a frame every 150 ms
    expect(hold).to_have_text(re.compile(r"Recording… ([89]|\d\d)"))
    page.mouse.up()
    expect(page.get_by_test_id("class-0-count")).not_to_have_text("0 pictures")
    held = count_of(page, 0)
    page.get_by_test_id("class-0-snap").click()
    expect(page.get_by_test_id("class-0-count")).to_have_text(f"{held + 1} pictures")
    hold.focus()  # the keyboard holds it too: Space down records, Space up sends
    page.keyboard.down(" ")
    expect(hold).to_have_text(re.compile(r"Recording… [1-9]"))
    page.keyboard.up(" ")
    expect(page.get_by_test_id("class-0-count")).not_to_have_text(f"{held + 1} pictures")
    held = count_of(page, 0) - 1
    expect(page.get_by_test_id("start-needs")).to_contain_text("Ready")
    folder = server["runs"] / ".ui" / "samples" / "my-pictures"
    assert len(list((folder / "me").glob("*.png"))) == held + 1 and len(list((folder / "squares").glob("*"))) == 11
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=sample] img')]
        .every((img) => img.complete && img.naturalWidth > 0)""")  # every thumbnail drawn, the newest first
    shot(page, "start-samples")

    fast_settings(page, 3)
    page.get_by_test_id("start-train").click()
    expect(page.get_by_test_id("start-job")).to_be_visible()
    run = trained(page)
    expect(page.get_by_test_id("curves")).to_be_visible()
    import yaml

    config = yaml.safe_load((server["runs"] / run / "config.yaml").read_text())
    assert config["data"]["source"] == str(folder)
    assert config["model"]["pretrained"] is True  # photos start from a network that knows photos (weights installed)
    verdict = page.get_by_test_id("start-accuracy")  # the score, out of how many, and the report
    expect(verdict).to_contain_text(re.compile(r"Right on [\d.]+ % of the (\d+) pictures it never saw in training "
                                               r"\(\d+ of \1\)"))
    expect(page.get_by_test_id("start-advice")).to_contain_text("kept back to test it, so this figure is rough")
    expect(verdict.get_by_test_id("start-report")).to_have_attribute("href", f"/api/runs/{run}/report/index.html")

    page.get_by_test_id("live-camera").click()  # the webcam, a frame every half second, class bars
    bars = page.get_by_test_id("live-bar")
    expect(bars).to_have_count(2)
    expect(bars.first).to_contain_text("%", timeout=30_000)
    assert [b.split("\n")[0] for b in bars.all_inner_texts()] == ["me", "squares"]
    shot(page, "start-live")
    page.get_by_test_id("live-file").set_input_files(squares(tmp_path, 1))  # a picture of one's own: shown, judged
    expect(page.get_by_test_id("live-picked")).to_be_visible()
    expect(page.get_by_test_id("download-onnx")).to_have_attribute("href", f"/api/runs/{run}/export?format=onnx")
    page.get_by_test_id("to-export").click()  # then the Export page of this run
    expect(page).to_have_url(re.compile(f"/runs/{run}/export$"))
    expect(page.get_by_test_id("export-run")).to_have_value(run)
    page.go_back()  # Back: the Start page, its samples and its trained run still there
    expect(page.get_by_test_id("class-1-count")).to_have_text("10 pictures")
    expect(page.get_by_test_id("live-camera")).to_be_visible()
    page.reload()  # and a reload: the classes in their order, the job, the run to try
    expect(page.get_by_test_id("class-0-name")).to_have_value("me")
    expect(page.get_by_test_id("start-job")).to_have_attribute("data-state", "finished")
    expect(page.get_by_test_id("live-camera")).to_be_visible()
    page.get_by_test_id("start-expert").click()  # the expert path, one click away, on the same samples
    expect(page).to_have_url(re.compile("/train$"))
    expect(page.locator("main")).to_contain_text(str(folder))


def test_bad_names_and_files_are_said_in_place_and_drops_zips_folders_and_deletes_work(start, server,  # noqa: F811
                                                                                      tmp_path):
    page = start
    page.get_by_test_id("start-project").fill("checks")
    page.get_by_test_id("start-project").press("Enter")
    page.get_by_test_id("class-0-name").fill("..")
    page.get_by_test_id("class-0-name").press("Enter")  # a draft is renamed in the browser: the server says no later
    (tmp_path / "notes.txt").write_text("not a picture")
    page.get_by_test_id("class-0-files").set_input_files(str(tmp_path / "notes.txt"))
    expect(page.get_by_test_id("class-0-error")).to_contain_text("Expected a class name")
    page.get_by_test_id("class-0-name").fill("fine")
    page.get_by_test_id("class-0-name").press("Enter")
    page.get_by_test_id("class-0-files").set_input_files(str(tmp_path / "notes.txt"))
    expect(page.get_by_test_id("class-0-error")).to_contain_text("'notes.txt', which is not an image")
    expect(page.get_by_test_id("class-0-count")).to_have_text("0 pictures")
    page.get_by_test_id("class-1-name").fill("fine")
    page.get_by_test_id("class-1-name").press("Enter")
    expect(page.get_by_test_id("class-1-error")).to_contain_text("Another class is called fine")
    expect(page.get_by_test_id("class-1-name")).to_have_value("Class 2")

    dropped = page.evaluate_handle("""async () => {  // a picture dragged from the desktop onto the class
        const c = document.createElement('canvas');
        c.width = c.height = 24;
        c.getContext('2d').fillRect(4, 4, 12, 12);
        const blob = await new Promise((done) => c.toBlob(done, 'image/png'));
        const t = new DataTransfer();
        t.items.add(new File([blob], 'dropped.png', { type: 'image/png' }));
        return t; }""")
    page.get_by_test_id("class-0").dispatch_event("drop", {"dataTransfer": dropped})
    expect(page.get_by_test_id("class-0-count")).to_have_text("1 picture")
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as z:  # and a zip of pictures
        for i, path in enumerate(squares(tmp_path, 3)):
            z.write(path, f"more/{i}.png")
    page.get_by_test_id("class-0-files").set_input_files(str(tmp_path / "more.zip"))
    expect(page.get_by_test_id("class-0-count")).to_have_text("4 pictures")
    expect(page.get_by_test_id("class-0-gallery").get_by_role("img")).to_have_count(4)
    folder = tmp_path / "holiday"  # and a folder: its pictures, and a word on the files left out
    (folder / "day 2").mkdir(parents=True)
    for i, path in enumerate(squares(tmp_path, 2)):
        Path(path).rename(folder / ("day 2" if i else "") / f"{i}.png")
    (folder / "notes.txt").write_text("not a picture")
    (folder / ".DS_Store").write_bytes(b"\0" * 8)
    page.get_by_test_id("class-0-folder-files").set_input_files(str(folder))
    expect(page.get_by_test_id("class-0-count")).to_have_text("6 pictures")
    expect(page.get_by_test_id("class-0-note")).to_have_text("2 files of the folder left out: not pictures.")
    page.get_by_test_id("class-0-gallery").get_by_role("button", name="Delete picture 1 of fine").click()
    expect(page.get_by_test_id("class-0-count")).to_have_text("5 pictures")


def test_a_sound_recorded_from_the_microphone_lands_in_its_class_then_trains_and_is_tried(start, server,  # noqa: F811
                                                                                         tmp_path):
    import scipy.io.wavfile

    from deepworks.data.audio import make_tones

    page = start
    page.get_by_test_id("start-kind-audio").click()  # the task whose card takes sounds: its own project
    expect(page.get_by_test_id("start-project")).to_have_value("my-sounds")
    expect(page.get_by_test_id("start-needs")).to_contain_text("sound clips")
    page.get_by_test_id("class-0-record").click()
    expect(page.get_by_test_id("class-0-busy")).to_contain_text("Recording 1 s")
    expect(page.get_by_test_id("class-0-count")).to_have_text("1 sound clip", timeout=10_000)
    play = page.get_by_test_id("class-0-gallery").get_by_role("button", name="Play sound clip 1 of Class 1")
    expect(play).to_be_visible()
    rate, samples = scipy.io.wavfile.read(server["runs"] / ".ui" / "samples" / "my-sounds" / "Class 1" / "1.wav")
    assert len(samples) >= rate  # the second it said it would record, at the tone's pitch
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    assert np.argmax(spectrum) * rate / len(samples) == pytest.approx(TONE_HZ, abs=5)
    shot(page, "start-microphone")

    clips = make_tones(7, 5)  # low tones beside the recording, rising chirps in the other class
    for label, index, n in ((0, 0, 6), (2, 1, 7)):
        paths = [tmp_path / f"{label}-{i}.wav" for i in np.flatnonzero(clips.labels == label)[:n]]
        for path, i in zip(paths, np.flatnonzero(clips.labels == label)):
            scipy.io.wavfile.write(path, clips.rate, clips.samples[i])
        page.get_by_test_id(f"class-{index}-files").set_input_files([str(p) for p in paths])
    expect(page.get_by_test_id("class-1-count")).to_have_text("7 sound clips")
    expect(page.get_by_test_id("class-0-count")).to_have_text("7 sound clips")
    fast_settings(page, 2)
    page.get_by_test_id("start-train").click()
    trained(page)
    page.get_by_test_id("live-record").click()  # the microphone, then the bars
    expect(page.get_by_test_id("live-bar").first).to_contain_text("%", timeout=30_000)
    expect(page.get_by_test_id("live-clip")).to_be_visible()
