"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against `deepworks ui`'s app on a real
127.0.0.1 port, with training in real worker processes. Every page load fails the test if it asks any other host
for anything (offline by construction). DEEPWORKS_SCREENSHOTS=DIR (absolute) saves a screenshot of each page: the README's, in docs/ui.
"""

from __future__ import annotations

import io
import os
import re
import socket
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TRAIN_S = 90_000  # ms a short training job may take in the browser tests, worker start-up and report included
FAST = {"setting-data.audit": "false", "setting-eval.baseline": "false"}  # the tests' runs skip the audit and baseline

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the [test] extra has it)")
if not CHROMIUM.is_file():
    pytest.skip("needs Debian's Chromium: apt-get install chromium (.ci/run installs it)", allow_module_level=True)
if not (Path(__file__).parents[1] / "src/deepworks/ui/static/index.html").is_file():
    pytest.fail("the UI's page is not built: pip install -e . builds it (needs npm)", pytrace=False)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The UI's app on a free 127.0.0.1 port, in a thread of this process; its socket listens before the thread
    starts, so the first request needs no waiting."""
    import uvicorn

    from deepworks.ui import build_ui_app

    runs = tmp_path_factory.mktemp("ui-runs")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]  # the tests' own files (npz, zips) are under pytest's temporary folder
    app = build_ui_app(runs, port=port, data_roots=[tmp_path_factory.getbasetemp()])
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    yield {"url": url, "login": f"{url}/?token={app.state.token}", "runs": runs, "app": app}
    srv.should_exit = True
    thread.join(timeout=10)
    app.state.jobs.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@contextmanager
