"""The CLI as a user types it: train on a folder of their own images, predict, evaluate, list, and bad input."""

import json
import pathlib
import subprocess
import sys

import pytest

from deepworks.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def trained_folder_run(capsys, image_folder):
    code, out, err = run_cli(capsys, "train", "--data", str(image_folder), "--name", "bars", "--epochs", "15",
                             "--batch-size", "16", "--quiet")
    assert code == 0, err
    return out


def test_folder_to_trained_model_to_predictions(capsys, trained_folder_run, image_folder, tmp_path):
    out = trained_folder_run
    assert "runs/bars" in out and "random forest" in out and "report" in out
    accuracy = float(out.split("test      accuracy ")[1].split()[0])
    assert accuracy >= 0.8  # three classes: chance is 0.33
    assert "top2 accuracy" in out  # top-k stays below the number of classes, where it would always be 1

    from conftest import draw
    import numpy as np

    new = tmp_path / "new_vbar.jpg"
    draw("vbar", 50, np.random.default_rng(123), "RGB").save(new)
    code, out, err = run_cli(capsys, "predict", "runs/bars", str(new), "--json", "--top-k", "2")
    assert code == 0, err
    result = json.loads(out)
    assert result[0]["input"] == str(new) and len(result[0]["predictions"]) == 2
    assert result[0]["predictions"][0]["class"] == "vbar"
    assert 0.5 < result[0]["predictions"][0]["probability"] <= 1.0

    code, out, err = run_cli(capsys, "predict", "bars", str(image_folder / "hbar"))  # a run name and a folder
    assert code == 0 and out.count("hbar/") == 20 and "%" in out

    code, out, err = run_cli(capsys, "evaluate", "runs/bars", "--json")
    metrics = json.loads(out)
    assert metrics["split"] == "test" and metrics["accuracy"] == pytest.approx(accuracy, abs=1e-4)

    code, out, err = run_cli(capsys, "evaluate", "runs/bars", "--data", str(image_folder))
    assert code == 0 and "precision" in out and "vbar" in out

    code, out, err = run_cli(capsys, "runs", "--json")
    rows = json.loads(out)
    assert rows[0]["name"] == "bars" and rows[0]["status"] == "finished" and rows[0]["best"] > 0.5


def test_user_mistakes_get_one_clear_line_and_no_traceback(capsys, tmp_path, trained_folder_run):
    cases = [
        (["train", "--data", "holiday-photos"], "No such folder 'holiday-photos'"),
        (["train", "--lr", "fast"], "--lr expects float. Received: 'fast'"),
        (["train", "--model", "vgg"], "must be one of mlp, lenet, smallcnn, resnet"),
        (["train", "--config", "missing.yaml"], "Config file 'missing.yaml' does not exist"),
        (["train", "--resume", "runs/never"], "No run at 'runs/never'"),
        (["train", "--resume", "runs/bars", "--lr", "0.5"], "so these settings cannot change: --lr (0.01 -> 0.5)"),
        (["predict", "runs/bars", "nothing.jpg"], "No such image file 'nothing.jpg'"),
        (["evaluate", "runs/ghost"], "No run at 'runs/ghost'"),
        (["train", "--data", "mnist", "--no-download"], "MNIST is not in"),
        (["train", "--model", "lenet", "--image-size", "16"], "needs images of at least 28 px"),
    ]
    (tmp_path / "fake.png").write_text("not really a png")
    cases.append((["predict", "runs/bars", str(tmp_path / "fake.png")], "Cannot read '"))
    for argv, expected in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert err.startswith("error: ") and expected in err, (argv, err)
        assert "Traceback" not in err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for text in ("--data", "--model", "--optimizer", "--schedule", "--clip-grad", "--patience", "--augment",
                 "--resume", "--config", "one-cycle", "examples:", "deepworks predict"):
        assert text in out, text


