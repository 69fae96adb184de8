"""The other tasks' views of the web UI in a real browser (test_ui.py's server and browser): text streamed as it is
written, a translation's attention, a walk through a GAN's noise, a detector's boxes with their score slider, the
sound of an uploaded or recorded clip, and a text model designed from cards."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ui import CHROMIUM, FLAGS, browser, page, server, shot  # noqa: F401 (fixtures: the browser, page and server)

from playwright.sync_api import expect  # noqa: E402 (test_ui skips this module where there is no browser)


@pytest.fixture(scope="module")
def other_runs(server, tmp_path_factory, shapes_detector, tones_run, use_runs):
    """A text, a translation, a GAN, a detection, an audio and a speech recognition run in the server's runs folder:
    the translation of reversed letters and the recogniser of tone words are trained here (seconds; not the
    contract harness's tiny recogniser, whose fixture makes every task's tiny run); the others are trained once for
    the whole test run (conftest.py)."""
    import shutil

    import numpy as np

    import deepworks as dw

    folder = tmp_path_factory.mktemp("other-data")
    runs = str(server["runs"])
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(300):
        words = list(rng.choice(list("abcdef"), int(rng.integers(3, 6))))
        lines.append(" ".join(words) + "\t" + " ".join(reversed(words)))
    (folder / "reverse.tsv").write_text("\n".join(lines) + "\n")
    dw.train(task="translate", data=str(folder / "reverse.tsv"), name="reverse", width=32, embed_size=16,
             batch_size=32, min_freq=1, epochs=1, runs_dir=runs, progress=False)
    dw.train(task="asr", data="tones:120", width=32, depth=1, epochs=2, batch_size=16, name="talk", runs_dir=runs,
             progress=False)
    shared = {"fox": use_runs["txt"], "digits-gan": use_runs["gan"], "shapes": shapes_detector.run.path,
              "tones": tones_run.run.path}
    for name, path in shared.items():
        shutil.copytree(path, Path(runs) / name, ignore=shutil.ignore_patterns("export"))
    return runs


def test_try_streams_text_shows_a_translation_s_attention_and_walks_a_gan(page, server, other_runs):
    page.get_by_test_id("nav-try").click()
    page.get_by_test_id("try-run").select_option("fox")
    page.get_by_test_id("try-text").fill("the quick ")
    page.get_by_test_id("try-go").click()
    answer = page.get_by_test_id("try-answer")
    expect(answer).to_contain_text("the quick ")
    page.wait_for_function("document.querySelector('[data-testid=try-answer]').innerText.length > 200")

    page.get_by_test_id("try-run").select_option("reverse")
    page.get_by_test_id("try-text").fill("a b c")
    page.get_by_test_id("try-go").click()
    attention = page.get_by_test_id("attention")
    expect(attention.locator("thead th")).to_have_count(4)  # a corner, then the three source words
    assert attention.locator("tbody tr").count() >= 1

    page.get_by_test_id("try-run").select_option("digits-gan")
    page.get_by_test_id("try-go").click()
    expect(page.get_by_test_id("try-answer").locator("img")).to_have_count(8)
    page.get_by_test_id("walk-go").click()
    first = page.get_by_test_id("walk-image").get_attribute("src")
    page.get_by_test_id("walk-slider").fill("8")
    expect(page.get_by_test_id("walk-image")).not_to_have_attribute("src", first)


def test_the_designer_builds_a_text_model_from_embedding_and_recurrent_cards(page, server, tmp_path):
    text = tmp_path / "fox.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 40)
    page.get_by_test_id("task").select_option("text")
    page.get_by_test_id("data-path").fill(str(text))
    page.get_by_test_id("data-look").click()
    expect(page.get_by_test_id("data-excerpt")).to_contain_text("the lazy dog")
    page.get_by_test_id("nav-model").click()
    page.get_by_test_id("template-layers").check()
    expect(page.get_by_test_id("add-conv")).to_have_count(0)  # the text cards only
    for kind in ("embedding", "recurrent", "dense", "activation"):
        page.get_by_test_id(f"add-{kind}").click()
    page.get_by_test_id("card-2-kind").select_option("gru")
    expect(page.get_by_test_id("card-2-shape")).to_have_text("→ T×128 · 74,496 params")  # 3 x (128 x (64 + 128) + 256)
    expect(page.get_by_test_id("design-input")).to_contain_text("Input: T → 29 characters scored at every position")
    page.get_by_test_id("card-1-delete").click()  # no embedding: the recurrent card says what to put first
    expect(page.get_by_test_id("design-error")).to_contain_text("receives characters: put an embedding card before it")


def test_try_draws_the_boxes_a_detector_finds_on_a_photo_and_the_slider_filters_them(page, server, other_runs, tmp_path):
    from PIL import Image

    import deepworks as dw
    from deepworks.data.detection import make_shapes

    photo = tmp_path / "shapes.png"
    Image.fromarray(make_shapes(1, 11).images[0].transpose(1, 2, 0)).save(photo)
    expected = dw.load(f"{other_runs}/shapes").detect(str(photo))[0]["boxes"]  # at the run's calibrated threshold
    assert expected, "the detector found nothing to draw"
    page.get_by_test_id("nav-try").click()
    page.get_by_test_id("try-run").select_option("shapes")
    page.get_by_test_id("detect-file").set_input_files(str(photo))
    boxes = page.get_by_test_id("detect-box")
    expect(boxes).to_have_count(len(expected))  # the slider starts at the run's threshold, as detect does
    assert sorted(t.split()[0] for t in boxes.all_inner_texts()) == sorted(b["class"] for b in expected)
    shot(page, "try-detect")
    page.get_by_test_id("detect-threshold").fill("0.95")
    expect(boxes).to_have_count(sum(b["score"] >= 0.95 for b in expected))


def test_try_names_the_sound_of_an_uploaded_recording(page, server, other_runs, tmp_path):
    import scipy.io.wavfile

    from deepworks.data.audio import make_tones, resample

    clip = make_tones(1, 12).samples[0]  # a low tone
    scipy.io.wavfile.write(tmp_path / "low.wav", 16000, resample(clip, 8000, 16000))
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEnope")
    page.get_by_test_id("nav-try").click()
    page.get_by_test_id("try-run").select_option("tones")
    page.get_by_test_id("audio-file").set_input_files(str(tmp_path / "low.wav"))
    expect(page.get_by_test_id("try-predictions").locator("li").first).to_contain_text("low tone")
    expect(page.get_by_test_id("audio-player")).to_be_visible()
    page.get_by_test_id("audio-file").set_input_files(str(tmp_path / "broken.wav"))
    expect(page.get_by_test_id("audio-error")).to_contain_text("corrupt WAV header")


def test_try_writes_down_an_uploaded_recording_as_the_api_does(page, server, other_runs, tmp_path):
    import deepworks as dw
    from deepworks.data.audio import write_wav
    from deepworks.data.speech import make_tone_strings

    write_wav(tmp_path / "said.wav", make_tone_strings(1, 5).waves[0], 8000)
    expected = dw.load(Path(other_runs) / "talk")(str(tmp_path / "said.wav"))[0]
    page.get_by_test_id("nav-try").click()
    page.get_by_test_id("try-run").select_option("talk")
    page.get_by_test_id("audio-file").set_input_files(str(tmp_path / "said.wav"))
    transcript = page.get_by_test_id("try-transcript")
    expect(transcript).to_have_text(expected["transcript"].strip() or "(nothing heard)")
    expect(page.get_by_test_id("audio-player")).to_be_visible()
    assert transcript.locator("span").count() == len(expected["words"])


def test_the_data_page_shows_and_plays_a_few_clips_of_each_sound(page):
    page.get_by_test_id("task").select_option("audio")
    page.get_by_test_id("builtin-tones").click()
    sounds = page.get_by_test_id("data-sounds")
    expect(sounds.locator("tr")).to_have_count(5)
    expect(sounds.locator("tr").first).to_contain_text("low tone")
    expect(sounds.locator("tr").first.locator("audio")).to_have_count(6)
    assert sounds.locator("img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    duration = sounds.locator("audio").first.evaluate(
        "a => new Promise((done) => { a.onloadedmetadata = () => done(a.duration); a.load(); })")
    assert duration == pytest.approx(0.5, abs=0.01)  # the browser reads the clip's WAV
    shot(page, "data-audio")


def test_try_records_from_the_microphone_and_names_what_it_heard(browser, server, other_runs, tmp_path):
    """Chromium's fake microphone plays a WAV file in a loop: a 300 Hz tone, on for 0.3 s and off for 0.2 s. The page
    sends what it recorded as a WAV file, whose pitch is the tone's, and the model hears a low tone. A recogniser
    shows what it heard so far while it listens, and its whole transcript once stopped."""
    import io

    import numpy as np
    import scipy.io.wavfile

    t = np.arange(48000) / 48000
    tone = 0.5 * np.sin(2 * np.pi * 300 * t) * ((t % 0.5) < 0.3)
    scipy.io.wavfile.write(tmp_path / "mic.wav", 48000, (tone * 32767).astype(np.int16))
    mic = browser.browser_type.launch(executable_path=str(CHROMIUM), args=FLAGS + [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={tmp_path / 'mic.wav'}"])
    try:
        page = mic.new_context(permissions=["microphone"]).new_page()
        page.set_default_timeout(20_000)
        page.goto(server["login"])
        page.get_by_test_id("nav-try").click()
        page.get_by_test_id("try-run").select_option("tones")
        page.get_by_test_id("audio-record").click()
        expect(page.get_by_test_id("audio-record")).to_have_text("Recording…")
        expect(page.get_by_test_id("try-predictions").locator("li").first).to_be_visible()
        sent = page.get_by_test_id("audio-player").evaluate(  # the player plays the very file that was sent
            "async (player) => Array.from(new Uint8Array(await (await fetch(player.src)).arrayBuffer()))")
        rate, samples = scipy.io.wavfile.read(io.BytesIO(bytes(sent)))
        assert samples.dtype == np.int16 and len(samples) >= rate  # at least the second it said it would record
        spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
        assert np.argmax(spectrum) * rate / len(samples) == pytest.approx(300, abs=5)
        expect(page.get_by_test_id("try-predictions").locator("li").first).to_contain_text("low tone")
        expect(page.get_by_test_id("audio-player")).to_be_visible()
        shot(page, "try-microphone")
        page.get_by_test_id("try-run").select_option("talk")  # a recogniser: what it heard so far, as it listens
        page.get_by_test_id("audio-record").click()
        expect(page.locator(".transcript.partial")).to_be_visible()
        expect(page.get_by_test_id("audio-record")).to_have_text("Recording…")
        page.get_by_test_id("audio-stop").click()
        expect(page.get_by_test_id("audio-record")).to_have_text("Record")
        expect(page.locator(".transcript:not(.partial)")).to_be_visible()
        expect(page.get_by_test_id("audio-player")).to_be_visible()
    finally:
        mic.close()
