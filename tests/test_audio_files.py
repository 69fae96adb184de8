"""Hostile and odd audio files: a prime sample rate costs bounded work, a header with 0 channels or any corrupt header
is an UnreadableAudio (skipped in training, a 400 from the server), float samples beyond full scale are scaled down
with a note or refused, and bytes after the declared sound are said."""

from __future__ import annotations

import io
import random
import struct

import numpy as np
import pytest
import scipy.io.wavfile

from deepworks.data.audio import UnreadableAudio, list_folder, make_tones, read_audio, read_clips, resample


def wav_bytes(rate: int, samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, rate, samples)
    return buffer.getvalue()


def tone(n: int, peak: float = 0.5) -> np.ndarray:
    return (peak * np.sin(np.arange(n) * 0.05)).astype(np.float32)


def pcm16(samples: np.ndarray) -> np.ndarray:
    return (samples * 32767).astype(np.int16)


# --- sample rates: bounded work -------------------------------------------------------------------------------------
def test_a_prime_sample_rate_is_resampled_with_bounded_factors_and_memory(monkeypatch):
    """9,999,991 Hz is prime: its exact ratio to 8,000 Hz is 8,000/9,999,991, a filter of 200 M taps (5 GB)."""
    import tracemalloc

    import scipy.signal

    from deepworks.data.audio import prepare_clip

    real, used = scipy.signal.resample_poly, []

    def spy(x, up, down, **kwargs):
        used.append((up, down))
        assert max(up, down) <= 2 ** 14, f"a filter of {20 * max(up, down):,} taps"
        return real(x, up, down, **kwargs)

    monkeypatch.setattr(scipy.signal, "resample_poly", spy)
    samples, rate = read_audio(wav_bytes(9_999_991, pcm16(tone(10_000))))  # 1 ms: a 20 KB file
    assert rate == 9_999_991
    clip = prepare_clip(samples, rate, 8000, 8)
    assert used == [(1, 1250)] and clip.shape == (8,)  # 8,000 / 9,999,991 within 1e-6 of 1/1250
    tracemalloc.start()
    resample(tone(10_000), 9_999_991, 8000)
    resample(tone(10_000), 9_999_991, 44_100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * 2 ** 20, f"{peak / 2 ** 20:.0f} MB"


def test_resampling_factors_are_exact_for_common_rates_and_close_and_bounded_for_any():
    from fractions import Fraction

    from deepworks.data.audio import MAX_FACTOR, MAX_RATE, MIN_RATE, resample_factors

    assert resample_factors(10_000_000, 8000) == (1, 1250)  # gcd 8,000: exact
    assert resample_factors(44_100, 48_000) == (160, 147)
    assert resample_factors(8000, 16_000) == (2, 1)
    rng = random.Random(0)
    for _ in range(2000):
        rate = rng.randint(MIN_RATE, MAX_RATE)
        target = rng.choice([8000, 16_000, 44_100, rng.randint(MIN_RATE, MAX_RATE)])
        for a, b in ((rate, target), (target, rate)):
            up, down = resample_factors(a, b)
            assert max(up, down) <= MAX_FACTOR and up >= 1
            assert abs(Fraction(up, down) / Fraction(b, a) - 1) < 1 / (MAX_FACTOR - 1), (a, b)  # the docstring's bound


def test_a_sample_rate_over_ten_megahertz_is_refused_naming_it():
    with pytest.raises(UnreadableAudio, match=r"a sample rate out of range: Expected 1,000 to 10,000,000 Hz .* "
                                              r"Received 20,000,000 Hz"):
        read_audio(wav_bytes(20_000_000, pcm16(tone(100))))


# --- corrupt headers ------------------------------------------------------------------------------------------------
def no_channels() -> bytes:
    wav = bytearray(wav_bytes(8000, pcm16(tone(400))))
    wav[22:24] = struct.pack("<H", 0)  # nChannels
    return bytes(wav)


def test_a_wav_with_zero_channels_is_refused_and_skipped_among_good_clips(tmp_path):
    with pytest.raises(UnreadableAudio, match=r"a corrupt WAV header: Expected 1 channel \(mono\) or more\. "
                                              r"Received 0 channels"):
        read_audio(no_channels())
    tones = make_tones(2, 0)
    for k, name in enumerate(["low", "high"]):
        (tmp_path / name).mkdir()
        for i, clip in enumerate(tones.samples[tones.labels == k]):
            scipy.io.wavfile.write(tmp_path / name / f"{i}.wav", 8000, clip)
    (tmp_path / "low" / "zero.wav").write_bytes(no_channels())
    with pytest.warns(UserWarning, match=r"1 file\(s\) cannot be used; skipped them:\n  .*zero\.wav: a corrupt WAV "
                                         r"header: Expected 1 channel"):
        clips = read_clips(*list_folder(tmp_path), None, None, False, "the folder")
    assert len(clips.names) == 4


@pytest.mark.filterwarnings("ignore")
def test_any_corrupt_header_is_unreadable_audio_never_another_exception():
    """scipy's reader divides by zero, asks numpy for dtypes like '<f233' or fails to unpack on headers like these."""
    bases = [wav_bytes(8000, pcm16(tone(200))), wav_bytes(8000, tone(200)),
             wav_bytes(8000, np.full((100, 2), 5, np.uint8))]
    rng = random.Random(0)
    for _ in range(400):
        wav = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            wav[rng.randrange(12, 48)] = rng.randrange(256)
        try:
            samples, _ = read_audio(bytes(wav))
        except UnreadableAudio:
            continue
        assert samples.dtype == np.float32 and np.abs(samples).max() <= 1


# --- what is said or refused --------------------------------------------------------------------------------------
def test_float_samples_beyond_full_scale_are_scaled_down_with_a_note_and_absurd_ones_refused():
    loud = tone(800, peak=3.0)
    with pytest.warns(UserWarning, match=r"loud\.wav: float samples up to 3, beyond full scale \(±1\): scaled down "
                                         r"by 3"):
        samples, _ = read_audio(wav_bytes(8000, loud), name="loud.wav")
    assert np.allclose(samples[:, 0], loud / 3, atol=1e-6)  # the same shape, not a square wave
    notes = []
    read_audio(wav_bytes(8000, loud * 10_000), notes=notes)  # a float file written at an integer scale
    assert len(notes) == 1 and "scaled down" in notes[0]
    with pytest.raises(UnreadableAudio, match=r"float samples out of range: Expected samples within ±1 .* Received "
                                              r"a peak of 1e\+30: these are not sound samples"):
        read_audio(wav_bytes(8000, tone(800) * np.float32(2e30)))


def declaring(wav: bytes, samples: int) -> bytes:
    """The WAV with its 'data' chunk (at byte 36, after a 16-byte 'fmt ') declaring `samples` 16-bit samples."""
    return wav[:40] + struct.pack("<I", 2 * samples) + wav[44:]


def test_a_data_chunk_that_declares_less_than_the_file_holds_is_said(tmp_path):
    wav = wav_bytes(8000, pcm16(tone(4000)))
    with pytest.warns(UserWarning, match=r"short\.wav: its 'data' chunk declares 500 samples, and 7,000 bytes \(about "
                                         r"3,500 more samples\) follow outside any chunk: read only the 500"):
        samples, _ = read_audio(declaring(wav, 500), name="short.wav")
    assert len(samples) == 500
    for honest in (wav, wav + b"LIST" + struct.pack("<I", 4) + b"INFO", wav + bytes(64)):  # a chunk after; padding
        notes = []
        assert len(read_audio(honest, notes=notes)[0]) == 4000 and notes == []
    for k, name in enumerate(["a", "b"]):
        (tmp_path / name).mkdir()
        for i in range(2):
            (tmp_path / name / f"{i}.wav").write_bytes(wav_bytes(8000, pcm16(tone(4000, 0.2 + 0.3 * k))))
    (tmp_path / "a" / "short.wav").write_bytes(declaring(wav, 500))
    with pytest.warns(UserWarning, match=r"1 file\(s\) were changed to be used:\n  .*short\.wav: its 'data' chunk "
                                         r"declares 500 samples"):
        clips = read_clips(*list_folder(tmp_path), None, None, False, "the folder")
    assert any("short.wav" in n for n in clips.notes)


# --- bounded work for long clips and fast rates -------------------------------------------------------------------
def test_a_long_clip_resamples_only_the_middle_it_keeps_to_the_same_samples():
    """A 10-minute upload at 1 kHz for a 48 kHz model: resampled whole, 29 M samples (220 MB) to keep 48,000."""
    import tracemalloc

    from deepworks.data.audio import fit_length, prepare_clip

    rng = np.random.default_rng(0)
    for rate, target, seconds, length in [(44_100, 8000, 3, 8000), (22_050, 16_000, 2.0003, 16_000),
                                          (48_000, 44_100, 4, 44_100), (9_999_991, 8000, 0.02, 8)]:
        x = rng.normal(size=int(rate * seconds)).astype(np.float32)
        whole = fit_length(resample(x, rate, target), length)
        assert np.allclose(prepare_clip(x, rate, target, length), whole, atol=1e-6), (rate, target)
    ten_minutes = rng.normal(size=600 * 1000).astype(np.float32)
    tracemalloc.start()
    clip = prepare_clip(ten_minutes, 1000, 48_000, 48_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert clip.shape == (48_000,) and peak < 32 * 2 ** 20, f"{peak / 2 ** 20:.0f} MB"


def test_clips_faster_than_a_model_takes_are_resampled_to_192_khz(tmp_path):
    for k, name in enumerate(["a", "b"]):
        (tmp_path / name).mkdir()
        for i in range(2):
            (tmp_path / name / f"{i}.wav").write_bytes(wav_bytes(250_000, pcm16(tone(25_000, 0.2 + 0.3 * k))))
    clips = read_clips(*list_folder(tmp_path), None, None, False, "the folder")
    assert clips.rate == 192_000 and clips.samples.shape == (4, 19_200)
    assert any("4 clip(s) resampled to 192,000 Hz" in n for n in clips.notes)
