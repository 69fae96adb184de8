"""Text generation as a user meets it: train on a text file, sample from it, resume, and every bad input."""

import json
import subprocess
import sys

import pytest
import torch

import deepworks as dw
from conftest import assert_same_weights, ctrl_c_at_step, shared, weights
from deepworks.cli import main
from deepworks.data.text import load_text_source
from deepworks.errors import ConfigError, DataError
from deepworks.models import build_text_model, count_parameters
from deepworks.config import ModelConfig
from deepworks.tasks.text import TextGeneration, stream_windows
from deepworks.tasks.text_face import TextFace
from deepworks.training.loop import Interrupted

LINE = "the quick brown fox jumps over the lazy dog.\n"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def tiny(**settings):
    """A small LSTM on a short repetitive text: seconds on a laptop CPU."""
    settings = {"task": "text", "seq_len": 32, "batch_size": 8, "width": 64, "depth": 1, "lr": 0.02, **settings}
    return dw.train(progress=False, **settings)


@pytest.fixture
def fox(tmp_path):
    return write(tmp_path / "fox.txt", LINE * 60)


def test_a_small_lstm_learns_a_repetitive_text_and_writes_it_back(fox):
    trained = tiny(data=fox, epochs=12)
    results = trained.results
    assert results["test"]["bpc"] < 0.3  # a uniform guess over its 29 characters needs 4.86 bits
    assert results["test"]["bpc"] < results["baseline"]["bpc"] / 3  # far beyond counting character pairs
    assert trained.generate("the quick", length=len(LINE) * 2, temperature=0) == "the quick" + (LINE * 3)[9:9 + len(LINE) * 2]
    samples = [r for r in trained.run.metrics() if r.get("kind") == "sample"]
    assert {r["temperature"] for r in samples} == {0.5, 1.0, 1.5} and samples[-1]["epoch"] == 12
    assert all(len(r["text"]) == len(trained.face.prime) + 200 for r in samples)
    # the report's samples are written side by side, one row per temperature; nearly cold, a row is the likeliest text
    face, device = trained.face, trained.device
    cold = face.samples_at(trained.model, "the quick", 60, (1e-4, 1.0), seed=3, device=device)
    assert cold[0] == trained.generate("the quick", length=60, temperature=0)
    assert cold == face.samples_at(trained.model, "the quick", 60, (1e-4, 1.0), seed=3, device=device)
    page = (trained.run.report_dir / "index.html").read_text()
    assert "Samples during training" in page and "bits/char" in page
    assert json.loads((trained.run.path / "model.json").read_text())["meta"]["vocab"] == sorted(set(LINE))


def test_the_windows_are_contiguous_streams_so_the_hidden_state_can_carry_on():
    ids = torch.arange(1000)
    rows = stream_windows(ids, streams=4, seq_len=10)  # 4 streams of 249 characters, 24 windows each
    assert rows.shape == (24 * 4, 11)
    for b in range(4):
        stream = rows[b::4]  # row step * 4 + b is window `step` of stream b
        assert torch.equal(stream[1:, 0], stream[:-1, -1])  # each window starts where the previous one ended
        assert stream[0, 0] == b * 249


def test_sampling_is_repeatable_with_a_seed_and_varies_without(fox):
    trained = tiny(data=fox, epochs=1)
    a = trained.generate("the", length=200, temperature=1.5, seed=7)
    assert a == trained.generate("the", length=200, temperature=1.5, seed=7)
    assert a != trained.generate("the", length=200, temperature=1.5, seed=8)
    assert trained.generate("t", 50, 1.0, top_k=1, seed=1) == trained.generate("t", 50, 0.0)  # top-1 is greedy
    assert "".join(trained.stream("the", 30, 0.8, seed=3)) == trained.generate("the", 30, 0.8, seed=3)[3:]
    face = TextFace(trained.cfg, json.loads((trained.run.path / "model.json").read_text())["meta"])  # no recipe
    assert face.generate(trained.model, "the", 200, 1.5, seed=7, device=trained.device) == a


def test_the_face_is_imported_without_the_recipe():
    code = "import sys, deepworks.tasks.text_face; print('deepworks.tasks.text' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ctrl_c_mid_epoch_then_resume_gives_the_same_weights(fox):
    settings = dict(data=fox, epochs=2, dropout=0.2, depth=2, restore_best=False)
    reference = tiny(name="whole", **settings)
    # Ctrl-C mid-epoch 1: the carried hidden state must survive the checkpoint.
    with ctrl_c_at_step(TextGeneration, 3), pytest.raises(Interrupted, match="epoch 1, step 3"):
        tiny(name="cut", **settings)
    assert torch.load("runs/cut/checkpoint.pt", weights_only=True)["task"]["state"]  # the hidden state is saved
    resumed = dw.train(resume="runs/cut", progress=False)
    assert_same_weights(weights(reference.run.path), weights(resumed.run.path))
    assert [r["epoch"] for r in resumed.run.metrics() if r.get("kind") == "epoch"] == [1, 2]


