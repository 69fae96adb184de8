"""Audio: reading clips of any format and rate, the features checked against hand computations, and the message for
each kind of bad file."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import scipy.io.wavfile
import torch

from deepworks.data.audio import (MAX_SECONDS, UnreadableAudio, fit_length, list_folder, make_tones, read_audio,
                                  read_clips, resample)
from deepworks.errors import DataError
from deepworks.models.audio import LogMel, dct_matrix, mel_filterbank


# --- features ---------------------------------------------------------------------------------------------------------
def test_the_mel_filterbank_matches_a_hand_computation():
    """One filter over 0-4 kHz at 8 kHz with 8-point FFTs: its centre is the midpoint on the mel scale,
    mel(4000) = 2595 log10(1 + 4000/700) = 2146.06, halved = 1073.03 mel = 700 (10^(1073.03/2595) - 1) = 1113.84 Hz.
    The bins at 0, 1000, 2000, 3000 and 4000 Hz weigh 0, 1000/1113.84, (4000-2000)/(4000-1113.84),
    (4000-3000)/(4000-1113.84) and 0."""
    centre = 700 * (10 ** (2595 * np.log10(1 + 4000 / 700) / 2 / 2595) - 1)
    assert centre == pytest.approx(1113.84, abs=0.01)
    expected = [0, 1000 / centre, 2000 / (4000 - centre), 1000 / (4000 - centre), 0]
    assert np.allclose(mel_filterbank(1, 8, 8000)[0], expected, atol=1e-6)
    bank = mel_filterbank(40, 256, 8000)
    assert bank.shape == (40, 129) and (bank.max(1) > 0.5).all() and (bank.max(1) <= 1).all()  # no filter empty


def test_stft_frames_are_the_windowed_slices_of_the_clip():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000).astype(np.float32)
    front = LogMel(8000)
    assert (front.n_fft, front.hop) == (256, 80)
    power = front.power(torch.from_numpy(x)[None])[0].numpy()
    frames = 1 + (1000 - 256) // 80
    assert power.shape == (129, frames) == (129, front.frames(1000))
    window = np.hanning(257)[:-1]  # periodic Hann
    for i in (0, 3, frames - 1):
        spectrum = np.fft.rfft(x[i * 80:i * 80 + 256] * window)
        assert np.allclose(power[:, i], np.abs(spectrum) ** 2, rtol=1e-3, atol=1e-3)
    logmel = front(torch.from_numpy(x)[None])[0].numpy()
    assert np.allclose(logmel, np.log(mel_filterbank(40, 256, 8000) @ power + 1e-6), atol=1e-4)


def test_mfcc_is_the_orthonormal_dct_of_the_log_mel():
    d = dct_matrix(13, 40).numpy()
    assert np.allclose(d @ d.T, np.eye(13), atol=1e-5)
    x = torch.randn(2, 4000)
    assert np.allclose(LogMel(8000, mfcc=13)(x).numpy(), d @ LogMel(8000)(x).numpy(), atol=1e-3)


def test_resampling_keeps_a_tone_s_frequency():
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    down = resample(tone, 16000, 8000)
    assert len(down) == 8000
    peak = np.argmax(np.abs(np.fft.rfft(down))) * 8000 / len(down)
    assert peak == pytest.approx(440, abs=1)
    high = np.sin(2 * np.pi * 6000 * t).astype(np.float32)  # above 8 kHz's 4 kHz limit: filtered out, not aliased
    assert np.abs(resample(high, 16000, 8000)[100:-100]).max() < 0.05


def test_clips_are_cropped_to_their_middle_or_padded_on_both_sides():
    assert fit_length(np.arange(10.0), 4).tolist() == [3, 4, 5, 6]
    assert fit_length(np.ones(2), 6).tolist() == [0, 0, 1, 1, 0, 0]


# --- reading files ------------------------------------------------------------------------------------------------------
def wav_bytes(rate: int, samples: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, rate, samples)
    return buffer.getvalue()


def pcm24(rate: int, samples: np.ndarray) -> bytes:
    """A 24-bit PCM WAV written by hand (scipy writes no 24-bit)."""
    ints = np.clip(np.round(samples * 2 ** 23), -2 ** 23, 2 ** 23 - 1).astype(np.int32)
    data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 3, 3, 24)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


def test_16_bit_32_bit_float_24_bit_and_stereo_files_read_as_the_same_sound():
    t = np.arange(800) / 8000
    wave = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    as16, _ = read_audio(wav_bytes(8000, (wave * 32767).astype(np.int16)))
    as32f, _ = read_audio(wav_bytes(8000, wave))
    as24, rate = read_audio(pcm24(8000, wave))
    stereo, _ = read_audio(wav_bytes(8000, np.stack([wave, wave], 1)))
    assert rate == 8000 and stereo.shape == (800, 2)
    for other in (as32f[:, 0], as24[:, 0], stereo.mean(1)):
        assert np.allclose(as16[:, 0], other, atol=1e-3)


@pytest.mark.parametrize("make, reason", [
    (lambda: b"", "empty file (0 bytes)"),
    (lambda: b"RIFF\x10\x00\x00\x00WAVEfmt \x10\x00", "corrupt WAV header"),
    (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a WAV, FLAC, OGG or MP3 file"),
    (lambda: wav_bytes(1, np.zeros(100, np.int16)), "a sample rate out of range: Expected 1,000 to 10,000,000 Hz "
                                                     "(8,000 for speech, 44,100 for music). Received 1 Hz"),
    (lambda: wav_bytes(8000, np.zeros(0, np.int16)), "no samples"),
])
def test_each_unusable_file_gets_its_reason(make, reason):
    with pytest.raises(UnreadableAudio, match=reason.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        read_audio(make())


def test_a_ten_hour_recording_is_refused_from_its_header_before_it_is_read():
    header = bytearray(wav_bytes(8000, np.zeros(8, np.int16)))
    hours = 10 * 3600 * 8000 * 2
    header[40:44] = struct.pack("<I", hours)  # the data chunk says 10 hours; the file is 60 bytes
    with pytest.raises(UnreadableAudio, match=r"36,000 s long. Expected clips of at most 600 s \(10 minutes\)"):
        read_audio(bytes(header))


def test_a_folder_of_clips_is_read_unusable_files_are_listed_once_and_strict_stops(tmp_path):
    tones = make_tones(3, 0)
    for k, name in enumerate(["low", "high"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            rate = 16000 if i == 0 else 8000  # one clip at another rate: resampled
            clip = tones.samples[tones.labels == k][i]
            scipy.io.wavfile.write(tmp_path / name / f"{i}.wav", rate, resample(clip, 8000, rate))
    (tmp_path / "low" / "broken.wav").write_bytes(b"RIFF1234WAVEjunk")
    (tmp_path / "high" / "quiet.wav").write_bytes(wav_bytes(8000, np.zeros(400, np.int16)))
    files, labels = list_folder(tmp_path)
    with pytest.warns(UserWarning, match="2 file\\(s\\) cannot be used; skipped them"):
        clips = read_clips(files, labels, None, None, False, "the folder")
    assert clips.classes == ["high", "low"] and clips.rate == 8000 and clips.samples.shape[0] == 6
    assert {why for _, why in clips.skipped} == {"corrupt WAV header (no 'fmt ' chunk before the sound)",
                                                 "silence only (every sample under 0.0001)"}
    assert any("resampled to 8,000 Hz" in n for n in clips.notes)
    with pytest.raises(DataError, match=r"broken.wav: corrupt WAV header"):
        read_clips(files, labels, None, None, True, "the folder")


def test_a_class_with_one_clip_is_said(tmp_path):
    tones = make_tones(2, 1)
    for k, (name, n) in enumerate([("a", 2), ("b", 1)]):
        (tmp_path / name).mkdir()
        for i in range(n):
            scipy.io.wavfile.write(tmp_path / name / f"{i}.wav", 8000, tones.samples[tones.labels == k][i])
    with pytest.warns(UserWarning, match=r"Class\(es\) \['b'\] have a single clip"):
        read_clips(*list_folder(tmp_path), None, None, False, "the folder")


def test_the_generated_tones_are_the_same_for_the_same_seed():
    a, b, c = make_tones(4, 0), make_tones(4, 0), make_tones(4, 1)
    assert np.array_equal(a.samples, b.samples) and not np.array_equal(a.samples, c.samples)
    assert a.samples.shape == (20, 4000) and np.bincount(a.labels).tolist() == [4] * 5


# --- the task -------------------------------------------------------------------------------------------------------------
def test_a_small_model_learns_to_tell_the_generated_tones_apart(tones_run):
    test = tones_run.results["test"]
    assert test["accuracy"] >= 0.95, test  # 1.0 here; chance is 0.2
    assert [r["class"] for r in test["per_class"]] == ["low tone", "high tone", "rising chirp", "falling chirp",
                                                        "two tones"]


def test_predict_takes_files_bytes_and_arrays_at_any_rate_alike(tones_run, tmp_path):
    clips = make_tones(1, 9)
    chirp = clips.samples[2]
    scipy.io.wavfile.write(tmp_path / "chirp.wav", 16000, resample(chirp, 8000, 16000))
    from_file = tones_run.predict(str(tmp_path / "chirp.wav"), top_k=1)[0]["predictions"][0]
    from_bytes = tones_run.predict((tmp_path / "chirp.wav").read_bytes(), top_k=1)[0]["predictions"][0]
    from_array = tones_run.predict(chirp, top_k=1)[0]["predictions"][0]
    assert from_file["class"] == from_bytes["class"] == from_array["class"] == "rising chirp"
    assert from_file["probability"] == pytest.approx(from_bytes["probability"])
    with pytest.raises(DataError, match="Cannot use 'clip 0' as a clip: not a WAV, FLAC, OGG or MP3 file"):
        tones_run.predict(b"hello there, not audio at all")


# An interrupted audio run resumes to the same weights, with time shift, noise and speed drawn at random: the contract
# harness's resume test (tests/test_task_contract.py), whose tiny audio run (cards.py) has all three.


def test_the_server_answers_a_wav_upload_base64_and_samples_as_predict_does(tones_run, tmp_path):
    import base64

    from fastapi.testclient import TestClient

    from deepworks.serving import build_app

    clips = make_tones(1, 8)
    wav = wav_bytes(16000, resample(clips.samples[0], 8000, 16000))
    expected = tones_run.predict(wav, top_k=2)[0]["predictions"]
    with TestClient(build_app([str(tones_run.run.path)])) as c:
        upload = c.post("/v1/models/tones/predict", files=[("file", ("low.wav", wav, "audio/wav"))], data={"top_k": "2"})
        assert upload.status_code == 200, upload.text
        assert upload.json()["outputs"][0]["predictions"] == expected
        encoded = c.post("/v1/models/tones/predict", json={"inputs": [{"base64": base64.b64encode(wav).decode()}],
                                                          "top_k": 2})
        assert encoded.json()["outputs"][0]["predictions"] == expected
        samples = c.post("/v1/models/tones/predict", json={"inputs": clips.samples[0].tolist(), "top_k": 1})
        assert samples.json()["outputs"][0]["predictions"][0]["class"] == "low tone"
        bad = c.post("/v1/models/tones/predict", files=[("file", ("x.wav", b"RIFF0000WAVEnope", "audio/wav"))])
        assert bad.status_code == 400 and "Cannot use 'clip 0' as a clip: corrupt WAV header" in bad.json()["error"]
        no_channels = bytearray(wav)
        no_channels[22:24] = b"\0\0"  # nChannels: scipy would divide by it
        bad = c.post("/v1/models/tones/predict", files=[("file", ("x.wav", bytes(no_channels), "audio/wav"))])
        assert bad.status_code == 400 and "Expected 1 channel (mono) or more. Received 0 channels" in bad.text
        prime_rate = wav_bytes(9_999_991, clips.samples[0])
        prime = c.post("/v1/models/tones/predict", files=[("file", ("p.wav", prime_rate, "audio/wav"))])
        assert prime.status_code == 200, prime.text  # resampled with bounded work (test_audio_files.py)
        v2 = c.post("/v2/models/tones/infer", json={"inputs": [{"name": "clips", "datatype": "FP32",
                                                               "shape": [1, len(clips.samples[0])],
                                                               "data": clips.samples[0].tolist()}]})
        assert v2.status_code == 200, v2.text
        assert np.argmax(v2.json()["outputs"][0]["data"]) == 0  # low tone


# --- levelling, augmentation, and leaving a speaker out ----------------------------------------------------------------
def test_levelled_features_do_not_depend_on_loudness_and_average_to_zero_over_time():
    x = torch.from_numpy(make_tones(2, 3).samples)
    front = LogMel(8000, level=True)
    loud, quiet = front(x), front(x * 0.05)
    assert torch.allclose(loud, quiet, atol=1e-3)
    assert loud.mean(2).abs().max() < 1e-4
    assert not torch.allclose(LogMel(8000)(x), LogMel(8000)(x * 0.05), atol=1)  # without levelling they differ


def peak_hz(x: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * rate / len(x))


def test_speed_perturbation_raises_a_tone_s_pitch_by_its_speed_and_is_seeded():
    from deepworks.tasks.audio import change_speed

    t = np.arange(8000) / 8000
    tone = torch.from_numpy(np.sin(2 * np.pi * 500 * t).astype(np.float32))[None]
    faster = change_speed(tone, (1.1, 1.1))[0].numpy()
    assert peak_hz(faster) == pytest.approx(550, abs=2)
    assert np.abs(faster[-300:]).max() == 0  # played faster, it ends early: silence after
    torch.manual_seed(1)
    a = change_speed(tone.repeat(4, 1), (0.9, 1.1))
    torch.manual_seed(1)
    assert torch.equal(a, change_speed(tone.repeat(4, 1), (0.9, 1.1)))
    assert 450 <= min(peak_hz(r) for r in a.numpy()) and max(peak_hz(r) for r in a.numpy()) <= 550


def test_noise_is_mixed_in_at_the_asked_distance_below_the_sound():
    from deepworks.tasks.audio import add_noise

    clip = torch.zeros(1, 8000)
    clip[0, 2000:6000] = torch.sin(torch.arange(4000) * 0.3)  # power 0.5 where it sounds; silence around
    torch.manual_seed(0)
    noisy = add_noise(clip.repeat(8, 1), (20.0, 20.0))
    noise = noisy - clip
    assert 10 * torch.log10(0.5 / noise.square().mean()).item() == pytest.approx(20, abs=0.5)


def write_speakers_csv(folder, speakers=("ann", "bob", "cy"), per_class=6):
    """Tones as WAV files, a CSV of path,label,speaker: each speaker's clips from their own seed."""
    from deepworks.data.audio import TONES

    rows = ["path,label,speaker"]
    for s, speaker in enumerate(speakers):
        clips = make_tones(per_class, 10 + s)
        for i, (x, y) in enumerate(zip(clips.samples, clips.labels)):
            scipy.io.wavfile.write(folder / f"{speaker}-{i}.wav", 8000, x)
            rows.append(f"{speaker}-{i}.wav,{TONES[y]},{speaker}")
    (folder / "clips.csv").write_text("\n".join(rows) + "\n")
    return folder / "clips.csv"