def logged_in(browser, server, **context_options):
    """A fresh page opened at the login link `deepworks ui` prints (it leaves the token in a cookie, then opens /).
    Its every request to another host than the server is refused and remembered, and fails the test."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, **context_options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # what a page shows after the server's work (a confusion cell's images: 5 s,
                                        # expect's default, was too short with three test processes on two cores)
    foreign = []
    here = urlparse(server["url"]).netloc

    def guard(route):
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == here:
            return route.continue_()
        foreign.append(route.request.url)
        return route.abort()

    page.route("**/*", guard)
    page.goto(server["login"])
    yield page
    context.close()
    assert not foreign, f"the page asked other hosts: {foreign}"


@pytest.fixture
def page(browser, server):
    with logged_in(browser, server, accept_downloads=True) as page:
        page.get_by_test_id("nav-data").click()  # / is the Start page (test_ui_start.py); these tests begin at Data
        yield page


def shot(page, name: str) -> None:
    folder = os.environ.get("DEEPWORKS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), animations="disabled")  # transitions at their end


def choose_digits(page) -> None:
    page.get_by_test_id("builtin-digits").click()
    expect(page.get_by_test_id("data-preview")).to_contain_text("10 classes")


def fill_settings(page, settings: dict) -> None:
    page.locator("form.settings summary").click()  # 'More settings' open
    for test_id, value in {**FAST, **settings}.items():
        field = page.get_by_test_id(test_id)
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(str(value))


def train(page, settings: dict) -> None:
    page.get_by_test_id("nav-train").click()
    fill_settings(page, settings)
    page.get_by_test_id("train-start").click()


def job(page) -> dict:
    """The job the page shows, as the API tells it."""
    return page.evaluate(f"fetch('/api/jobs/{page.get_by_test_id('job-id').inner_text()}').then(r => r.json())")


def finished(page, after: str | None = None) -> None:
    """Wait for the job (the one after job `after`) to end, and say why when it did not finish."""
    if after is not None:
        expect(page.get_by_test_id("job-id")).not_to_have_text(after)
    state = page.get_by_test_id("job-state")
    expect(state).to_have_text(re.compile("finished|failed|stopped"), timeout=TRAIN_S)
    if state.inner_text() != "finished":
        pytest.fail(f"the job ended {state.inner_text()}: {page.get_by_test_id('job').inner_text()}")


def draw_a_one(page) -> None:
    box = page.get_by_test_id("try-canvas").bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 40)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x, box["y"] + 40 + 20 * i)
    page.mouse.up()


def test_every_page_has_an_address_and_the_form_keeps_its_values_across_pages_and_reloads(page, server):
    page.get_by_test_id("nav-train").click()
    expect(page).to_have_url(re.compile(r"/train$"))
    page.locator("form.settings summary").click()
    page.get_by_test_id("setting-train.epochs").fill("7")
    page.get_by_test_id("nav-model").click()
    expect(page).to_have_url(re.compile(r"/model$"))
    page.go_back()  # Back stays in the app: the Train page, with what was typed
    expect(page.get_by_test_id("setting-train.epochs")).to_have_value("7")
    page.reload()
    expect(page.get_by_test_id("setting-train.epochs")).to_have_value("7")
    page.goto(server["url"] + "/runs/no-such-run/try")  # a link to a page of a run: that page, saying what is wrong
    expect(page.get_by_test_id("try-run")).to_have_value("no-such-run")
    expect(page.get_by_test_id("try-error")).to_contain_text("no-such-run")


def test_without_its_login_link_the_page_asks_for_the_token_in_words(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server["url"] + "/results")
    expect(page.get_by_test_id("login")).to_contain_text("needs its login link")
    page.get_by_label("Or paste the token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("That token is not this server's")
    page.get_by_label("Or paste the token").fill(server["app"].state.token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("nav-results")).to_have_class("active")  # logged in, on the page asked for
    context.close()


def test_a_full_journey_digits_small_cnn_train_watch_draw_export(page, server):
    """Built-in digits -> the default template (the small CNN) -> train 2 epochs, watching the curve move -> draw a
    digit -> export."""
    choose_digits(page)
    expect(page.locator("table.grid tr")).to_have_count(10)
    shot(page, "data")
    page.get_by_test_id("to-model").click()
    expect(page.get_by_test_id("template-smallcnn")).to_be_checked()
    shot(page, "model")
    page.get_by_test_id("to-train").click()
    train(page, {"setting-train.epochs": 2})
    expect(page.get_by_test_id("job-state")).to_have_text(re.compile("starting|running"))
    finished(page)
    expect(page.get_by_test_id("job-epochs")).to_contain_text("2 epochs done")
    points = int(page.get_by_test_id("curves").get_attribute("data-points"))
    assert points >= 2  # the curve grew while it trained: running losses, then validation losses
    expect(page.get_by_test_id("job-finished")).to_contain_text("test accuracy")
    page.locator("form.settings summary").click()  # 'More settings' closed again, for the picture
    page.get_by_test_id("job").scroll_into_view_if_needed()
    shot(page, "train")

    page.get_by_test_id("nav-results").click()  # the results: a wrong cell of the confusion matrix shows its images
    page.get_by_test_id("open-digits-smallcnn").click()
    expect(page.get_by_test_id("test-accuracy")).to_contain_text("%")
    expect(page.get_by_test_id("per-class").locator("tbody tr")).to_have_count(10)
    wrong = page.locator("table.confusion td.wrong").first
    count = int(wrong.inner_text())
    wrong.click()
    expect(page.get_by_test_id("cm-images").locator("img")).to_have_count(min(count, 24))
    page.get_by_test_id("compare-digits-smallcnn").check()
    expect(page.get_by_test_id("compare-chart")).to_have_attribute("data-series", "1")
    shot(page, "results")
    assert urlparse(page.url).path == "/runs/digits-smallcnn/results"  # the run's page has an address of its own
    page.reload()
    expect(page.get_by_test_id("test-accuracy")).to_contain_text("%")  # a reload shows the same run's results
    page.go_back()
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]+$"))  # Back: the page before, in the app: the job's panel
    expect(page.get_by_test_id("job-state")).to_have_text("finished")  # with the job it showed
    page.go_forward()
    expect(page.get_by_test_id("test-accuracy")).to_contain_text("%")

    page.get_by_test_id("nav-try").click()
    expect(page.get_by_test_id("try-canvas")).to_be_visible()
    draw_a_one(page)
    predictions = page.get_by_test_id("try-predictions").locator("li")
    expect(predictions).to_have_count(3)
    shot(page, "try")
    assert urlparse(page.url).path == "/runs/digits-smallcnn/try"

    page.get_by_test_id("nav-trust").click()  # attack, saliency and the audit of the same run
    expect(page.get_by_test_id("trust-run")).to_have_value("digits-smallcnn")
    page.get_by_test_id("attack-go").click()
    expect(page.get_by_test_id("attack-summary")).to_contain_text("FGSM at epsilon 0.1: accuracy on 179 test images")
    expect(page.get_by_test_id("trust-answer").locator("img")).to_have_count(2)  # the triptych and the curve
    shot(page, "trust")
    page.get_by_test_id("explain-go").click()
    expect(page.get_by_test_id("trust-answer")).to_contain_text("red areas pushed it there")
    page.get_by_test_id("audit-go").click()
    expect(page.get_by_test_id("audit")).to_contain_text("balance")

    page.get_by_test_id("nav-export").click()
    expect(page.get_by_test_id("export-run")).to_have_value("digits-smallcnn")  # the run just trained
    run = "digits-smallcnn"
    with page.expect_download() as info:
        page.get_by_test_id("export-download").click()
    files = zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())).namelist()
    assert {f"{run}-onnx/classifier.onnx", f"{run}-onnx/model.json", f"{run}-onnx/weights.safetensors"} <= set(files)
    page.get_by_test_id("serve-go").click()
    expect(page.get_by_test_id("served")).to_contain_text(f"/v1/models/{run}/predict")
    shot(page, "export")


def npz_of_28px_images(folder: Path) -> Path:
    """200 images of 28 x 28 (dark strokes of 10 kinds), as a user's .npz with arrays x and y."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(200) % 10
    x = (rng.random((200, 28, 28)) * 40).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, 2 + 2 * label: 6 + 2 * label, 4:24] = 255
    np.savez(folder / "strokes.npz", x=x, y=y)
    return folder / "strokes.npz"


