"""Raw speech: next-sample prediction on 8-bit μ-law waveforms (thesis Sec. 6.5.7, WaveNet's encoding).

    memrl supervised task=speech task.path=/work/shared/data/fsdd/recordings

``task.path`` is a folder of wav files (searched recursively) named
``{digit}_{speaker}_{index}.wav``, the Free Spoken Digit Dataset's convention.
Every file is read with the ``wave`` module (PCM, 8/16/24/32 bit, channels
averaged), resampled to ``sample_rate`` when its rate differs, and encoded
8-bit μ-law (256 classes, μ = 255). Splits go by recording index, as FSDD's
README does: indices below ``test_below`` (0-4) are test, below
``validation_below`` (5-9) validation, the rest training.

Streams: each speaker's recordings of a split, ordered by (index, digit), are
concatenated into one document, so the state carries across a speaker's
recordings and is reset between speakers (``streaming.py``). The metric is
``bits_per_sample``: 8 for a uniform guess.
"""
from __future__ import annotations

import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import register_task
from .streaming import Corpus, StreamConfig, StreamTask

FILE_PATTERN = re.compile(r"^(\d+)_([^_]+)_(\d+)\.wav$")


@dataclass
class SpeechConfig(StreamConfig):
    path: str | None = None  # folder of {digit}_{speaker}_{index}.wav files (searched recursively); required
    sample_rate: int = 8000  # Hz; files at other rates are resampled to this
    mu: int = 255  # μ of the μ-law encoding: μ + 1 classes (255: 8 bits)
    test_below: int = 5  # recordings with index < this are test (FSDD's official split: 0-4)
    validation_below: int = 10  # recordings with test_below <= index < this are validation; the rest train


# -- μ-law ---------------------------------------------------------------------------------------
def mu_law_encode(audio: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Samples in [-1, 1] (any shape) -> long codes in 0..μ.

    y = sign(x) ln(1 + μ|x|) / ln(1 + μ), then y ∈ [-1, 1] is quantised to μ + 1
    evenly spaced levels (code q stands for y = 2q/μ − 1).
    """
    audio = audio.clamp(-1.0, 1.0)
    companded = torch.sign(audio) * torch.log1p(mu * audio.abs()) / np.log1p(mu)
    return torch.round((companded + 1) / 2 * mu).long()


def mu_law_decode(codes: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Codes 0..μ -> samples in [-1, 1]: x = sign(y) ((1 + μ)^|y| − 1) / μ with y = 2q/μ − 1."""
    companded = 2 * codes.double() / mu - 1
    return torch.sign(companded) * torch.expm1(companded.abs() * np.log1p(mu)) / mu


# -- wav files -------------------------------------------------------------------------------------
def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(samples [N] float64 in [-1, 1], sample rate) of a PCM wav file, channels averaged."""
    try:
        with wave.open(str(path), "rb") as f:
            width, channels, rate = f.getsampwidth(), f.getnchannels(), f.getframerate()
            frames = f.readframes(f.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path} is not a PCM wav file ({exc}); remove it or convert it") from None
    if width == 1:  # 8-bit wav is unsigned
        samples = (np.frombuffer(frames, dtype=np.uint8).astype(np.float64) - 128) / 128
    elif width == 3:  # 24-bit: little-endian triples, sign-extended through the top byte
        triples = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        samples = np.where(values >= 1 << 23, values - (1 << 24), values) / float(1 << 23)
    elif width in (2, 4):
        samples = np.frombuffer(frames, dtype=f"<i{width}").astype(np.float64) / float(1 << (8 * width - 1))
    else:
        raise ValueError(f"{path} has {width}-byte samples; only 8, 16, 24 and 32-bit PCM are read")
    return samples.reshape(-1, channels).mean(axis=1), rate


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """[N] at ``rate`` -> [⌊N · target / rate⌋] at ``target_rate``: low-pass (when downsampling), then linear interpolation.

    The low-pass is a Hann-windowed sinc at the new Nyquist frequency, so that
    frequencies the new rate cannot hold are removed rather than aliased.
    """
    if rate == target_rate or samples.size == 0:
        return samples
    if target_rate < rate:
        cutoff = target_rate / rate / 2  # cycles per input sample
        taps = np.arange(-32, 33)
        kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hanning(taps.size)
        samples = np.convolve(samples, kernel / kernel.sum(), mode="same")
    count = int(samples.size * target_rate / rate)
    times = np.arange(count) * (rate / target_rate)
    return np.interp(times, np.arange(samples.size), samples)


def find_recordings(folder: Path) -> list[tuple[str, int, int, Path]]:
    """[(speaker, index, digit, path)] of the wav files under ``folder``; one-line errors for bad names."""
    recordings = []
    for path in sorted(folder.rglob("*.wav")):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise ValueError(f"{path.name} is not named {{digit}}_{{speaker}}_{{index}}.wav (the FSDD convention); "
                             "rename it or move it out of task.path")
        recordings.append((match.group(2), int(match.group(3)), int(match.group(1)), path))
    if not recordings:
        raise ValueError(f"task.path={folder} holds no .wav files; point it at a folder of recordings "
                         "(e.g. /work/shared/data/fsdd/recordings)")
    return recordings


def check_config(config: SpeechConfig) -> None:
    if not config.path:
        raise ValueError("task.path is required: a folder of {digit}_{speaker}_{index}.wav files "
                         "(e.g. task.path=/work/shared/data/fsdd/recordings)")
    if not Path(config.path).expanduser().is_dir():
        raise ValueError(f"task.path={config.path} is not a folder; point it at a folder of wav files "
                         "(e.g. /work/shared/data/fsdd/recordings)")
    if config.sample_rate < 1:
        raise ValueError(f"task.sample_rate={config.sample_rate} must be positive")
    if not 1 <= config.mu <= 65535:
        raise ValueError(f"task.mu={config.mu} must be in 1..65535 (255: 8-bit μ-law)")
    if not 0 <= config.test_below <= config.validation_below:
        raise ValueError(f"need 0 <= task.test_below ({config.test_below}) <= task.validation_below "
                         f"({config.validation_below})")


def split_of(index: int, config: SpeechConfig) -> str:
    if index < config.test_below:
        return "test"
    return "valid" if index < config.validation_below else "train"


@register_task("speech", SpeechConfig)
class SpeechTask(StreamTask):
    """Next μ-law sample of a speaker's recordings; see the module docstring."""

    unit = "sample"

    def __init__(self, config: SpeechConfig, seed: int):
        check_config(config)
        self.check_stream_config(config)
        self.config = config
        self.input_size = self.output_size = config.mu + 1
        streams: dict[str, dict[str, list]] = {"train": {}, "valid": {}, "test": {}}
        for speaker, index, digit, path in sorted(find_recordings(Path(config.path).expanduser()),
                                                  key=lambda r: (r[0], r[1], r[2])):
            samples, rate = read_wav(path)
            codes = mu_law_encode(torch.from_numpy(resample(samples, rate, config.sample_rate)), config.mu)
            streams[split_of(index, config)].setdefault(speaker, []).append(codes)
        self.speakers = {split: sorted(by_speaker) for split, by_speaker in streams.items()}
        self.splits = {split: Corpus.join([torch.cat(by_speaker[s]).int() for s in sorted(by_speaker)])
                       for split, by_speaker in streams.items()}
        for split, corpus in self.splits.items():
            if corpus.predictions < 1:
                raise ValueError(f"no {split} recordings under task.path={config.path}; the split goes by index "
                                 f"(test < {config.test_below} <= validation < {config.validation_below} <= train)")
        self.start_streams()