def test_leaving_each_speaker_out_trains_a_run_per_speaker_tested_on_that_speaker_alone(tmp_path):
    import json

    import deepworks as dw
    from deepworks.experiments.crossval import Folds

    csv = write_speakers_csv(tmp_path, per_class=10)
    common = dict(task="audio", data=str(csv), split="speaker", epochs=15, batch_size=16,
                  runs_dir=str(tmp_path / "runs"), progress=False)
    folds = dw.train(**common)
    assert isinstance(folds, Folds) and [r["speaker"] for r in folds.summary["speakers"]] == ["ann", "bob", "cy"]
    for row, run in zip(folds.summary["speakers"], folds.runs):
        assert row["clips"] == 50 and run.results["test"]["per_speaker"] == [
            {"speaker": row["speaker"], "accuracy": row["accuracy"], "clips": 50}]
        assert run.results["splits"]["train"] + run.results["splits"]["val"] == 100
    assert folds.summary["mean_accuracy"] >= 0.75, folds.summary  # 0.91-0.92 over three seeds here; chance is 0.2
    assert folds.summary["worst"]["accuracy"] == min(r["accuracy"] for r in folds.summary["speakers"])
    assert json.loads((folds.folder / "summary.json").read_text())["mean_accuracy"] == folds.summary["mean_accuracy"]
    assert "bob" in (folds.folder / "report" / "index.html").read_text()
    assert [r["name"] for r in dw.runs(tmp_path / "runs")] == []  # the folder holds runs; it is not one itself
    stamps = [(r.run.path / "results.json").stat().st_mtime_ns for r in folds.runs]
    again = dw.train(**common)  # the same command again: the finished runs are read back, not trained anew
    assert [(r.run.path / "results.json").stat().st_mtime_ns for r in again.runs] == stamps