def test_the_designer_builds_lenet_by_clicks_round_trips_its_yaml_and_trains_it(page, server, tmp_path):
    page.get_by_test_id("data-path").fill(str(npz_of_28px_images(tmp_path)))
    page.get_by_test_id("data-look").click()
    expect(page.get_by_test_id("data-preview")).to_contain_text("28×28")
    page.get_by_test_id("nav-model").click()
    page.get_by_test_id("template-layers").check()
    for kind in ("conv", "activation", "pool", "conv", "activation", "pool", "dense", "activation", "dense",
                 "activation"):
        page.get_by_test_id(f"add-{kind}").click()
    page.get_by_test_id("card-1-channels").fill("6")
    page.get_by_test_id("card-1-kernel").fill("5")
    page.get_by_test_id("card-1-padding").fill("2")
    page.get_by_test_id("card-4-kernel").fill("5")
    page.get_by_test_id("card-7-units").fill("120")
    page.get_by_test_id("card-9-units").fill("84")
    expect(page.get_by_test_id("design-parameters")).to_have_text("61,706")  # as `deepworks train` counts it
    expect(page.get_by_test_id("design-input")).to_contain_text("1×28×28 → 10 classes")
    page.get_by_test_id("graph-toggle").locator("summary").click()  # the same model as a graph
    expect(page.get_by_test_id("graph")).to_have_attribute("data-nodes", "12")  # input, 10 cards, head
    expect(page.locator(".react-flow__node")).to_have_count(12)
    expect(page.get_by_test_id("card-1-shape")).to_contain_text("6×28×28")
    shot(page, "designer")
    saved = page.get_by_test_id("design-yaml").input_value()
    page.get_by_test_id("clear-design").click()
    expect(page.get_by_test_id("card-1")).to_have_count(0)
    page.get_by_test_id("design-yaml").fill(saved)
    page.get_by_test_id("load-yaml").click()
    expect(page.get_by_test_id("design-parameters")).to_have_text("61,706")
    assert page.get_by_test_id("design-yaml").input_value() == saved  # UI -> YAML -> UI: the same, byte for byte

    train(page, {"setting-train.epochs": 1})
    finished(page)
    run = Path(job(page)["run"])
    import yaml

    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["layers"] == yaml.safe_load(saved)["model"]["layers"]