@pytest.mark.parametrize("model,params", [("lstm", 876_929), ("gru", 662_913), ("rnn", 234_881)])
def test_text_models_have_the_expected_size_and_learn_a_step(model, params):
    net = build_text_model(ModelConfig(name=model), vocab_size=65)
    assert count_parameters(net) == params  # a 2 x 256 network with a 64-wide embedding over 65 characters
    x = torch.randint(0, 65, (4, 20))
    logits, state = net(x)
    assert logits.shape == (4, 20, 65)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(x[:, :-1])[0].flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_tied_weights_share_one_matrix_and_need_equal_sizes():
    tied = build_text_model(ModelConfig(name="lstm", width=128, tie_weights=True), vocab_size=65)
    assert tied.head.weight is tied.embed.weight
    with pytest.raises(ConfigError, match="--embed-size 64 and --width 128"):
        build_text_model(ModelConfig(name="lstm", width=128, embed_size=64, tie_weights=True), vocab_size=65)
    with pytest.raises(ConfigError, match="LSTM and GRU gates have fixed activations"):
        build_text_model(ModelConfig(name="gru", activation="relu"), vocab_size=65)


def test_a_folder_is_read_in_sorted_order_with_windows_line_ends_made_plain(tmp_path):
    folder = tmp_path / "letters"
    (folder / "b").mkdir(parents=True)
    (folder / "b" / "2.txt").write_bytes(b"second\r\nletter")
    (folder / "1.md").write_text("first\n")
    (folder / ".hidden.txt").write_text("never")
    (folder / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    source = load_text_source(str(folder))
    assert source.text == "first\nsecond\nletter\n"
    assert "1 binary file(s) skipped" in source.description


def test_the_embedded_corpus_needs_no_download():
    source = load_text_source("python-stdlib")
    assert len(source.text) == 500_000 and "def " in source.text and "import " in source.text


def test_tiny_shakespeare_is_read_from_the_data_dir_and_checked():
    folder = shared("tiny_shakespeare", "input.txt").parent.parent
    source = load_text_source("tiny-shakespeare", data_dir=str(folder), download=False)
    assert len(source.text) == 1_115_394 and source.text.startswith("First Citizen:")


def test_tiny_shakespeare_downloads_from_a_mirror_with_its_checksum(tmp_path, monkeypatch):
    from test_builtin_data import QuietHandler  # noqa: F401 (the same local server as the image downloads)
    import functools
    import threading
    from http.server import ThreadingHTTPServer

    root = shared("tiny_shakespeare", "input.txt").parent.parent
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("DEEPWORKS_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
        source = load_text_source("tiny-shakespeare", data_dir=str(tmp_path / "cache"))
        assert len(source.text) == 1_115_394
        assert (tmp_path / "cache" / "tiny_shakespeare" / "input.txt").is_file()
    finally:
        server.shutdown()
        server.server_close()


BAD_TEXT = [
    ("empty.txt", b"", "'empty.txt' is empty"),
    ("blank.txt", b"  \n\n ", "'blank.txt' is empty"),
    ("short.txt", b"to be or not", "'short.txt' is too short to train on: 11 of its 12 characters are left for "
                                   "training after the validation part, and one sequence needs 33 (--seq-len 32"),
    ("image.bin", b"GIF89a\0\0\1\0" * 50, "'image.bin' looks like a binary file"),
    ("cafe.txt", b"caf\xe9 au lait\n" * 50, "'cafe.txt' is not UTF-8 text: byte 0xe9 at line 1, column 4 (byte 3) "
                                             "is not valid UTF-8. If the file is Latin-1 or Windows-1252 text, add "
                                             "--encoding latin-1"),
]


@pytest.mark.parametrize("name,content,message", BAD_TEXT, ids=[b[0] for b in BAD_TEXT])
def test_bad_text_gets_a_clear_message_on_the_command_line(tmp_path, capsys, name, content, message):
    (tmp_path / name).write_bytes(content)
    code = main(["train", "--task", "text", "--data", name, "--seq-len", "32", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_latin_1_text_trains_when_asked_for(tmp_path):
    (tmp_path / "cafe.txt").write_bytes(b"caf\xe9 au lait, cr\xe8me br\xfbl\xe9e.\n" * 40)
    trained = tiny(data="cafe.txt", epochs=1, encoding="latin-1")
    assert "é" in trained.task.meta["vocab"]


def test_a_folder_without_text_files_and_a_missing_path_are_named(tmp_path, capsys):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "a.png").write_bytes(b"\x89PNG\0\0")
    assert main(["train", "--task", "text", "--data", "scans"]) == 2
    assert "The folder 'scans' has no text files (found 1 binary file(s) such as 'a.png')" in capsys.readouterr().err
    assert main(["train", "--task", "text", "--data", "nowhere.txt"]) == 2
    assert "No such file or folder 'nowhere.txt'" in capsys.readouterr().err
    assert main(["train", "--task", "text", "--model", "lenet"]) == 2
    assert "--model lenet does not fit --task text; choose one of: rnn, lstm, gru" in capsys.readouterr().err


def test_generate_streams_text_from_the_cli_and_names_unknown_prime_characters(fox, capsys):
    tiny(data=fox, epochs=2, name="fox")
    capsys.readouterr()
    assert main(["generate", "fox", "--prime", "the", "--length", "40", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the") and len(out) == 3 + 40 + 1
    assert main(["generate", "runs/fox", "--length", "40", "--seed", "1", "--json", "--top-k", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seed"] == 1 and len(result["text"]) == 40 and result["top_k"] == 5
    assert main(["generate", "fox", "--prime", "Zebra €"]) == 2
    err = capsys.readouterr().err
    assert "The prime text has 3 character(s) the model never saw in training: ' ', 'Z', '€'" not in err  # space is known
    assert "The prime text has 2 character(s) the model never saw in training: 'Z', '€'" in err
    assert main(["generate", "fox", "--temperature", "-1"]) == 2
    assert ("generate: temperature must be 0 (always the likeliest) or from 0.001 to 100. Received: -1.0."
            in capsys.readouterr().err)


def test_evaluate_and_runs_show_bits_per_character(fox, tmp_path, capsys):
    tiny(data=fox, epochs=2, name="fox")
    capsys.readouterr()
    assert main(["evaluate", "fox"]) == 0
    out = capsys.readouterr().out
    assert "characters)" in out and "bits/char" in out
    other = write(tmp_path / "other.txt", "the lazy dog jumps over the quick brown fox.\n" * 10)
    assert main(["evaluate", "fox", "--data", other, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["characters"] == 450
    assert main(["runs"]) == 0
    assert "bpc" in capsys.readouterr().out
    assert main(["predict", "fox", "x.png"]) == 2
    assert "'predict' is for an image classification run" in capsys.readouterr().err


def test_the_batch_shrinks_to_fit_a_short_text(tmp_path):
    path = write(tmp_path / "short.txt", LINE * 4)  # 180 characters: 162 to train on, room for 5 streams of 32
    trained = tiny(data=path, batch_size=64, epochs=1)
    assert trained.cfg.train.batch_size == 5


def test_unknown_characters_in_an_evaluation_text_are_named(fox, tmp_path):
    tiny(data=fox, epochs=1, name="fox")
    with pytest.raises(DataError, match=r"has 1 character\(s\) the model never saw in training: '!'"):
        dw.evaluate("fox", data=write(tmp_path / "loud.txt", "the dog!\n" * 30))


@pytest.mark.parametrize("kind,act", [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")])
def test_one_step_sampling_matches_the_full_layer(kind, act):
    torch.manual_seed(0)
    net = build_text_model(ModelConfig(name=kind, activation=act, depth=2, width=32), vocab_size=20).eval()
    x = torch.randint(0, 20, (3, 6))
    with torch.no_grad():
        logits, state = net(x)
        step_state = None
        for t in range(6):
            step_logits, step_state = net.step(x[:, t], step_state)
            torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
    for a, b in zip(state if kind == "lstm" else [state], step_state if kind == "lstm" else [step_state]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_each_task_fills_the_settings_left_unset_with_its_own_defaults():
    from deepworks.config import Config
    from deepworks.tasks import get_task

    text = get_task("text")(Config(task="text")).cfg
    assert (text.data.source, text.model.name, text.train.batch_size, text.train.clip_grad) == ("python-stdlib", "lstm", 32, 1.0)
    image = get_task("image")(Config()).cfg
    assert (image.data.source, image.model.name, image.train.batch_size, image.train.clip_grad) == ("digits", None, 128, 0.0)
    # the image model is chosen from the data: see test_data_images.py
    chosen = get_task("text")(Config(task="text", train=Config().train.__class__(batch_size=8, clip_grad=0.0))).cfg
    assert (chosen.train.batch_size, chosen.train.clip_grad) == (8, 0.0)  # a user's choice, 0 included, is kept


def test_weights_that_do_not_fit_the_model_get_a_message_not_a_traceback(fox):
    from safetensors.torch import save_file

    trained = tiny(data=fox, epochs=1, name="fox")
    save_file({"embed.weight": torch.zeros(3, 3)}, str(trained.run.path / "model.safetensors"))
    with pytest.raises(dw.DeepworksError, match=r"The weights in '.*model.safetensors' do not fit the lstm model that "
                                                r".*describe \(shapes differ: embed.weight \(3, 3\) where the model "
                                                r"has \(29, 64\); missing rnn.weight_ih_l0.*\)\. One of them was changed"):
        dw.load("fox")
