"""Audio for speech models, numpy only: a clip read and checked, and Whisper's log-mel
features computed as transformers' ``WhisperFeatureExtractor`` computes them, from the
``preprocessor_config.json`` saved beside the model.

The features (``WhisperFeatures.__call__``): the waveform padded with zeros (or refused
when longer) to the window of ``chunk_length`` seconds; a short-time Fourier transform
with a periodic Hann window of ``n_fft`` samples every ``hop_length`` samples, centred
(the clip reflected by ``n_fft / 2`` at each end); the power spectrum through
``feature_size`` triangular mel filters (Slaney's mel scale and area normalisation, 0 to
8 kHz); ``log10`` of it floored at 1e-10; the last frame dropped; values floored at the
maximum minus 8; then ``(x + 4) / 4``. The result is ``[feature_size, frames]``, frames =
window / hop_length: what the encoder takes.

A clip (``load_audio``): a ``.wav`` file (PCM, 8/16/32-bit) or a ``.npy`` array of
samples. Its sample rate must be the model's (no resampling here); stereo is averaged to
mono, and said; an empty clip or one longer than the window is refused with what to do.
"""

from __future__ import annotations

import json
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnx_deploy.core.errors import InputMismatchError

PREPROCESSOR = "preprocessor_config.json"
MEL_FLOOR = 1e-10
MAX_FREQUENCY = 8000.0  # Whisper's filters span 0..8 kHz


@dataclass(frozen=True)
class Clip:
    """Mono samples in [-1, 1] at ``rate`` Hz, and what was done to them."""

    samples: np.ndarray
    rate: int
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def load_audio(path: str | os.PathLike[str], rate: int | None = None) -> Clip:
    """A ``.wav`` (its own rate) or ``.npy`` (``rate`` given) clip as mono float32."""
    p = Path(path)
    if not p.is_file():
        raise InputMismatchError(f"{p}: no such audio file")
    notes: list[str] = []
    if p.suffix.lower() == ".wav":
        try:
            with wave.open(str(p), "rb") as f:
                channels, width, rate = f.getnchannels(), f.getsampwidth(), f.getframerate()
                raw = f.readframes(f.getnframes())
        except (wave.Error, EOFError) as e:
            raise InputMismatchError(
                f"{p}: not a PCM .wav file ({e}); convert it: ffmpeg -i IN -ac 1 -ar 16000 "
                "-c:a pcm_s16le OUT.wav"
            ) from e
        kinds = {
            1: (np.uint8, 128.0, 128.0),
            2: (np.int16, 0.0, 32768.0),
            4: (np.int32, 0.0, 2.0**31),
        }
        if width not in kinds:
            raise InputMismatchError(f"{p}: {8 * width}-bit samples; use 8, 16 or 32-bit PCM")
        kind, offset, scale = kinds[width]
        data = (np.frombuffer(raw, kind).astype(np.float32) - offset) / scale
        data = data.reshape(-1, channels)
    elif p.suffix.lower() == ".npy":
        if rate is None:
            raise InputMismatchError(f"{p}: a .npy clip needs its sample rate (--sample-rate)")
        data = np.load(p, allow_pickle=False).astype(np.float32)
        if data.ndim == 1:
            data = data[:, None]
        elif data.ndim == 2 and data.shape[0] < data.shape[1]:
            data = data.T  # [channels, samples] -> [samples, channels]
        elif data.ndim != 2:
            raise InputMismatchError(f"{p}: {data.ndim}-D array; a clip is [samples] or 2-D")
    else:
        raise InputMismatchError(f"{p}: audio must be a .wav or .npy file")
    if data.shape[1] > 1:
        notes.append(f"{data.shape[1]} channels averaged to one (the model takes mono)")
    return Clip(data.mean(axis=1).astype(np.float32), int(rate or 0), tuple(notes))


@dataclass(frozen=True)
class WhisperFeatures:
    """Whisper's feature extractor settings (``preprocessor_config.json``)."""

    feature_size: int = 80
    sampling_rate: int = 16_000
    hop_length: int = 160
    chunk_length: int = 30
    n_fft: int = 400
    padding_value: float = 0.0

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> WhisperFeatures:
        path = Path(folder) / PREPROCESSOR
        if not path.is_file():
            raise InputMismatchError(
                f"{folder}: no {PREPROCESSOR}; save the feature extractor beside the model "
                "(WhisperFeatureExtractor(...).save_pretrained(DIR)) to compute its features"
            )
        raw = json.loads(path.read_text())
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)

    @property
    def window_samples(self) -> int:
        return int(self.chunk_length * self.sampling_rate)

    @property
    def frames(self) -> int:
        return self.window_samples // self.hop_length

    def check(self, clip: Clip) -> np.ndarray:
        """The clip's samples, or a clear error: another rate, empty, past the window."""
        if clip.rate != self.sampling_rate:
            raise InputMismatchError(
                f"the clip is {clip.rate} Hz; the model takes {self.sampling_rate} Hz: resample "
                f"it first (ffmpeg -i IN -ac 1 -ar {self.sampling_rate} OUT.wav)"
            )
        if clip.samples.size == 0:
            raise InputMismatchError("the clip is empty: no samples to transcribe")
        if clip.samples.size > self.window_samples:
            raise InputMismatchError(
                f"the clip is {clip.seconds:.2f} s; the model reads {self.chunk_length} s at a "
                "time: split it into windows of at most that (long-form transcription, which "
                "stitches windows, is not done here)"
            )
        return clip.samples

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """``[feature_size, frames]`` float32 log-mel features of one mono clip."""
        wav = np.full(self.window_samples, self.padding_value, np.float64)
        wav[: len(samples)] = samples[: self.window_samples]
        half = self.n_fft // 2
        padded = np.pad(wav, (half, half), mode="reflect")
        count = 1 + (len(padded) - self.n_fft) // self.hop_length
        starts = np.arange(count) * self.hop_length
        frames = padded[starts[:, None] + np.arange(self.n_fft)[None, :]]
        window = np.hanning(self.n_fft + 1)[:-1]  # periodic Hann
        power = np.abs(np.fft.rfft(frames * window, n=self.n_fft, axis=1)) ** 2
        mel = mel_filters(self.n_fft, self.feature_size, self.sampling_rate).T @ power.T
        log_spec = np.log10(np.maximum(mel, MEL_FLOOR))[:, :-1]
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return ((log_spec + 4.0) / 4.0).astype(np.float32)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    mel = 3.0 * hz / 200.0
    logstep = 27.0 / np.log(6.4)
    above = hz >= 1000.0
    return np.where(above, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) * logstep, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    hz = 200.0 * mel / 3.0
    logstep = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(logstep * (mel - 15.0)), hz)


def mel_filters(n_fft: int, n_mels: int, rate: int) -> np.ndarray:
    """``[1 + n_fft / 2, n_mels]`` triangular filters, Slaney-normalised (each filter's
    area equal), 0 Hz to ``MAX_FREQUENCY``: transformers' ``mel_filter_bank`` as Whisper
    calls it."""
    fft_freqs = np.linspace(0, rate // 2, 1 + n_fft // 2)
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(MAX_FREQUENCY), n_mels + 2)
    edges = _mel_to_hz(mels)
    widths = np.diff(edges)
    slopes = edges[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[None, :]