def test_a_split_by_speaker_needs_speakers_and_a_known_name(tmp_path):
    import deepworks as dw
    from deepworks.errors import ConfigError

    csv = write_speakers_csv(tmp_path, per_class=2)
    with pytest.raises(DataError, match=r"Expected source, speaker, or speaker:NAME with NAME one of ann, bob, cy\. "
                                        r"Received: 'speaker:dan'"):
        dw.train(task="audio", data=str(csv), split="speaker:dan", epochs=1, progress=False)
    alone = tmp_path / "alone"
    alone.mkdir()
    with pytest.raises(DataError, match=r"the data has 1 speaker\(s\): ann\. Expected at least two"):
        dw.train(task="audio", data=str(write_speakers_csv(alone, speakers=("ann",), per_class=2)), split="speaker",
                 epochs=1, progress=False)
    with pytest.raises(DataError, match="--split speaker needs to know who speaks each clip, and generated tones and chirps .* does not say"):
        dw.train(task="audio", split="speaker", epochs=1, progress=False)
    with pytest.raises(ConfigError, match="--split speaker is for sound classification and speech recognition, whose data knows where each example comes from"):
        dw.train(task="image", data="digits", split="speaker", epochs=1, progress=False)
    with pytest.raises(ConfigError, match="--augment crop\\+noise does not fit --task image; choose one of"):
        dw.train(task="image", data="digits", augment="crop+noise", epochs=1, progress=False)