def test_the_model_page_s_image_size_is_the_designer_s_and_the_train_form_s(page, server):
    """Digits are stored 8x8 and shown 28x28: the designer builds at the size the Data page shows, so 'LeNet-5 as
    cards' fits; the Model page's size is the designer's and the Train form's alike, and a design that does not fit
    at the size chosen is refused before any job starts."""
    page.get_by_test_id("builtin-digits").click()
    expect(page.get_by_test_id("data-preview")).to_contain_text("28×28", timeout=60_000)  # a busy machine reads slowly
    page.get_by_test_id("nav-model").click()
    page.get_by_test_id("template-layers").check()
    page.get_by_test_id("load-lenet").click()
    expect(page.get_by_test_id("design-input")).to_contain_text("1×28×28 → 10 classes", timeout=60_000)
    expect(page.get_by_test_id("design-parameters")).to_have_text("61,706")
    page.get_by_test_id("image-size").fill("8")
    expect(page.get_by_test_id("design-error")).to_contain_text("Card 4 (conv)")
    page.get_by_test_id("nav-train").click()
    expect(page.get_by_test_id("setting-data.image_size")).to_have_value("8")
    page.get_by_test_id("train-start").click()
    expect(page.get_by_test_id("train-error")).to_contain_text("Card 4 (conv)")
    expect(page.get_by_test_id("job")).to_have_count(0)  # no job started
    page.get_by_test_id("setting-data.image_size").fill("32")
    page.get_by_test_id("nav-model").click()
    expect(page.get_by_test_id("image-size")).to_have_value("32")
    expect(page.get_by_test_id("design-input")).to_contain_text("1×32×32 → 10 classes")

def zip_of_class_folders(folder: Path) -> Path:
    """photos.zip: photos/circle/*.png and photos/square/*.png, 12 of each, 20 x 20 colour images."""
    from PIL import Image, ImageDraw

    path = folder / "photos.zip"
    with zipfile.ZipFile(path, "w") as z:
        for kind in ("circle", "square"):
            for i in range(12):
                image = Image.new("RGB", (20, 20), (i * 10, 40, 90))
                draw = ImageDraw.Draw(image)
                (draw.ellipse if kind == "circle" else draw.rectangle)((3 + i % 3, 3, 15, 15 + i % 3), fill="yellow")
                buffer = io.BytesIO()
                image.save(buffer, "PNG")
                z.writestr(f"photos/{kind}/{i}.png", buffer.getvalue())
    return path


