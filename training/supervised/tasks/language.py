"""Language modelling on a text corpus: bytes, characters or words (thesis Sec. 6.5.2-6.5.3).

    memrl supervised task=language task.path=/work/shared/data/war-and-peace/warandpeace.txt
    memrl supervised task=language_words task.path=/work/shared/data/wikitext-2 model.embedding_size=128

``task.path`` is either one text file, split into train / validation / test by
position (the last ``validation_fraction + test_fraction`` of it held out, the
Enwik8 convention), or a folder with ``train.txt``, ``valid.txt`` and
``test.txt`` (the WikiText layout). Project Gutenberg's header and licence are
cut off when their markers are present (``strip_gutenberg``).

Levels (the token a step reads and predicts):
  byte   the file's bytes, 256 classes; ``bits_per_byte`` (the Enwik8 "bpc")
  char   Unicode characters; the vocabulary is the training text's characters
         (plus ``<unk>`` if held-out text has others); ``bits_per_character``
  word   whitespace-separated tokens plus ``<eos>`` at each line end (PyTorch's
         word_language_model convention); the vocabulary is the training text's
         words (plus ``<unk>``); ``perplexity``. A 33k-word vocabulary wants
         ``model.embedding_size`` > 0 (one-hot inputs of that width are slow).

The corpus is streamed with the state carried (``streaming.py``): the whole
text is one document.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import register_task
from .streaming import Corpus, StreamConfig, StreamTask

LEVELS = ("byte", "char", "word")
UNITS = {"byte": "byte", "char": "character", "word": "word"}
UNKNOWN, END_OF_LINE = "<unk>", "<eos>"
SPLIT_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
GUTENBERG_START, GUTENBERG_END = b"*** START OF", b"*** END OF"


@dataclass
class LanguageConfig(StreamConfig):
    path: str | None = None  # a text file (split by position) or a folder with train.txt, valid.txt, test.txt; required
    level: str = "byte"  # byte (256 classes), char (the training text's characters) or word (tokens + <eos>)
    validation_fraction: float = 0.05  # one file: share held out for validation (before the test share)
    test_fraction: float = 0.05  # one file: share at the end held out for testing
    strip_gutenberg: bool = True  # cut Project Gutenberg's header and licence when their markers are present


# -- tokenisation ----------------------------------------------------------------------------------
def split_units(data: bytes, level: str) -> list:
    """The tokens of ``data`` as bytes (ints), characters or words (``<eos>`` ends each line)."""
    if level == "byte":
        return list(data)
    text = data.decode("utf-8", errors="replace")
    if level == "char":
        return list(text)
    return [word for line in text.splitlines() for word in (*line.split(), END_OF_LINE)]


def join_units(units: list, level: str) -> bytes:
    """The inverse of ``split_units`` (for words: one space between words, ``<eos>`` -> newline)."""
    if level == "byte":
        return bytes(units)
    if level == "char":
        return "".join(units).encode("utf-8")
    lines, words = [], []
    for unit in units:
        if unit == END_OF_LINE:
            lines.append(" ".join(words) + "\n")
            words = []
        else:
            words.append(unit)
    return ("".join(lines) + " ".join(words)).encode("utf-8")


class Vocabulary:
    """Units <-> ids. Bytes map to themselves; characters and words in order of first appearance in training."""

    def __init__(self, level: str, training_units: list, held_out_units: list):
        self.level = level
        if level == "byte":
            self.units = list(range(256))
        else:
            self.units = list(dict.fromkeys(training_units))
            if UNKNOWN not in self.units and not set(held_out_units) <= set(self.units):
                self.units.append(UNKNOWN)
        self.ids = {unit: i for i, unit in enumerate(self.units)}

    def __len__(self) -> int:
        return len(self.units)

    def encode(self, units: list) -> torch.Tensor:
        """[N] long ids; units not in the vocabulary become ``<unk>``."""
        if self.level == "byte":
            return torch.from_numpy(np.asarray(units, dtype=np.int64))
        unknown = self.ids.get(UNKNOWN, -1)
        return torch.tensor([self.ids.get(unit, unknown) for unit in units], dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> list:
        return [self.units[i] for i in ids.tolist()]


# -- reading a corpus --------------------------------------------------------------------------------
def strip_gutenberg(data: bytes) -> bytes:
    """The text between Project Gutenberg's START and END marker lines (unchanged without them)."""
    start = data.find(GUTENBERG_START)
    if start >= 0:
        line_end = data.find(b"\n", start)
        data = data[line_end + 1:] if line_end >= 0 else b""
    end = data.find(GUTENBERG_END)
    return data[:end] if end >= 0 else data


def read_split_bytes(config: LanguageConfig) -> dict[str, bytes]:
    """{"train", "valid", "test": raw bytes} from ``config.path`` (a file or a folder of three files)."""
    if not config.path:
        raise ValueError("task.path is required: a text file or a folder with train.txt, valid.txt and test.txt "
                         "(e.g. task.path=/work/shared/data/war-and-peace/warandpeace.txt)")
    path = Path(config.path).expanduser()
    if not path.exists():
        raise ValueError(f"task.path={config.path} does not exist; point it at a text file or a folder with "
                         "train.txt, valid.txt and test.txt")
    clean = strip_gutenberg if config.strip_gutenberg else (lambda data: data)
    if path.is_dir():
        missing = [name for name in SPLIT_FILES.values() if not (path / name).is_file()]
        if missing:
            raise ValueError(f"task.path={config.path} lacks {', '.join(missing)}; a folder corpus needs "
                             "train.txt, valid.txt and test.txt (or point task.path at one text file)")
        return {split: clean((path / name).read_bytes()) for split, name in SPLIT_FILES.items()}
    return {"whole": clean(path.read_bytes())}


def split_by_position(units: list, validation_fraction: float, test_fraction: float) -> dict[str, list]:
    """The first share of ``units`` for training, then validation, then test."""
    count = len(units)
    test_start = count - int(round(count * test_fraction))
    valid_start = test_start - int(round(count * validation_fraction))
    return {"train": units[:valid_start], "valid": units[valid_start:test_start], "test": units[test_start:]}


def check_config(config: LanguageConfig) -> None:
    if config.level not in LEVELS:
        raise ValueError(f"task.level={config.level!r} is not known; use one of {', '.join(LEVELS)}")
    for name in ("validation_fraction", "test_fraction"):
        value = getattr(config, name)
        if not 0 < value < 0.5:
            raise ValueError(f"task.{name}={value} must be in (0, 0.5)")


@register_task("language", LanguageConfig)
class LanguageTask(StreamTask):
    """Next byte, character or word of a text corpus; see the module docstring."""

    def __init__(self, config: LanguageConfig, seed: int):
        check_config(config)
        self.check_stream_config(config)
        self.config = config
        self.unit = UNITS[config.level]
        raw = read_split_bytes(config)
        if "whole" in raw:
            units = split_by_position(split_units(raw["whole"], config.level), config.validation_fraction,
                                      config.test_fraction)
        else:
            units = {split: split_units(data, config.level) for split, data in raw.items()}
        self.vocabulary = Vocabulary(config.level, units["train"], units["valid"] + units["test"])
        self.input_size = self.output_size = len(self.vocabulary)
        self.splits = {split: Corpus.join([self.vocabulary.encode(u)]) for split, u in units.items()}
        self.start_streams()

    def headline(self) -> str:
        return "perplexity" if self.config.level == "word" else super().headline()
