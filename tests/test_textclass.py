"""Text classification (tasks/textclass.py): what is its own beyond the contract every task passes
(test_task_contract.py). The data readers are tested in test_textclass_data.py, the models and the encoder in
test_textclass_models.py."""

from __future__ import annotations

import json

import pytest

import deepworks as dw
from deepworks.cli import main
from deepworks.errors import DataError


@pytest.fixture(scope="module")
def moods(tmp_path_factory):
    """fastText on the generated moods (three classes, 200 sentences each), 12 epochs: a second on one thread."""
    runs = tmp_path_factory.mktemp("textclass")
    return dw.train(task="textclass", data="moods", epochs=12, runs_dir=str(runs), name="moods", progress=False)


def test_fasttext_learns_the_moods_far_beyond_chance_and_shows_its_tfidf_baseline(moods):
    test, base = moods.results["test"], moods.results["baseline"]
    assert test["accuracy"] >= 0.85 and test["macro_f1"] >= 0.85, test  # chance is 1 in 3
    assert [r["class"] for r in test["per_class"]] == ["angry", "happy", "sad"] and len(test["confusion"]) == 3
    assert base["model"].startswith("TF-IDF") and 0 <= base["accuracy"] <= 1 and base["train_samples"] > 400
    report = (moods.run.report_dir / "index.html").read_text()
    assert "TF-IDF" in report and "confusion.png" in report and "hashed word 1-2-grams" in report
    calibration = test["reliability"]
    assert sum(b["count"] for b in calibration["bins"]) == test["texts"] and 0 <= calibration["ece"] <= 1
    assert all(b["low"] <= b["confidence"] <= b["high"] for b in calibration["bins"])
    assert "reliability.png" in report and (moods.run.report_dir / "reliability.png").stat().st_size > 5000


def test_the_expected_calibration_error_is_the_mean_gap_between_confidence_and_accuracy():
    import numpy as np

    from deepworks.metrics.classes import reliability

    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.45, 0.55]])  # sure twice, unsure twice
    found = reliability(probs, np.array([0, 1, 0, 1]))  # right, wrong, right, right
    assert [(b["low"], b["count"], b["accuracy"]) for b in found["bins"]] == [(0.5, 1, 1.0), (0.6, 1, 1.0),
                                                                               (0.9, 2, 0.5)]
    assert found["ece"] == pytest.approx((0.45 + 0.4 + 2 * (0.925 - 0.5)) / 4, abs=1e-4)