def test_your_own_photos_uploaded_as_a_zip_are_trained_tried_and_exported_without_a_command(page, server, tmp_path):
    page.get_by_test_id("data-upload").set_input_files(str(zip_of_class_folders(tmp_path)))
    preview = page.get_by_test_id("data-preview")
    expect(preview).to_contain_text("in 2 classes", timeout=60_000)  # unpacked and read: slow on a busy machine
    expect(preview.locator("table.grid tr")).to_have_count(2)
    expect(preview.locator("table.grid th")).to_have_text(["circle", "square"])
    assert page.get_by_test_id("data-path").input_value().startswith(str(server["runs"] / ".ui" / "uploads"))
    page.get_by_test_id("to-model").click()
    page.get_by_test_id("to-train").click()
    train(page, {"setting-train.epochs": 2})
    finished(page)
    page.get_by_test_id("to-try").click()
    photo = tmp_path / "mine.png"
    with zipfile.ZipFile(tmp_path / "photos.zip") as z:
        photo.write_bytes(z.read("photos/circle/0.png"))
    page.get_by_test_id("try-file").set_input_files(str(photo))  # a photo of one's own, dropped in
    expect(page.get_by_test_id("try-predictions").locator("li")).to_have_count(2)
    page.wait_for_function("""() => {  // the photo is shown on the square, where a drawing was: lit pixels
        const d = document.querySelector('[data-testid=try-canvas]').getContext('2d').getImageData(0, 0, 280, 280).data;
        let lit = 0;
        for (let i = 0; i < d.length; i += 4) lit += d[i] + d[i + 1] + d[i + 2] > 60;
        return lit > 1000; }""")
    expect(page.get_by_test_id("try-predictions")).to_contain_text("circle")
    page.get_by_test_id("nav-export").click()
    expect(page.get_by_test_id("export-run")).to_have_value(re.compile("photos"))
    with page.expect_download() as info:
        page.get_by_test_id("export-download").click()
    assert any(n.endswith("classifier.onnx") for n in zipfile.ZipFile(Path(info.value.path())).namelist())


def test_a_design_that_does_not_fit_says_which_card_and_what_to_change(page, server):
    choose_digits(page)
    page.get_by_test_id("nav-model").click()
    page.get_by_test_id("template-layers").check()
    page.get_by_test_id("add-conv").click()
    page.get_by_test_id("card-1-kernel").fill("29")  # the digits are designed for at 28 x 28, as the Data page shows
    expect(page.get_by_test_id("design-error")).to_contain_text(
        "Card 1 (conv): a 29x29 kernel does not fit the 28x28 it receives. Use a kernel of at most 28")
    page.get_by_test_id("card-1-type").select_option("dense")
    expect(page.get_by_test_id("design-error")).to_have_count(0)
    expect(page.get_by_test_id("card-1-shape")).to_have_text("→ 64 · 50,240 params")  # 784 pixels to 64 units
    page.get_by_test_id("add-residual").click()  # a block holding cards of its own, joined to its input
    page.get_by_test_id("card-2-add-dense").click()
    expect(page.get_by_test_id("card-2-shape")).to_have_text("→ 64 · 4,160 params")
    page.get_by_test_id("graph-toggle").locator("summary").click()
    expect(page.locator(".react-flow__edge")).to_have_count(5)  # in, card, inner card, add (+ the skip), head


def test_stop_then_resume_from_the_browser_continues_the_same_run(page, server):
    choose_digits(page)
    train(page, {"setting-train.epochs": 400})
    expect(page.get_by_test_id("job-state")).to_have_text("running", timeout=TRAIN_S)
    expect(page.get_by_test_id("job-epochs")).to_contain_text("epochs done", timeout=TRAIN_S)
    page.get_by_test_id("train-stop").click()
    expect(page.get_by_test_id("job-state")).to_have_text("stopped", timeout=TRAIN_S)
    expect(page.get_by_test_id("job-message")).to_contain_text("the state is saved")
    stopped = job(page)
    stopped_at, run = len(stopped["epochs"]), stopped["run"]
    shot(page, "stopped")
    page.get_by_test_id("train-resume").click()
    expect(page.get_by_test_id("job-id")).not_to_have_text(stopped["id"])
    expect(page.get_by_test_id("job-state")).to_have_text("running", timeout=TRAIN_S)
    resumed = job(page)
    assert resumed["run"] == run and resumed["resume"] == run
    # it continues the run's epochs (the first record after resuming is the next epoch, not epoch 1 again)
    expect(page.get_by_test_id("job-epochs")).not_to_contain_text(f"{stopped_at} epochs done", timeout=TRAIN_S)
    epochs = [e["epoch"] for e in job(page)["epochs"]]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > stopped_at
    page.get_by_test_id("train-stop").click()
    expect(page.get_by_test_id("job-state")).to_have_text("stopped", timeout=TRAIN_S)