def test_a_run_made_before_levelling_rebuilds_as_it_was_trained():
    """Runs saved without meta['front'] took plain log-mel averaged over time; they still load as that."""
    from deepworks.config import Config
    from deepworks.tasks.audio import AudioClassification

    old = {"classes": ["a", "b"], "rate": 8000, "length": 8000, "n_mels": 40}
    model = AudioClassification.from_meta(Config(task="audio"), old).build_model()
    assert model.classifier.pool == "mean" and not model.features.level
    new = AudioClassification.from_meta(Config(task="audio"), {**old, "front": {"level": True, "pool": "max"}})
    assert new.build_model().classifier.pool == "max"


def test_the_served_model_computes_the_dft_as_a_convolution_to_the_same_probabilities(tones_run):
    from deepworks.models.audio import ConvPower, LogMel

    x = torch.from_numpy(make_tones(2, 5).samples)
    front = LogMel(8000)
    assert torch.allclose(ConvPower(front.n_fft, front.hop, front.window)(x), front.power(x), rtol=1e-3, atol=1e-3)
    model = tones_run.model.eval()
    with torch.no_grad():
        assert torch.allclose(tones_run.serving(x), model(x).softmax(1), atol=1e-5)


def test_the_audio_face_answers_from_config_and_meta_alone_without_the_recipe_module(tones_run):
    """Serving builds the face from model.json; it never needs the recipe's module (data, augmentation, training)."""
    import subprocess
    import sys

    from deepworks.tasks.audio_face import AudioFace

    face = AudioFace(tones_run.cfg, tones_run.task.meta)
    clips = make_tones(2, 7).samples
    answers = face.infer(tones_run.serving, face.decode_inputs(clips, {}), tones_run.device, {})
    assert [face.encode_result(a, {"top_k": 1}) for a in answers] == tones_run.predict(clips, top_k=1)
    assert type(tones_run.face) is AudioFace and face.verb == "predict" and face.max_items == 256
    code = ("import sys; import deepworks.tasks.audio_face; "
            "assert 'deepworks.tasks.audio' not in sys.modules, sorted(m for m in sys.modules if 'deepworks' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_onnx_export_answers_as_predict_does(tones_run):
    import onnxruntime

    from deepworks.exporting.exporter import export_run

    card = export_run(tones_run.run.path, "onnx")
    assert card["inputs"][0]["sample_rate"] == 8000 and card["graphs"][0]["file"] == "classifier.onnx"
    session = onnxruntime.InferenceSession(str(tones_run.run.path / "export" / "onnx" / "classifier.onnx"))
    clips = make_tones(2, 6).samples
    (onnx,) = session.run(None, {"clips": clips})
    torch_probs = tones_run.serving(torch.from_numpy(clips)).detach().numpy()
    assert np.abs(onnx - torch_probs).max() < 1e-4
    top = [r["predictions"][0]["class"] for r in tones_run.predict(clips, top_k=1)]
    assert top == [card["classes"][i] for i in onnx.argmax(1)]

    from fastapi.testclient import TestClient

    from deepworks.serving import build_app

    with TestClient(build_app([str(tones_run.run.path)], runtime="onnx")) as c:  # the server, in ONNX Runtime
        assert c.get("/v1/models/tones").json()["runtime"] == "onnx"
        answer = c.post("/v1/models/tones/predict", json={"inputs": clips.tolist(), "top_k": 1}).json()
        assert [o["predictions"][0]["class"] for o in answer["outputs"]] == top


@pytest.mark.parametrize("name", ["gru", "lenet"])
def test_a_recurrent_net_over_frames_and_an_image_model_over_the_spectrogram_learn_the_tones(name, tmp_path):
    import deepworks as dw

    trained = dw.train(task="audio", model=name, epochs=12, width=32 if name == "gru" else None, depth=1,
                       runs_dir=str(tmp_path), progress=False)
    assert trained.results["test"]["accuracy"] >= 0.8, trained.results["test"]  # 0.93-0.98 over 3 seeds here; chance 0.2


def test_every_audio_model_maps_clips_to_class_scores():
    from deepworks.config import Config
    from deepworks.tasks.audio import AudioClassification

    meta = {"classes": ["a", "b", "c"], "rate": 8000, "length": 4000, "n_mels": 40, "front": {"level": True}}
    for name in AudioClassification.models:
        cfg = Config(task="audio")
        cfg.model.name = name
        model = AudioClassification.from_meta(cfg, meta).build_model().eval()
        assert model(torch.randn(2, 4000)).shape == (2, 3), name
    mfcc = AudioClassification.from_meta(Config(task="audio"), {**meta, "front": {"level": True, "mfcc": 13}})
    model = mfcc.build_model().eval()
    assert model.features(torch.randn(2, 4000)).shape[1] == 13 and model(torch.randn(2, 4000)).shape == (2, 3)


def test_features_mfcc_trains_on_thirteen_coefficients(tmp_path):
    import deepworks as dw

    trained = dw.train(task="audio", features="mfcc", epochs=1, runs_dir=str(tmp_path), progress=False)
    assert trained.task.meta["front"]["mfcc"] == 13 and len(trained.task.meta["band_mean"]) == 13


def test_pretrained_audio_hears_the_spectrogram_as_a_picture_with_imagenet_weights():
    import deepworks as dw
    from deepworks.config import Config
    from deepworks.errors import ConfigError
    from deepworks.tasks.audio import AudioClassification

    cfg = Config(task="audio")
    cfg.model.pretrained = True
    task = AudioClassification(cfg, {"classes": ["a", "b"], "rate": 8000, "length": 4000, "n_mels": 40,
                                     "front": {"level": True}})
    assert cfg.model.name == "efficientnet_lite0"  # what --pretrained starts from when no model is named
    model = task.build_model()
    stem = model.classifier.image._conv_stem.weight.clone()
    with pytest.warns(UserWarning, match=r"Started from the pretrained efficientnet_lite0: 29\d of 296 tensors "
                                         r"\(ImageNet\); the spectrogram is shown to it as a 96 px picture"):
        task.start_from(model)
    assert not torch.equal(stem, model.classifier.image._conv_stem.weight)
    assert model(torch.randn(2, 4000)).shape == (2, 2)
    with pytest.raises(ConfigError, match="--pretrained starts audio from ImageNet's efficientnet_lite0.*--model gru"):
        dw.train(task="audio", pretrained=True, model="gru", epochs=1, progress=False)
def test_the_report_shows_misheard_clips_with_saliency_and_players(tmp_path):
    import deepworks as dw

    trained = dw.train(task="audio", epochs=1, batch_size=256, runs_dir=str(tmp_path), progress=False)
    assert trained.results["test"]["accuracy"] < 1  # one epoch: some clips are misheard
    report = trained.run.report_dir
    page = (report / "index.html").read_text()
    assert "Misheard clips" in page and "misheard.png" in page and "<audio controls" in page
    rate, samples = scipy.io.wavfile.read(report / "misheard-0.wav")
    assert rate == 8000 and samples.dtype == np.int16 and len(samples) == trained.task.meta["length"]