def test_json_output_of_train_and_runs_when_empty(capsys):
    code, out, err = run_cli(capsys, "runs")
    assert code == 0 and "No runs" in out
    code, out, err = run_cli(capsys, "train", "--model", "mlp", "--epochs", "2", "--no-baseline", "--json", "--quiet")
    assert code == 0
    result = json.loads(out)
    assert result["run"].startswith("runs/digits-mlp") and result["test"]["accuracy"] > 0.5 and result["baseline"] is None


def test_the_installed_command_runs():
    out = subprocess.run([sys.executable, "-m", "deepworks", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("deepworks ")


def test_a_model_too_big_for_this_machine_is_refused_in_one_line_before_a_run_folder_is_made(capsys):
    assert main(["train", "--data", "digits", "--epochs", "1", "--width", "1000000000", "--runs-dir", "runs"]) == 2
    err = capsys.readouterr().err
    assert "The smallcnn model would have more parameters than a tensor can hold (--width 1,000,000,000)" in err
    assert "Traceback" not in err and not any(pathlib.Path("runs").glob("*"))
    assert main(["train", "--data", "digits", "--epochs", "1", "--width", "100000", "--runs-dir", "runs"]) == 2
    assert "Expected a smaller --width or --depth." in capsys.readouterr().err


# --- deepworks use: the one verb of every task, with the run's own options ------------------------------------------
def test_use_names_the_same_classes_as_predict(capsys, use_runs, tmp_path):
    import numpy as np
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(image)
    run = str(use_runs["img"])
    code, used, err = run_cli(capsys, "use", run, str(image), "--top-k", "2", "--json")
    assert code == 0, err
    code, predicted, err = run_cli(capsys, "predict", run, str(image), "--top-k", "2", "--json")
    assert code == 0, err
    assert json.loads(used) == json.loads(predicted) and len(json.loads(used)[0]["predictions"]) == 2
    assert run_cli(capsys, "use", run, str(image), "--top-k", "2")[1] == run_cli(capsys, "predict", run, str(image),
                                                                                 "--top-k", "2")[1]


def test_use_help_lists_the_options_of_that_run(capsys, use_runs):
    with pytest.raises(SystemExit) as exit_:
        main(["use", str(use_runs["img"]), "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--top-k" in out and "at least 1" in out and "--beam" not in out
    with pytest.raises(SystemExit):
        main(["use", str(use_runs["gru"]), "--help"])
    out = capsys.readouterr().out
    assert "--beam" in out and "--length-penalty" in out and "--attention" in out and "--top-k" not in out


def test_use_refuses_a_bad_option_value_with_the_face_s_message(capsys, use_runs, tmp_path):
    run = str(use_runs["img"])
    for value, expected in (("two", "predict: top_k must be a whole number. Received: 'two'."),
                            ("0", "predict: top_k must be at least 1")):
        code, out, err = run_cli(capsys, "use", run, "x.png", "--top-k", value)
        assert code == 2 and err.startswith("error: ") and expected in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as exit_:
        main(["use", run, "x.png", "--beam", "2"])  # an option of another task's runs
    assert exit_.value.code == 2 and "unrecognized arguments: --beam 2" in capsys.readouterr().err
    code, out, err = run_cli(capsys, "use", str(use_runs["gan"]), "--n", "2", "--out", str(tmp_path / "no.png"),
                             "--seed", "x")
    assert code == 2 and "sample: seed must be a whole number" in err and not (tmp_path / "no.png").exists()


def test_use_writes_text_and_pictures_as_the_aliases_do(capsys, use_runs, tmp_path):
    from deepworks.cards import verbs
    from deepworks.cli import build_parser

    settings = ("--length", "20", "--temperature", "0.8", "--seed", "3", "--json")
    code, used, err = run_cli(capsys, "use", str(use_runs["txt"]), "the ", *settings)
    assert code == 0, err
    code, generated, err = run_cli(capsys, "generate", str(use_runs["txt"]), "--prime", "the ", *settings)
    assert code == 0, err
    assert json.loads(used)[0]["text"] == json.loads(generated)["text"]
    code, out, err = run_cli(capsys, "use", str(use_runs["gan"]), "--n", "2", "--seed", "1", "--out",
                             str(tmp_path / "grid.png"))
    assert code == 0 and (tmp_path / "grid.png").read_bytes().startswith(b"\x89PNG") and "characters of base64" in out
    for verb in ("use", *verbs()):  # every verb of the cards is a command
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([verb, "--help"])
        assert exit_.value.code == 0


def help_of(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 0
    return capsys.readouterr().out


def flags_listed(help_text: str) -> set[str]:
    """The flags a --help describes, one a line (not those its examples use)."""
    import re

    return set(re.findall(r"^ {2}(--[a-z][\w-]*)", help_text, re.M))


def test_help_with_a_task_lists_only_the_settings_that_task_takes(capsys):
    everything = help_of(capsys, "train", "--help")
    assert {"--beam", "--latent-size", "--split"} <= flags_listed(everything)
    assert "deepworks train --task gan --help" in everything  # the description says how to narrow them
    translate = help_of(capsys, "train", "--task", "translate", "--help")
    assert "--beam" in flags_listed(translate) and "--latent-size" not in flags_listed(translate)
    assert {"--epochs", "--data", "--task", "--config"} <= flags_listed(translate)
    gan = help_of(capsys, "train", "--task=gan", "--help")
    assert "--latent-size" in flags_listed(gan) and "--beam" not in flags_listed(gan) and "--task gan takes" in gan
    assert "--split" in flags_listed(help_of(capsys, "automl", "--task", "audio", "--help"))
    assert "--split" not in flags_listed(help_of(capsys, "automl", "--help", "--task", "image"))
    assert flags_listed(help_of(capsys, "train", "--task", "mytasks:Mine", "--help")) == flags_listed(everything)


def test_help_with_a_task_shows_that_task_s_own_defaults(capsys):
    squashed = "".join(help_of(capsys, "train", "--task", "style", "--help").split())
    assert "[style'sdefault:4]" in squashed and "[style'sdefault:0.001]" in squashed  # batch size, learning rate
    assert "'sdefault:" not in "".join(help_of(capsys, "train", "--help").split())  # without a task: every task's


def test_train_s_help_says_what_each_task_trains_and_takes_from_the_cards(capsys):
    from deepworks.cards import BUILTIN_CARDS

    def squashed(text):  # argparse wraps lines, at spaces and after hyphens
        return "".join(text.split())

    everything = squashed(help_of(capsys, "train", "--help"))
    for card in BUILTIN_CARDS.values():
        assert squashed(card.default_run) in everything and squashed(card.data) in everything, card.name
        assert squashed(f"a built-in ({', '.join(card.builtins)}; default {card.builtins[0]})") in everything
    detect = squashed(help_of(capsys, "train", "--task", "detect", "--help"))
    assert squashed("Object detection: a Pascal VOC folder") in detect and squashed("Translation: a TSV") not in detect


def test_a_setting_of_another_task_still_parses_and_is_checked(capsys):
    from deepworks.cli import build_parser
    from deepworks.cli.train import setting_flags

    args = build_parser().parse_args(["train", "--task", "gan", "--beam", "3", "--no-bidirectional"])
    assert setting_flags(args) == {"task": "gan", "eval.beam": "3", "model.bidirectional": False}
    code, out, err = run_cli(capsys, "train", "--task", "gan", "--beam", "wide")
    assert code == 2 and err.strip() == "error: --beam expects int. Received: 'wide'."


def test_help_of_a_task_imports_no_torch():
    code = ("import sys\nfrom deepworks.cli import main\ntry:\n    main(['train', '--task', 'gan', '--help'])\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