def test_a_run_that_fails_shows_its_error_and_the_fix(page, server, tmp_path):
    missing = tmp_path / "no-such-folder"
    page.get_by_test_id("data-path").fill(str(missing))
    page.get_by_test_id("data-look").click()
    expect(page.get_by_test_id("data-error")).to_contain_text(f"No such folder '{missing}'")
    page.get_by_test_id("nav-train").click()
    page.get_by_test_id("setting-train.epochs").fill("0")
    page.get_by_test_id("train-start").click()  # refused before any process starts, with the CLI's own message
    expect(page.get_by_test_id("train-error")).to_contain_text("epochs")
    train(page, {"setting-train.epochs": 1})  # the worker finds no data: the job fails with what to pass instead
    expect(page.get_by_test_id("job-state")).to_have_text("failed", timeout=TRAIN_S)
    expect(page.get_by_test_id("job-error")).to_contain_text(f"No such folder '{missing}'. Pass a folder with one "
                                                             f"sub-folder per class")
    outcome = server["runs"] / ".ui" / "jobs" / page.get_by_test_id("job-id").inner_text() / "outcome.json"
    assert "No such folder" in outcome.read_text()  # what the worker recorded is what the page shows
    shot(page, "failed")


def test_an_automl_search_shows_its_leaderboard_live_then_trains_the_best(page, server):
    choose_digits(page)
    page.get_by_test_id("nav-train").click()
    fill_settings(page, {})
    page.get_by_test_id("automl-budget").fill("2m")
    page.get_by_test_id("automl-start").click()
    expect(page).to_have_url(re.compile(r"/automl/automl-digits-[0-9-]+$"))  # the search has an address
    search_address = page.url
    expect(page.get_by_test_id("job-state")).to_have_text("running", timeout=TRAIN_S)
    board = page.get_by_test_id("leaderboard")
    expect(board.locator("tbody tr").filter(has_text="complete").first).to_be_visible(timeout=TRAIN_S)
    expect(page.get_by_test_id("job-state")).to_have_text("running")  # the board filled in while it searched
    shot(page, "automl")
    page.get_by_test_id("train-stop").click()
    expect(page.get_by_test_id("job-state")).to_have_text("stopped", timeout=TRAIN_S)
    best = job(page)["best_settings"]
    assert best["model.name"] == "smallcnn" and best["train.epochs"] >= 1  # trial 0: deepworks' defaults for digits
    searched = page.get_by_test_id("job-id").inner_text()
    page.get_by_test_id("automl-train-best").click()
    finished(page, after=searched)
    expect(page.get_by_test_id("job-finished")).to_contain_text("test accuracy")
    trained = page.get_by_test_id("job-id").inner_text()
    expect(page).to_have_url(f"{server['url']}/jobs/{trained}")  # the job has one too

    page.get_by_test_id("nav-results").click()  # the finished job's panel, from its run's results
    page.get_by_test_id("run-job").click()
    expect(page).to_have_url(f"{server['url']}/jobs/{trained}")
    expect(page.get_by_test_id("job-finished")).to_contain_text("test accuracy")
    page.goto(search_address)  # and the search's, by its address, with its leaderboard
    expect(page.get_by_test_id("job-id")).to_have_text(searched)
    expect(board.locator("tbody tr").filter(has_text="complete").first).to_be_visible()
    page.get_by_test_id("job-list").locator("summary").click()  # the earlier jobs, each a click away
    page.get_by_test_id(f"job-{trained}").click()
    expect(page).to_have_url(f"{server['url']}/jobs/{trained}")
    page.go_back()
    expect(page.get_by_test_id("job-id")).to_have_text(searched)