def test_texts_are_classified_from_the_api_and_the_command_line_alike(moods, capsys):
    answers = moods.classify(["i am so happy today", "she is furious about the meeting"], top_k=3)
    assert [a["predictions"][0]["class"] for a in answers] == ["happy", "angry"]
    assert main(["classify", str(moods.run.path), "i am so happy today", "--top-k", "2", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said[0]["predictions"] == answers[0]["predictions"][:2]


def test_a_call_of_many_texts_answers_each_as_a_call_of_one_does(moods):
    import numpy as np

    texts = [f"she is {'so ' * n}happy and glad" if n % 2 else f"he is furious{' again' * n}" for n in range(40)]
    many = moods.classify(texts, top_k=3)
    one = [moods.classify(t, top_k=3)[0] for t in texts]  # sorted by length and grouped inside: the same answers
    for a, b in zip(many, one):
        assert [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]]
        assert np.allclose([p["probability"] for p in a["predictions"]], [p["probability"] for p in b["predictions"]],
                           atol=1e-5)


def test_what_is_not_text_or_too_long_is_refused_with_what_was_expected(moods):
    with pytest.raises(DataError, match="each text must be text. Received: a int"):
        moods.classify([3])
    with pytest.raises(DataError, match="Expected at most 100,000: send a document's paragraphs"):
        moods.classify("word " * 30_000)
    with pytest.raises(DataError, match="Expected one or more texts. Received: none"):
        moods.classify([])
    answer = moods.classify(["lone \ud800 surrogate " + "x" * 500])[0]  # what JSON cannot carry is not echoed back
    assert "\ud800" not in answer["input"] and len(answer["input"]) == 200


def test_evaluating_again_reads_with_the_run_s_own_encoder_and_another_file_by_class_name(tmp_path, capsys):
    rows = lambda pairs: "text,label\n" + "".join(f"{t},{c}\n" for t, c in pairs)  # noqa: E731
    (tmp_path / "a.csv").write_text(rows([("so glad and happy", "up"), ("so sad and gloomy", "down")] * 40))
    run = dw.train(task="textclass", data=str(tmp_path / "a.csv"), epochs=3, runs_dir=str(tmp_path / "runs"),
                   progress=False)
    table = run.task.meta["encoder"]["vocab_size"]
    (tmp_path / "a.csv").write_text(rows([(f"word{i} and more{i}", "up" if i % 2 else "down") for i in range(3000)]))
    assert dw.evaluate(run.run.path)["texts"] > 0  # more distinct words now: the run's own table is used, not a new one
    assert dw.load(run.run.path).task.meta["encoder"]["vocab_size"] == table
    (tmp_path / "b.csv").write_text(rows([("so happy", "up"), ("gloomy", "down"), ("what?", "sideways")]))
    assert main(["evaluate", str(run.run.path), "--data", str(tmp_path / "b.csv")]) == 2
    assert "classes this run never learned: sideways" in capsys.readouterr().err
    (tmp_path / "c.csv").write_text(rows([("so happy", "up"), ("so gloomy", "down")] * 5))
    assert dw.evaluate(run.run.path, data=str(tmp_path / "c.csv"))["texts"] == 10


def test_a_csv_of_your_own_trains_a_subword_cnn_and_a_wrong_column_is_named(tmp_path, capsys):
    rows = ["review,stars"] + [f"\"{w} film, truly {w}\",{s}" for w, s in
                               [("great", "pos"), ("awful", "neg"), ("lovely", "pos"), ("dreadful", "neg")] * 30]
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n")
    run = dw.train(task="textclass", data=str(tmp_path / "reviews.csv"), model="cnn", epochs=4, width=16,
                   embed_size=16, vocab_size=60, max_len=8, runs_dir=str(tmp_path / "runs"), progress=False)
    assert run.classes == ["neg", "pos"] and run.task.meta["encoder"]["kind"] == "sentencepiece"
    assert run.classify("a great film")[0]["predictions"][0]["class"] in ("neg", "pos")
    card = dw.export(run.run.path, out=str(tmp_path / "export"))  # traced and checked within --max-len 8
    assert card["graphs"][0]["verified"]["runtime"] == "onnxruntime"
    assert main(["train", "--task", "textclass", "--data", str(tmp_path / "reviews.csv"), "--text-column", "body",
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "body" in err and "review" in err and "Traceback" not in err


def test_the_tokens_that_decided_are_given_with_shares_that_add_up(moods, capsys):
    import torch

    from deepworks.tasks.textclass_face import encoder_of

    text = "i am so happy today"
    answer = moods(text, explain=True)[0]
    tokens = [t["token"] for t in answer["tokens"]]
    assert tokens == encoder_of(moods.task.meta).pieces(text)  # words and word pairs, in the order of the ids
    shares = {t["token"]: t["share"] for t in answer["tokens"]}
    assert max(shares, key=shares.get) == "happy" and answer["predictions"][0]["class"] == "happy"
    ids = torch.from_numpy(encoder_of(moods.task.meta).encode([text]))
    unknown = torch.where(ids != 0, torch.ones_like(ids), ids)  # the baseline: the same length, unknown words
    k = moods.classes.index("happy")
    with torch.no_grad():
        gap = float(moods.model.eval()(ids)[0, k] - moods.model(unknown)[0, k])
    assert sum(shares.values()) == pytest.approx(gap, rel=0.05, abs=0.02)  # Integrated Gradients' completeness
    with pytest.raises(DataError, match="explain takes at most 64 texts a call"):
        moods(["happy"] * 65, explain=True)
    report = moods.task.make_report().highlighted(moods.model, ids, torch.tensor([k]), [text], "cpu")[0]
    assert report.count("<span") == len(tokens) and "background:rgba(244,165,130" in report
    assert main(["classify", str(moods.run.path), text, "--explain"]) == 0
    assert "because of: 'happy' +" in capsys.readouterr().out  # the strongest first


def test_the_audit_names_copies_across_splits_a_text_under_two_labels_and_the_label_written_in_the_text():
    import numpy as np

    from deepworks.data.text_audit import audit_texts

    train = [f"a fine film number {i}" for i in range(60)] + [f"a dull film number {i}" for i in range(60)]
    texts = {"train": train + ["Same  text"], "val": ["a fine film number 3"], "test": ["same text", "other"]}
    labels = {"train": np.array([0] * 60 + [1] * 60 + [0]), "val": np.array([0]), "test": np.array([1, 0])}
    findings = audit_texts(texts, labels, ["good", "bad"])
    found = {f.check: f for f in findings}
    leaks = " ".join(f.message for f in findings if f.check == "leakage")
    assert "1 val text(s) also appear in train" in leaks and "1 test text(s) also appear in train" in leaks
    assert "'test #0 (same text)' = 'train #120 (Same  text)'" in leaks  # the same after lower-casing and spaces
    assert "filed under two different classes" in found["label-conflict"].message
    assert found["shortcut"].severity == "info" and "'fine' (good: 60 of 60 texts)" in found["shortcut"].message
    texts["train"] = [f"good: a film {i}" for i in range(60)] + [f"bad: a film {i}" for i in range(60)] + ["good!"]
    leak = [f for f in audit_texts(texts, labels, ["good", "bad"]) if f.check == "shortcut"][0]
    assert leak.severity == "warning" and "class's own name is written in its texts: 'good', 'bad'" in leak.message


@pytest.mark.parametrize("classes", ["ab", ["a"], ["a", 3]])
def test_a_saved_run_whose_classes_are_not_names_is_refused_before_anything_is_built(moods, classes):
    from deepworks.errors import ConfigError
    from deepworks.tasks.textclass import TextClassification

    with pytest.raises(ConfigError, match="Expected the run's classes as a list of 2 to 100,000 names"):
        TextClassification.check_meta({**moods.task.meta, "classes": classes})


def test_the_word_attack_flips_answers_by_swapping_few_words_and_each_flip_is_real(moods, capsys):
    import re

    result = moods.attack("words", max_words=2, samples=40, neighbours=5)
    assert result["texts"] == 40 and 0 < result["attacked"] <= 40
    rates = [p["success_rate"] for p in result["curve"]]
    assert [p["words"] for p in result["curve"]] == [1, 2] and rates == sorted(rates) and 0 <= rates[-1] <= 1
    for example in result["examples"]:
        said = moods.classify(example["adversarial"])[0]["predictions"][0]["class"]
        assert said == example["now"] != example["label"]  # the flipped text really is classified otherwise
        assert 1 <= len(example["changes"]) <= 2
        assert len(re.findall(r"\w+", example["adversarial"])) == len(re.findall(r"\w+", example["text"]))
    assert set(result["files"]) == {"curve", "examples", "json"}
    assert "attack-words.png" in (moods.run.report_dir / "index.html").read_text()
    assert main(["attack", str(moods.run.path), "--words", "0"]) == 2
    assert "Expected --words from 1 to 10. Received: 0." in capsys.readouterr().err
