"""Speech recognition's data (data/speech.py) and model (models/asr.py): the three folder layouts, the built-in
fsdd-strings, and the CTC model's contract (padding changes nothing; greedy decoding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from deepworks.data.audio import write_wav
from deepworks.data.speech import DIGITS, alphabet_of, characters_note, load_folder, load_fsdd_strings
from deepworks.errors import DataError

RATE = 8000


def tone(seconds: float, pitch: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def test_ljspeech_common_voice_and_pairs_are_read_with_what_was_skipped_named(tmp_path):
    lj = tmp_path / "lj"
    (lj / "wavs").mkdir(parents=True)
    for i in range(3):
        write_wav(lj / "wavs" / f"LJ{i}.wav", tone(0.5 + i / 10), RATE)
    (lj / "metadata.csv").write_text("LJ0|One two.|one two\nLJ1|Three|three\nLJ9|missing|missing\nbad row\n")
    with pytest.warns(UserWarning, match=r"2 recording\(s\) or transcript\(s\) skipped:\n  metadata.csv row 4: "
                                         r"expected ID\|transcript, received 'bad row'\n  wavs/LJ9.wav: no such file"):
        got = load_folder(lj, None, strict=False)
    assert got.texts == ["one two", "three"] and got.rate == RATE and "LJSpeech" in got.description
    assert [len(w) for w in got.waves] == [4000, 4800]

    cv = tmp_path / "cv"
    (cv / "clips").mkdir(parents=True)
    write_wav(cv / "clips" / "a.wav", tone(0.4), RATE)
    write_wav(cv / "clips" / "b.wav", tone(0.4), RATE * 2)  # another rate: resampled to the most common one
    write_wav(cv / "clips" / "c.wav", tone(0.4), RATE)
    (cv / "validated.tsv").write_text("client_id\tpath\tsentence\nann\ta.wav\tHello there\nbob\tb.wav\tGood bye\n"
                                      "cy\tc.wav\tHi\n")
    got = load_folder(cv, None, strict=False)
    assert got.texts == ["Hello there", "Good bye", "Hi"] and got.speakers == ["ann", "bob", "cy"]
    assert got.rate == RATE and abs(len(got.waves[1]) - 1600) <= 1  # 3,200 samples at 16 kHz: 0.2 s

    pairs = tmp_path / "pairs"
    (pairs / "day1").mkdir(parents=True)
    write_wav(pairs / "day1" / "x.wav", tone(0.3), RATE)
    (pairs / "day1" / "x.txt").write_text("  first   words \n")
    write_wav(pairs / "y.wav", tone(0.3), RATE)
    (pairs / "z.txt").write_text("orphan")
    with pytest.warns(UserWarning, match="y.wav: no transcript"):
        got = load_folder(pairs, None, strict=False)
    assert got.texts == ["first words"]
    with pytest.raises(DataError, match=r"\(--strict\):\n  y.wav: no transcript .*\n  z.txt: a transcript without"):
        load_folder(pairs, None, strict=True)


def test_a_folder_with_nothing_usable_and_a_transcript_that_is_not_utf8_are_refused(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_folder(tmp_path / "nope", None, strict=False)
    write_wav(tmp_path / "a.wav", tone(0.3), RATE)
    (tmp_path / "a.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match=r"a.txt: Expected a UTF-8 transcript. Received a byte that is not UTF-8 at 3"):
        load_folder(tmp_path, None, strict=False)
    (tmp_path / "a.txt").write_text("   ")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no usable recording with a transcript"):
        load_folder(tmp_path, None, strict=False)


def test_the_alphabet_is_the_training_transcripts_characters_and_others_are_counted_and_named():
    alphabet = alphabet_of(["One two", "three"])
    assert alphabet == [" ", "e", "h", "n", "o", "r", "t", "w"]
    note = characters_note(["ten twelve!", "x", "vex"], ["a/1.txt", "2.txt", "3.txt"], alphabet, "test")
    assert note.startswith("Characters of the test transcripts outside the alphabet, which the model cannot write")
    assert "'x' in 2 (2.txt, 3.txt)" in note and "'!' in 1 (1.txt)" in note
    rare = characters_note(["3 one", "one two", "one two", "two"], list("abcd"), None, "training")
    assert rare.startswith("Characters of fewer than 3 training transcripts joined the alphabet: '3' in 1 (a). A digit")
    assert "'o'" not in rare and characters_note(["one"], ["a"], [" ", "e", "n", "o"], "test") is None


@pytest.mark.skipif(not (SHARED_DATA / "fsdd").exists(), reason="FSDD is not in the shared data folder")
def test_fsdd_strings_are_seeded_digit_strings_of_one_speaker_with_fsdd_s_test_recordings_held_out():
    a = load_fsdd_strings(SHARED_DATA, seed=3, train_strings=20, test_strings=10)
    b = load_fsdd_strings(SHARED_DATA, seed=3, train_strings=20, test_strings=10)
    assert a.texts == b.texts and all(np.array_equal(x, y) for x, y in zip(a.waves, b.waves))
    assert len(a.split["train"]) == 20 and len(a.split["test"]) == 10 and a.rate == 8000
    for text, wave in zip(a.texts, a.waves):
        words = text.split()
        assert 2 <= len(words) <= 7 and set(words) <= set(DIGITS)
        assert 0.15 * len(words) < len(wave) / a.rate < 1.0 * len(words) + 0.2 and np.abs(wave).max() <= 1
    assert len(set(a.speakers)) > 1


@pytest.mark.parametrize("encoder", ["bigru", "conformer"])
def test_the_ctc_model_answers_the_same_whatever_the_padding_and_greedy_merges_repeats(encoder):
    from deepworks.models.asr import CTCRecognizer, greedy

    torch.manual_seed(0)
    model = CTCRecognizer(RATE, symbols=5, width=16, depth=2, channels=4, encoder=encoder).eval()
    waves = torch.from_numpy(np.stack([tone(0.6), np.pad(tone(0.4, 300), (0, 1600))]))
    lengths = torch.tensor([4800, 3200])
    with torch.no_grad():
        out, steps = model(waves, lengths)
        alone, alone_steps = model(waves[1:, :3200], lengths[1:])
        padded, _ = model(torch.nn.functional.pad(waves, (0, 2000)), lengths)
    assert steps.tolist() == [(4800 - 256) // 80 // 4 + 1, 10] and alone_steps.tolist() == [10]
    close = 1e-5 if encoder == "bigru" else 3e-4  # attention's sums over more (masked) keys round differently
    assert torch.allclose(out[1, :10], alone[0], atol=close)
    assert torch.allclose(out, padded[:, :out.shape[1]], atol=close)
    assert torch.allclose(out.exp().sum(-1), torch.ones(out.shape[:2]), atol=1e-4)
    steps_of = torch.tensor([[0, 2, 2, 0, 2, 3, 3, 1]])  # blank, b, b, blank, b, c, c, a
    log_probs = torch.nn.functional.one_hot(steps_of, 5).float().log()
    assert greedy(log_probs, torch.tensor([8])) == [[(2, 1), (2, 4), (3, 5), (1, 7)]]
    assert greedy(log_probs, torch.tensor([5])) == [[(2, 1), (2, 4)]]


def test_speed_perturbation_and_spec_augment_change_only_real_frames_within_their_bounds():
    from deepworks.models.asr import played_faster, spec_augment

    torch.manual_seed(0)
    waves = torch.zeros(3, 8000)
    waves[0], waves[1, :4000], waves[2, :100] = 0.5, 0.5, 0.5
    played, lengths = played_faster(waves, torch.tensor([8000, 4000, 100]), (0.9, 1.1))
    assert all(n / 1.1 - 1 <= m <= n / 0.9 + 1 for n, m in zip([8000, 4000, 100], lengths.tolist()))
    assert played.shape[1] == int(lengths.max()) and played[1, int(lengths[1]):].abs().sum() == 0
    features = torch.randn(4, 64, 300)
    frames = torch.tensor([300, 200, 40, 1])
    masked = spec_augment(features, frames)
    changed = masked != features
    in_time = changed.all(1)  # frames masked in every band: a time mask (a band's mask also covers the padding)
    assert changed.any() and not in_time[1, 200:].any() and not in_time[2, 40:].any()
    assert in_time[0].sum() <= 2 * 10 and in_time[2].sum() <= 2 * 2  # at most 5 % of an utterance's frames a mask


def test_a_folder_of_pairs_trains_end_to_end_and_too_short_recordings_are_named(tmp_path):
    """The recipe (tasks/asr.py, not yet a built-in task) on ten recordings: it reads, splits, trains and tests."""
    import deepworks as dw
    from deepworks.tasks.asr import ctc_steps_needed, collate

    assert ctc_steps_needed([3, 3, 4, 4, 4, 5]) == 9 and ctc_steps_needed([]) == 0
    waves, lengths, targets, target_lengths = collate([(tone(0.1), [1, 2]), (tone(0.2), [3])])
    assert waves.shape == (2, 1600) and lengths.tolist() == [800, 1600] and targets.tolist() == [[1, 2], [3, 0]]
    data = tmp_path / "talk"
    data.mkdir()
    for i in range(10):
        write_wav(data / f"u{i}.wav", tone(0.8 + 0.1 * i, 200 + 50 * i), RATE)
        (data / f"u{i}.txt").write_text("hi there" if i % 2 else "low tone")
    write_wav(data / "short.wav", tone(0.3), RATE)
    (data / "short.txt").write_text("a transcript far too long for a recording of a third of a second")
    trained = dw.train(task="deepworks.tasks.asr:SpeechRecognition", data=str(data), width=16, depth=1, epochs=2,
                       batch_size=4, val_fraction=0.1, test_fraction=0.1, seed=1, runs_dir=str(tmp_path / "runs"),
                       alphabet="hilowe", progress=False)
    test = trained.results["test"]
    assert test["utterances"] >= 1 and 0 <= test["cer"] and 0 <= test["wer"] and "greedy_wer" in test
    meta = trained.task.meta
    assert meta["alphabet"] == list(" ehilow") and "low" in meta["words"] and meta["decoding"]["chosen"] in \
        meta["decoding"]["val_wer"]
    said = trained.transcribe(tone(1.0), beam=4, lm_weight=0.5, words=True)[0]
    assert set(said["transcript"].split()) <= set(meta["words"])
    with pytest.raises(DataError, match="beam must be from 1 to 128"):
        trained.transcribe(tone(1.0), beam=1000)
    found = trained.task.read()
    training = [found.names[i] for i in trained.task.split_indices(found)["train"]]
    assert any(name.endswith("short.wav") for name in training)  # seed 1 puts it there
    report = (trained.run.report_dir / "index.html").read_text()
    assert ("1 training recording(s) are too short for their transcripts under CTC (fewer 40 ms steps than letters) "
            "and were left out") in report
    assert "outside the alphabet, left out of what the model learns to write: &#x27;t&#x27; in" in report
    assert "alignment.png" in report and (trained.run.report_dir / "alignment.png").exists()
    from deepworks.serving.models import Served

    on_onnx = Served("talk", trained.run.path, "onnx")  # its export in ONNX Runtime: two outputs, as torch gives
    clip = [("u3", tone(1.1, 350))]
    assert on_onnx.face.infer(on_onnx.model, clip, torch.device("cpu"), {}) == \
        trained.face.infer(trained.serving, clip, torch.device("cpu"), {})


def test_a_long_recording_is_heard_in_overlapping_windows_and_joined_without_losing_or_doubling_a_word():
    """A stand-in model that 'hears' the symbol a step's samples encode (its mean times 10): whatever the windows, the
    transcript of 30 s is the one the whole signal spells, each word at its time."""
    from deepworks.tasks.asr_face import ASRFace

    alphabet = [" ", "a", "b", "c"]  # ids 1..4; 0 is the blank
    per_step = 320  # samples of one 40 ms step at 8 kHz

    def model(waves, lengths):
        steps = lengths // per_step
        codes = waves[:, :int(steps.max()) * per_step].reshape(len(waves), -1, per_step).mean(2)
        return torch.nn.functional.one_hot((codes * 10).round().long(), 5).float().clamp(min=1e-9).log(), steps

    pattern = [2, 0, 3, 0, 1, 0, 4, 4, 0, 1, 0]  # "ab c " per 11 steps (0.44 s)
    symbols = np.array(pattern * 69)  # 30.4 s
    wave = np.repeat(symbols / 10, per_step).astype(np.float32)
    face = ASRFace(None, {"alphabet": alphabet, "rate": RATE})
    said = face.infer(model, [("long", wave)], torch.device("cpu"), {})[0]
    assert said["transcript"] == " ".join(["ab c"] * 69)
    assert len(said["words"]) == 138 and said["words"][0] == {"word": "ab", "start": 0.0, "end": 0.12}
    assert said["words"][-1]["start"] == pytest.approx(68 * 0.44 + 0.24, abs=1e-6)
    starts = [w["start"] for w in said["words"]]
    assert starts == sorted(starts)
    with pytest.raises(DataError, match="A recording of 601 s is too long. Expected at most 600 s"):
        face.decode_inputs(np.zeros(601 * RATE, np.float32), {})
    two = [np.full(400 * RATE, 0.1, np.float32)] * 2  # each allowed, together too much work for one request
    assert len(face.decode_inputs(two, {})) == 2
    with pytest.raises(DataError, match="Expected at most 600 s of audio in one request. Received 800 s in 2"):
        face.decode_inputs(two, {}, trusted=False)


def test_split_speaker_leaves_each_speaker_out_and_scores_their_word_error_rate(tmp_path):
    """--split speaker on a Common Voice folder of two voices: one run per voice, each tested on the voice it never
    heard, summarised by WER (lower is better: the worst speaker is the highest); a folder that names no speaker
    is refused with the fix."""
    import deepworks as dw

    cv = tmp_path / "cv"
    (cv / "clips").mkdir(parents=True)
    rows = ["client_id\tpath\tsentence"]
    for i in range(12):
        write_wav(cv / "clips" / f"{i}.wav", tone(0.6 + 0.05 * i, 250 + 40 * i), RATE)
        rows.append(f"{'ann' if i % 2 else 'bob'}\t{i}.wav\t{'low hum' if i % 3 else 'high'}")
    (cv / "validated.tsv").write_text("\n".join(rows) + "\n")
    folds = dw.train(task="asr", data=str(cv), split="speaker", width=8, depth=1, epochs=1, batch_size=4,
                     val_fraction=0.2, runs_dir=str(tmp_path / "runs"), progress=False)
    summary = folds.summary
    assert summary["metric"] == "wer" and [r["speaker"] for r in summary["speakers"]] == ["ann", "bob"]
    assert all(r["utterances"] == 6 for r in summary["speakers"])
    assert summary["worst"]["wer"] == max(r["wer"] for r in summary["speakers"])
    assert "word error rate" in (folds.folder / "report" / "index.html").read_text()
    with pytest.raises(DataError, match="needs to know who speaks each recording.*client_id"):
        dw.train(task="asr", data="tones:20", split="speaker", runs_dir=str(tmp_path / "runs"), progress=False)


def test_sentencepiece_units_spell_transcripts_in_pieces_and_words_keep_their_times():
    """--units pieces:N without training: the recipe learns the pieces, spells targets in them, and a model of them
    (untrained here) is used as any other; words are made of several pieces' letters."""
    from deepworks.config import Config
    from deepworks.errors import ConfigError
    from deepworks.tasks.asr import SpeechRecognition
    from deepworks.tasks.asr_face import words_of

    task = SpeechRecognition(Config.from_dict({"task": "asr", "data": {"source": "tones:60", "units": "pieces:20"},
                                               "model": {"width": 8, "depth": 1}}))
    task.prepare(progress=False)
    alphabet = task.meta["alphabet"]
    assert len(alphabet) <= 20 and any(len(p) > 1 for p in alphabet) and "pieces" in task.meta
    ids = task.encode("Bad  ace")
    assert "".join(alphabet[i - 1] for i in ids).strip() == "bad ace" and len(ids) < len("bad ace")
    task.check_meta(task.meta)
    face, model = task.make_face(), task.build_model().eval()
    said = face.infer(face.serving_model(model), [("tone", tone(1.0))], torch.device("cpu"), {"beam": 4})
    assert isinstance(said[0]["transcript"], str)
    pieces = [" ba", "d", " a", "ce"]
    said = words_of([(1, 0.0), (2, 0.04), (3, 0.2), (4, 0.24)], pieces, 0.04)
    assert said["transcript"] == "bad ace" and said["words"][1] == {"word": "ace", "start": 0.2, "end": 0.28}
    with pytest.raises(ConfigError, match="Expected --units chars, pieces or pieces:N with N from 8 to 1000"):
        SpeechRecognition(Config.from_dict({"task": "asr", "data": {"source": "tones:20", "units": "pieces:2"}})
                          ).prepare(progress=False)


