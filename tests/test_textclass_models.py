"""The text classifiers' shared contract (models/textclass.py) and the texts -> ids encoder (data/subwords.py)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepworks.data.subwords import TextEncoder
from deepworks.errors import ConfigError, DataError
from deepworks.models.textclass import TEXT_CLASS_MODELS, BiGRUAttention, build_text_classifier

SMALL = {"width": 16, "embed_size": 16, "heads": 2}  # sizes that keep every test here under a few seconds
LEARN = {"fasttext": 0.05, "cnn": 0.01, "bigru": 0.01, "transformer": 0.003}  # Adam's learning rate per model


def small(name: str, vocab: int = 50, classes: int = 3, **settings):
    torch.manual_seed(0)
    return build_text_classifier(name, vocab, classes, **{**SMALL, **settings}).eval()


def ragged_ids(seed: int = 0) -> torch.Tensor:
    """(4, 9) ids with rows of 9, 6, 2 and 1 real tokens, padded on the right."""
    ids = torch.randint(2, 50, (4, 9), generator=torch.Generator().manual_seed(seed))
    for row, length in enumerate((9, 6, 2, 1)):
        ids[row, length:] = 0
    return ids


def toy_rule(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts of 3 to 20 ids in [2, 50), class 1 iff id 7 appears anywhere: half the texts get one 7 at a random
    place, the others none."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 21, (n,), generator=g)
    ids = torch.randint(2, 50, (n, 20), generator=g)
    ids[ids == 7] = 8
    labels = torch.arange(n) % 2
    where = (torch.rand(n, generator=g) * lengths).long()
    ids[labels == 1, where[labels == 1]] = 7
    ids[torch.arange(20) >= lengths[:, None]] = 0
    return ids, labels


@pytest.mark.parametrize("name", TEXT_CLASS_MODELS)
def test_padding_never_changes_the_answer(name):
    model, ids = small(name), ragged_ids()
    with torch.no_grad():  # any weights: biases well away from 0 show what padding alone would add
        for param_name, param in model.named_parameters():
            param.add_(0.5 if param_name.endswith("bias") else 0.0)
    longer = torch.cat([ids, torch.zeros(4, 8, dtype=torch.long)], 1)
    left = torch.stack([torch.cat([torch.zeros(3, dtype=torch.long), row[row != 0],
                                   torch.zeros(14 - int((row != 0).sum()), dtype=torch.long)]) for row in ids])
    with torch.no_grad():  # eval without gradients: torch's fast paths where it has them
        expected, padded, moved = model(ids), model(longer), model(left)
        alone = torch.cat([model(row[row != 0][None]) for row in ids])  # each text by itself, no padding at all
    assert expected.shape == (4, 3)
    assert torch.allclose(alone, expected, atol=1e-5)
    assert torch.allclose(padded, expected, atol=1e-5) and torch.allclose(moved, expected, atol=1e-5)
    assert torch.allclose(model(longer), expected, atol=1e-5)  # with gradients: the general paths
    assert model(torch.zeros(2, 5, dtype=torch.long)).isfinite().all()  # padding alone still gives numbers


@pytest.mark.parametrize("name", TEXT_CLASS_MODELS)
def test_each_model_learns_whether_a_token_appears_anywhere(name):
    ids, labels = toy_rule()
    model = small(name, classes=2)
    sparse = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse]  # fastText's table
    dense = [p for p in model.parameters() if all(p is not q for q in sparse)]
    optimizers = [torch.optim.Adam(dense, lr=LEARN[name])] + ([torch.optim.SparseAdam(sparse, lr=LEARN[name])]
                                                               if sparse else [])
    model.train()
    for _ in range(60):
        loss = F.cross_entropy(model(ids), labels)
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
    with torch.no_grad():
        accuracy = (model.eval()(ids).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.95, f"{name}: {accuracy:.3f} after 60 steps"


def onnx_export(model, path, dynamo: bool) -> None:
    example = torch.randint(2, 50, (2, 9), generator=torch.Generator().manual_seed(1))
    kwargs = {"input_names": ["ids"], "output_names": ["logits"], "opset_version": 18}
    if dynamo:
        dims = {0: torch.export.Dim("batch", min=1, max=1 << 20), 1: torch.export.Dim("length", min=1, max=1 << 20)}
        kwargs.update(dynamo=True, dynamic_shapes=(dims,), external_data=False)
    else:
        kwargs.update(dynamo=False, dynamic_axes={"ids": {0: "batch", 1: "length"}, "logits": {0: "batch"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), **kwargs)


# The legacy exporter for every model, the dynamo exporter for the two it exports in seconds: `deepworks export`
# tries dynamo first and falls back to legacy (exporting/exporter.py), so every model exports either way, and the
# BiGRU's and the Transformer's dynamo exports (8 s each here) are checked where they are made: the exporter
# compares every graph it writes with torch in ONNX Runtime, and falls back to legacy when they differ.
EXPORTS = [(name, False) for name in TEXT_CLASS_MODELS] + [("fasttext", True), ("cnn", True)]


@pytest.mark.parametrize("name,dynamo", EXPORTS, ids=[f"{n}-{'dynamo' if d else 'legacy'}" for n, d in EXPORTS])
def test_each_model_exports_to_onnx_that_answers_as_torch_at_another_batch_and_length(name, dynamo, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = small(name)
    onnx_export(model, tmp_path / "m.onnx", dynamo)
    ids = torch.randint(2, 50, (5, 17), generator=torch.Generator().manual_seed(2))
    ids[1, 5:], ids[3, 1:] = 0, 0
    with torch.no_grad():
        expected = model(ids).numpy()
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"ids": ids.numpy()})[0]
    assert got.shape == (5, 3)
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("name", TEXT_CLASS_MODELS)
def test_integrated_gradients_on_the_embedding_add_up_and_leave_padding_out(name):
    captum = pytest.importorskip("captum.attr")
    model, ids = small(name), ragged_ids()
    unknowns = torch.where(ids != 0, 1, 0)  # the same text's shape, every token unknown: the same mask
    attributions, delta = captum.LayerIntegratedGradients(model, model.embedding).attribute(
        ids, baselines=unknowns, target=torch.tensor([0, 1, 2, 0]), n_steps=32, return_convergence_delta=True)
    assert attributions.shape == (4, 9, 16) and attributions.isfinite().all()
    assert attributions[ids == 0].abs().max() == 0
    assert delta.abs().max() < 0.05


def test_the_bigru_keeps_its_attention_at_the_input_positions():
    model, ids = small("bigru"), ragged_ids()
    left = torch.cat([torch.zeros(1, 7, dtype=torch.long), ids[2:3, :2]], 1)  # row 2's two tokens, at the end
    model(ids)
    weights = model.last_attention
    assert weights.shape == (4, 9) and torch.allclose(weights.sum(1), torch.ones(4))
    assert weights[ids == 0].max() == 0
    model(left)
    assert torch.allclose(model.last_attention[0, 7:], weights[2, :2], atol=1e-6)


def test_the_bigru_backward_direction_reads_each_text_from_its_last_real_token():
    model, ids = small("bigru"), ragged_ids()
    seen = []
    model.backward_gru[0].register_forward_hook(lambda module, args, out: seen.append(args[0]))
    model(ids)
    for row, n in enumerate((ids != 0).sum(1).tolist()):
        assert torch.equal(seen[0][row, :n], model.embedding(ids[row, :n].flip(0)))
        assert (seen[0][row, n:] == 0).all()


def test_the_bigru_stacks_both_directions_at_depth_two():
    model = small("bigru", depth=2)
    assert isinstance(model, BiGRUAttention) and len(model.forward_gru) == 2
    assert model.forward_gru[1].input_size == 32  # the layer below's two directions
    ids = ragged_ids()
    assert torch.allclose(model(ids), model(torch.cat([ids, torch.zeros(4, 3, dtype=torch.long)], 1)), atol=1e-5)


def test_the_transformer_written_out_for_the_legacy_exporter_matches_torchs_layers():
    from deepworks.models.textclass import encoder_by_hand, real_tokens

    model, ids = small("transformer", depth=2), ragged_ids()
    x = torch.randn(4, 9, 16)
    mask = real_tokens(ids)
    expected = model.encoder(x, src_key_padding_mask=~mask)
    assert torch.allclose(encoder_by_hand(model.encoder, x, mask)[mask], expected[mask], atol=1e-5)


def test_building_says_which_models_and_sizes_there_are():
    with pytest.raises(ConfigError, match="fasttext, cnn, bigru, transformer"):
        build_text_classifier("lstm", 100, 2)
    with pytest.raises(ConfigError, match="divisible"):
        build_text_classifier("transformer", 100, 2, width=30, heads=4)
    with pytest.raises(ConfigError, match="num_classes"):
        build_text_classifier("cnn", 100, 1)
    with pytest.raises(ConfigError, match="dropout"):
        build_text_classifier("bigru", 100, 2, dropout=1.0)
    assert build_text_classifier("fasttext", 100, 2, depth=3).embedding.embedding_dim == 64  # defaults; depth unused
    with pytest.raises(Exception, match="max_len"):
        build_text_classifier("transformer", 100, 2, max_len=8)(torch.ones(1, 9, dtype=torch.long))


# ---- the encoder ----

TEXTS = ["A good movie, really good.", "Not a good movie at all!", "The plot was thin but the acting great.",
         "Terrible; I walked out.", "Great acting, great plot, great film."] * 4


def test_sentencepiece_fit_is_deterministic_and_round_trips_through_meta():
    one = TextEncoder.fit(TEXTS, "sentencepiece", vocab_size=60, max_len=32)
    two = TextEncoder.fit(list(TEXTS), "sentencepiece", vocab_size=60, max_len=32)
    assert one.to_meta() == two.to_meta()
    ids = one.encode(["A good film.", "the acting, the plot"])
    assert ids.dtype == np.int64 and (ids >= 0).all() and (ids < one.vocab_size).all()
    back = TextEncoder.from_meta(one.to_meta())
    assert (back.encode(["A good film.", "the acting, the plot"]) == ids).all()
    assert back.pieces("the acting") == one.pieces("the acting")
    for text, row in zip(["A good film.", "the acting, the plot"], ids):
        pieces = one.pieces(text)
        assert [one.processor.piece_to_id(p) for p in pieces] == [i for i in row if i]


def test_the_encoders_cut_at_max_len_and_say_how_many_were_cut():
    for kind, vocab in (("sentencepiece", 60), ("hashed", 1000)):
        encoder = TextEncoder.fit(TEXTS, kind, vocab_size=vocab, max_len=5)
        ids = encoder.encode(["good " * 50, "good", ""])
        assert ids.shape == (3, 5) and encoder.last_truncated == 1
        assert (ids[1, 1:] == 0).all() and ids[2, 0] == 1 and (ids[2, 1:] == 0).all()  # empty: one unknown
        assert len(encoder.pieces("good " * 50)) == 5 and encoder.pieces("") == ["<unk>"]
        assert encoder.encode(["good"]).shape == (1, 1)


def test_hashed_ids_are_words_and_bigrams_hashed_the_same_in_every_process():
    encoder = TextEncoder.fit([], "hashed", vocab_size=2 ** 18, max_len=16)
    assert encoder.pieces("Good movie!") == ["good", "movie", "good movie", "!", "movie !"]
    ids = encoder.encode(["Good movie!"])[0].tolist()
    assert ids[:3] == [34006, 196895, 155765]  # 2 + zlib.crc32(b"good movie") % (2**18 - 2) is 155765
    assert ids[2] == 2 + zlib.crc32(b"good movie") % (2 ** 18 - 2)
    code = ("from deepworks.data.subwords import TextEncoder; "
            "print(TextEncoder.fit([], 'hashed', vocab_size=2 ** 18, max_len=16).encode(['Good movie!'])[0].tolist())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert other.stdout.strip() == str(ids)


def test_control_characters_and_nul_bytes_never_reach_the_tokenizers():
    hostile = ["nul\x00inside", "\x1b[31mred\x07", "lone \ud800 surrogate", "\x00\x00"]
    encoder = TextEncoder.fit(TEXTS + hostile, "sentencepiece", vocab_size=60, max_len=16)
    pieces = "".join(encoder.processor.id_to_piece(i) for i in range(encoder.vocab_size))
    assert not any(c in pieces for c in "\x00\x1b\x07")
    ids = encoder.encode(hostile)
    assert ids.shape[0] == 4 and ids[3, 0] == 1
    padded = encoder.encode(["\x00 " * 100_000 + TEXTS[0]])[0]  # a long run of them does not fill the cut
    assert list(padded[padded != 0]) == list(encoder.encode([TEXTS[0]])[0][:16])
    hashed = TextEncoder.fit([], "hashed", vocab_size=100, max_len=16)
    assert hashed.pieces("nul\x00inside") == ["nul", "inside", "nul inside"]
    assert hashed.encode(hostile).shape[0] == 4


@pytest.mark.parametrize("meta, words", [
    ({"kind": "bpe", "vocab_size": 100, "max_len": 8}, "kind"),
    ({"kind": "hashed", "vocab_size": 10 ** 12, "max_len": 8}, "vocabulary size"),
    ({"kind": "hashed", "vocab_size": 100, "max_len": -1}, "max_len"),
    ({"kind": "hashed", "vocab_size": True, "max_len": 8}, "vocabulary size"),
    ({"kind": "sentencepiece", "vocab_size": 60, "max_len": 8, "model": "not base64 !!"}, "base64"),
    ({"kind": "sentencepiece", "vocab_size": 60, "max_len": 8,
      "model": base64.b64encode(b"garbage bytes").decode()}, "do not load"),
    ({"kind": "sentencepiece", "vocab_size": 60, "max_len": 8}, "SentencePiece model"),
    ("not a mapping", "mapping"),
])
def test_a_hostile_meta_is_refused_with_a_config_error(meta, words):
    with pytest.raises(ConfigError, match=words):
        TextEncoder.from_meta(meta)


def test_a_meta_whose_model_has_another_size_is_refused():
    meta = TextEncoder.fit(TEXTS, "sentencepiece", vocab_size=60, max_len=8).to_meta()
    with pytest.raises(ConfigError, match="pieces"):
        TextEncoder.from_meta({**meta, "vocab_size": meta["vocab_size"] + 1})


def test_sentencepiece_learns_from_a_seeded_sample_in_order_when_there_is_too_much_text(monkeypatch):
    from deepworks.data import subwords

    monkeypatch.setattr(subwords, "FIT_SENTENCES", 10)
    texts = [f"text number {i}" for i in range(100)] + ["", "   "]
    sample = subwords.fit_sample(texts, seed=3)
    assert len(sample) == 10 and sample == subwords.fit_sample(texts, seed=3) != subwords.fit_sample(texts, seed=4)
    assert sample == sorted(sample, key=lambda t: int(t.split()[-1]))  # the texts' own order
    monkeypatch.setattr(subwords, "FIT_CHARS", 50)
    assert sum(map(len, subwords.fit_sample(texts, seed=3))) <= 50
    with pytest.raises(DataError, match="all empty"):
        subwords.fit_sample(["", " \x00 "], seed=0)
