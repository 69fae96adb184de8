"""Every built-in task in the browser, from its card alone: its first built-in data set previews on the Data page,
its templates are offered on the Model page, and its tiny run (the contract harness's, test_task_contract.py) is
tried on the Try page through the view for what the card says it takes and gives. The test drives the view by those
kinds, never by the task's name, so a task added with a card of known kinds is covered by registering."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_task_contract import quick_fid, runs, safe  # noqa: F401 (fixtures: the tiny runs, made once per test run)
from test_ui import browser, draw_a_one, page, server  # noqa: F401 (fixtures: the browser and the UI's server)

import deepworks as dw
from deepworks.cards import BUILTIN_CARDS

from playwright.sync_api import expect  # noqa: E402 (test_ui skips this module where there is no browser)


@pytest.fixture(scope="module")
def tried_runs(server, runs):  # noqa: F811
    """The tiny runs, in the UI's runs folder."""
    for task in BUILTIN_CARDS:
        shutil.copytree(runs[task], Path(server["runs"]) / safe(task), ignore=shutil.ignore_patterns("export"))
    return {task: safe(task) for task in BUILTIN_CARDS}


def image_file(folder: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    path = folder / "picture.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def sound_file(folder: Path) -> Path:
    import scipy.io.wavfile

    from deepworks.data.audio import make_tones

    path = folder / "clip.wav"
    scipy.io.wavfile.write(path, 8000, make_tones(1, 3).samples[0])
    return path


def try_classes_of_image(page, run, folder):  # noqa: F811
    draw_a_one(page)
    expect(page.get_by_test_id("try-predictions").locator("li").first).to_be_visible()


def try_boxes_of_image(page, run, folder):  # noqa: F811
    page.get_by_test_id("detect-file").set_input_files(str(image_file(folder)))
    expect(page.get_by_test_id("detect-count")).to_be_visible()


def try_mask_of_image(page, run, folder):  # noqa: F811
    photo = image_file(folder)
    expected = dw.load(run).segment(str(photo))[0]["classes"]
    page.get_by_test_id("segment-file").set_input_files(str(photo))
    mask = page.get_by_test_id("segment-mask")
    expect(mask).to_be_visible()
    assert mask.evaluate("m => m.naturalWidth") == 64  # the mask at the photo's own size, laid over it
    expect(page.get_by_test_id("segment-classes").locator("li")).to_have_count(len(expected))
    page.get_by_test_id("segment-opacity").fill("0.9")
    expect(mask).to_have_css("opacity", "0.9")


def try_image_of_image(page, run, folder):  # noqa: F811
    page.get_by_test_id("restore-file").set_input_files(str(image_file(folder)))
    after = page.get_by_test_id("restore-after")
    expect(after).to_be_visible()
    scale = dw.load(run).face.scale
    assert after.evaluate("m => m.naturalWidth") == 64 * scale  # the restored photo at its own size
    page.get_by_test_id("restore-split").fill("20")
    expect(page.get_by_test_id("restore-before")).to_have_css("clip-path", "inset(0px 80% 0px 0px)")


def try_classes_of_audio(page, run, folder):  # noqa: F811
    page.get_by_test_id("audio-file").set_input_files(str(sound_file(folder)))
    expect(page.get_by_test_id("try-predictions").locator("li").first).to_be_visible()


def try_text_of_audio(page, run, folder):  # noqa: F811
    page.get_by_test_id("audio-file").set_input_files(str(sound_file(folder)))
    expect(page.get_by_test_id("try-transcript")).to_be_visible()


def try_text_of_text(page, run, folder):  # noqa: F811
    inputs, _ = dw.load(run).face.example_request()  # a text the run's vocabulary knows
    page.get_by_test_id("try-text").fill(inputs if isinstance(inputs, str) else inputs[0])
    page.get_by_test_id("try-go").click()
    expect(page.locator("[data-testid=try-answer], [data-testid=attention]").first).to_be_visible()


def try_classes_of_text(page, run, folder):  # noqa: F811
    inputs, _ = dw.load(run).face.example_request()
    page.get_by_test_id("try-text").fill(inputs[0])  # answered as it is typed, without the button
    expect(page.get_by_test_id("try-predictions").locator("li").first).to_be_visible()
    expect(page.get_by_test_id("try-shares").locator("span")).not_to_have_count(0)  # and the tokens that decided


def try_image_of_noise(page, run, folder):  # noqa: F811
    page.get_by_test_id("try-go").click()
    expect(page.get_by_test_id("try-answer").locator("img").first).to_be_visible()


def try_people_of_image(page, run, folder):  # noqa: F811
    page.get_by_test_id("faces-file").set_input_files(str(image_file(folder)))
    expect(page.get_by_test_id("faces-count")).to_contain_text("0 faces found")  # noise: no one


BY_KIND = {("image", "classes"): try_classes_of_image, ("image", "boxes"): try_boxes_of_image,
           ("image", "mask"): try_mask_of_image, ("image", "people"): try_people_of_image, ("image", "image"): try_image_of_image,
           ("audio", "classes"): try_classes_of_audio, ("audio", "text"): try_text_of_audio,
           ("text", "text"): try_text_of_text,
           ("text", "classes"): try_classes_of_text,
           ("noise", "image"): try_image_of_noise}


def test_every_card_s_kinds_have_a_way_to_be_tried():
    for card in BUILTIN_CARDS.values():
        assert (card.inputs[0], card.outputs[0]) in BY_KIND, card.name


@pytest.mark.parametrize("task", list(BUILTIN_CARDS))
def test_each_task_previews_its_data_offers_its_models_and_is_tried_from_its_card(page, server, tried_runs, task,  # noqa: F811
                                                                                 tmp_path):
    card = BUILTIN_CARDS[task]
    page.get_by_test_id("nav-data").click()
    page.get_by_test_id("task").select_option(task)
    page.get_by_test_id(f"builtin-{card.builtins[0]}").click()
    expect(page.get_by_test_id("data-preview")).to_be_visible(timeout=60_000)
    page.get_by_test_id("nav-model").click()
    for model, _ in card.templates:
        expect(page.get_by_test_id(f"template-{model}")).to_be_visible()
    page.goto(f"{server['url']}/runs/{tried_runs[task]}/try")
    BY_KIND[(card.inputs[0], card.outputs[0])](page, Path(server["runs"]) / tried_runs[task], tmp_path)
    expect(page.get_by_test_id("try-error")).to_have_count(0)


def test_every_page_stays_on_reload_and_back_walks_the_pages_visited(page, server):  # noqa: F811
    pages = ["data", "model", "train", "results", "try", "trust", "export"]
    for name in pages:
        page.get_by_test_id(f"nav-{name}").click()
        expect(page).to_have_url(f"{server['url']}/{name}")
        page.reload()
        expect(page.get_by_test_id(f"nav-{name}")).to_have_class("active")
    for name in reversed(pages[:-1]):
        page.go_back()
        expect(page.get_by_test_id(f"nav-{name}")).to_have_class("active")