def test_the_digit_baseline_finds_words_by_their_energy_and_spells_what_the_classifier_hears():
    from deepworks.tasks.asr_baseline import energy_words, segmented_transcripts

    gap = np.zeros(int(0.15 * RATE), np.float32)
    short_gap = np.zeros(int(0.05 * RATE), np.float32)  # inside a word: closed
    wave = np.concatenate([gap, tone(0.3), short_gap, tone(0.2), gap, tone(0.4, 300), gap, tone(0.02), gap])
    pieces = energy_words(wave, RATE)
    assert [round(len(p) / RATE, 1) for p in pieces] == [0.6, 0.4]  # a 20 ms click is no word
    heard = segmented_transcripts(lambda clips: ["3" if len(c) > 0.5 * RATE else "1" for c in clips],
                                  [wave, np.zeros(RATE, np.float32)], RATE)
    assert heard == ["three one", ""]


def test_mp3_is_read_through_soundfile_and_requests_without_a_clip_or_with_a_vague_flag_are_refused():
    from deepworks.data.audio import UnreadableAudio, read_audio
    from deepworks.usage import Option
    from deepworks.tasks.asr_face import ASRFace

    with pytest.raises(UnreadableAudio, match=r"MP3 need the soundfile package|corrupt or truncated"):
        read_audio(b"ID3\x03\x00\x00\x00\x00\x00\x0f" + b"\x00" * 64)  # an MP3's tag: soundfile's to read
    face = ASRFace(None, {"alphabet": [" ", "a"], "rate": RATE})
    with pytest.raises(DataError, match="Expected a clip: a file path, .* Received nothing"):
        face.decode_inputs([None], {})
    with pytest.raises(DataError, match=r"samples that are not finite \(NaN or inf\)"):
        face.decode_inputs(np.array([0.1, np.nan], np.float32), {})
    assert [len(w) for _, w in face.decode_inputs(np.zeros(3, np.float32), {})] == [256]  # one frame, silence after
    with pytest.raises(DataError, match="transcribe: words must be true or false. Received: 'maybe'"):
        Option(bool, False).check("words", "maybe", "transcribe")
