"""Language and speech stream tasks: tokenisation, μ-law, wav reading, the stream batcher, state carry, learning, bad paths."""
import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from training import cli
from training.config import compose
from training.run_dir import read_metrics
from training.supervised.tasks import build_task
from training.supervised.tasks.language import (
    UNKNOWN, Vocabulary, join_units, split_by_position, split_units, strip_gutenberg,
)
from training.supervised.tasks.speech import mu_law_decode, mu_law_encode, read_wav, resample
from training.supervised.tasks.streaming import Corpus, TrainingStreams, evaluation_batches
from training.supervised.trainer import make_runner, setup

QUIET = ["progress=false", "tensorboard=false", "log.interval_s=0", "checkpoint.interval_s=0"]
TEXT = "Première ligne, naïve.\nSecond line: the cat sat on the mat.\n\n  Third   line\n"


def write_text(path: Path, sentences: int = 400, seed: int = 0) -> Path:
    """A small corpus with structure to learn: random sentences from a tiny grammar."""
    rng = np.random.default_rng(seed)
    subjects, verbs, objects = ["the cat", "a dog", "my aunt", "the king"], ["sees", "eats", "likes"], ["fish", "bread", "tea"]
    lines = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(sentences)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2, channels: int = 1) -> None:
    """samples [N] or [N, channels] in [-1, 1] as PCM of ``width`` bytes."""
    frames = np.asarray(samples).reshape(len(samples), -1)
    frames = frames.repeat(channels // frames.shape[1], 1)
    if width == 1:  # unsigned
        data = np.clip(np.round(frames * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        scale = float(1 << (8 * width - 1))
        values = np.clip(np.round(frames * scale), -scale, scale - 1).astype("<i4" if width == 3 else f"<i{width}")
        data = values.tobytes()
        if width == 3:  # the low three bytes of each little-endian int32
            data = np.frombuffer(data, dtype=np.uint8).reshape(-1, 4)[:, :3].tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)


def write_recordings(folder: Path, speakers=("ann", "bob"), indices=range(12), digits=range(2)) -> Path:
    """FSDD-style files: each speaker hums a digit-dependent tone with a little noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for s, speaker in enumerate(speakers):
        for index in indices:
            for digit in digits:
                t = np.arange(400) / 8000
                tone = 0.5 * np.sin(2 * np.pi * (200 + 100 * digit + 50 * s) * t) + 0.01 * rng.standard_normal(t.size)
                write_wav(folder / f"{digit}_{speaker}_{index}.wav", tone, 8000)
    return folder


# -- tokenisation -------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["byte", "char", "word"])
def test_tokenisation_round_trips(level):
    data = TEXT.encode("utf-8")
    units = split_units(data, level)
    vocabulary = Vocabulary(level, units, [])
    ids = vocabulary.encode(units)
    assert vocabulary.decode(ids) == units
    expected = {"byte": data, "char": data,
                "word": "Première ligne, naïve.\nSecond line: the cat sat on the mat.\n\nThird line\n".encode()}[level]
    assert join_units(vocabulary.decode(ids), level) == expected
    if level == "byte":
        assert len(vocabulary) == 256 and ids.tolist() == list(data)
    if level == "char":
        assert len(units) == len(TEXT) < len(data)  # é, ï are one character, two bytes
    if level == "word":
        assert units[:4] == ["Première", "ligne,", "naïve.", "<eos>"] and units.count("<eos>") == 4


def test_unknown_units_map_to_unk_only_when_held_out_text_needs_it():
    words = "a b a c".split()
    closed = Vocabulary("word", words, ["a", "c"])
    assert UNKNOWN not in closed.units and closed.units == ["a", "b", "c"]
    open_ = Vocabulary("word", words, ["a", "zebra"])
    assert open_.decode(open_.encode(["zebra", "b"])) == [UNKNOWN, "b"]


def test_a_text_file_is_split_by_position_and_gutenberg_headers_are_cut(tmp_path):
    body = "".join(f"line {i}\n" for i in range(100))
    gutenberg = f"licence blah\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n{body}*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nmore\n"
    assert strip_gutenberg(gutenberg.encode()) == body.encode()
    assert split_by_position(list(range(100)), 0.1, 0.2) == {"train": list(range(70)), "valid": list(range(70, 80)),
                                                             "test": list(range(80, 100))}
    (tmp_path / "book.txt").write_text(gutenberg)
    task = build_task({"name": "language", "path": str(tmp_path / "book.txt"), "level": "char"}, 0)
    pieces = [join_units(task.vocabulary.decode(task.splits[s].tokens), "char") for s in ("train", "valid", "test")]
    assert b"".join(pieces) == body.encode() and all(pieces)


def test_a_folder_corpus_reads_its_three_files(tmp_path):
    for split, text in (("train", "a b c\nb c\n"), ("valid", "c a\n"), ("test", "b b z\n")):
        (tmp_path / f"{split}.txt").write_text(text)
    task = build_task({"name": "language", "path": str(tmp_path), "level": "word"}, 0)
    decode = lambda split: task.vocabulary.decode(task.splits[split].tokens)  # noqa: E731
    assert decode("train") == ["a", "b", "c", "<eos>", "b", "c", "<eos>"]
    assert decode("test") == ["b", "b", UNKNOWN, "<eos>"] and task.output_size == 5
    assert task.headline() == "perplexity"


# -- μ-law and wav files ------------------------------------------------------------------------
def test_mu_law_round_trips_and_matches_hand_values():
    codes = torch.arange(256)
    assert torch.equal(mu_law_encode(mu_law_decode(codes)), codes)
    x = torch.tensor([-1.0, 0.0, 1.0, 0.5, -0.01])
    # 0.5: y = ln(1 + 127.5) / ln 256 = 0.87569, q = round(1.87569 / 2 * 255) = 239
    # -0.01: y = -ln(3.55) / ln 256 = -0.22851, q = round(0.77149 / 2 * 255) = 98
    assert mu_law_encode(x).tolist() == [0, 128, 255, 239, 98]
    audio = torch.linspace(-1, 1, 10001, dtype=torch.float64)
    compand = lambda a: torch.sign(a) * torch.log1p(255 * a.abs()) / math.log(256)  # noqa: E731
    error = (compand(mu_law_decode(mu_law_encode(audio))) - compand(audio)).abs().max()
    assert error <= 1 / 255 + 1e-9  # at most half a quantisation step (2/255 wide)
    assert (mu_law_decode(mu_law_encode(audio)) - audio).abs().max() < 0.04  # coarse only near ±1


@pytest.mark.parametrize("width, channels", [(1, 1), (2, 1), (2, 2), (3, 1), (4, 1)])
def test_wav_files_read_back(tmp_path, width, channels):
    samples = 0.8 * np.sin(np.linspace(0, 20, 300))
    write_wav(tmp_path / "x.wav", samples, 16000, width, channels)
    read, rate = read_wav(tmp_path / "x.wav")
    assert rate == 16000 and read.shape == (300,)
    assert np.abs(read - samples).max() <= 1.0 / (1 << (8 * width - 1)) + 1e-12


def test_resampling_keeps_what_the_new_rate_can_hold_and_removes_the_rest():
    t16, t8 = np.arange(1600) / 16000, np.arange(800) / 8000
    low = resample(np.sin(2 * np.pi * 440 * t16), 16000, 8000)
    assert low.shape == (800,) and np.abs(low - np.sin(2 * np.pi * 440 * t8))[50:-50].max() < 0.02
    high = resample(np.sin(2 * np.pi * 6000 * t16), 16000, 8000)  # above 4 kHz: would alias to 2 kHz
    assert np.abs(high[50:-50]).max() < 0.05
    up = resample(np.sin(2 * np.pi * 440 * t8), 8000, 16000)
    assert up.shape == (1600,) and np.abs(up - np.sin(2 * np.pi * 440 * t16))[:-4].max() < 0.02


def test_speech_streams_are_speakers_and_splits_go_by_index(tmp_path):
    folder = write_recordings(tmp_path / "rec", indices=range(12))
    task = build_task({"name": "speech", "path": str(folder), "test_below": 2, "validation_below": 4}, 0)
    assert task.speakers["train"] == ["ann", "bob"] and task.output_size == 256
    for split, recordings in (("train", 8), ("valid", 2), ("test", 2)):
        corpus = task.splits[split]
        assert corpus.tokens.numel() == 2 * recordings * 2 * 400  # speakers x indices x digits x samples
        assert corpus.starts.nonzero().flatten().tolist() == [0, recordings * 2 * 400]  # one document per speaker
    first, _ = read_wav(folder / "0_ann_4.wav")  # train starts with ann's lowest train index, digit 0
    assert torch.equal(task.splits["train"].tokens[:400].long(), mu_law_encode(torch.from_numpy(first)))


# -- the stream batcher ------------------------------------------------------------------------------
def positions_corpus(count: int, starts=(0,)) -> Corpus:
    """Token i is i, so batches show which positions they read."""
    flags = torch.zeros(count, dtype=torch.bool)
    flags[list(starts)] = True
    return Corpus(torch.arange(count), flags)


def test_training_batches_continue_every_stream_without_gaps_and_wrap_with_a_reset():
    corpus = positions_corpus(40, starts=(0, 20))
    streams = TrainingStreams(corpus, segment_length=5)
    batches = [streams.next_batch(3) for _ in range(6)]  # 30 steps per stream; each stream has 39 // 3 = 13
    inputs = torch.cat([b.inputs for b in batches])
    reset = torch.cat([b.reset for b in batches])
    mask = torch.cat([b.mask for b in batches])
    steps = torch.arange(30)
    for b in range(3):
        assert inputs[:, b].tolist() == (b * 13 + steps % 13).tolist()
        assert reset[:, b].tolist() == ((steps % 13 == 0) | (inputs[:, b] == 20)).tolist()
        assert mask[:, b].tolist() == (inputs[:, b] != 19).tolist()  # 19 -> 20 crosses a document boundary
    assert torch.equal(torch.cat([b.targets for b in batches]), inputs + 1)


@pytest.mark.parametrize("count, streams, segment, limit", [(103, 4, 7, None), (50, 8, 64, None), (103, 3, 5, 40)])
def test_evaluation_reads_every_prediction_exactly_once_in_contiguous_streams(count, streams, segment, limit):
    corpus = positions_corpus(count, starts=(0, 37))
    batches = list(evaluation_batches(corpus, streams, segment, limit))
    position = torch.cat([b.info["position"] for b in batches])  # [L, B], -1 on padding
    mask, reset = torch.cat([b.mask for b in batches]), torch.cat([b.reset for b in batches])
    total = count - 1 if limit is None else limit
    read = position[position >= 0]
    assert sorted(read.tolist()) == list(range(total))  # every input once
    assert sorted(position[mask].tolist()) == [p for p in range(total) if p + 1 != 37]  # scored unless it crosses
    for b in range(streams):
        mine = position[:, b][position[:, b] >= 0]
        assert torch.equal(mine, torch.arange(len(mine)) + (mine[0] if len(mine) else 0))  # contiguous
        assert bool(reset[0, b]) and reset[1:, b].tolist() == (position[1:, b] == 37).tolist()
    assert all(b.length <= segment for b in batches)


def tiny_core(name: str) -> list[str]:
    if name == "lstm":
        return ["core=lstm", "core.hidden_size=16"]
    return [f"core={name}", "core.d_model=16", "core.n_layers=1", "core.n_heads=2", "core.mlp_size=16", "core.n_m=4",
            *(["core.n_cm=3", "core.compression_rate=2"] if name == "compressive_transformer" else [])]


@pytest.mark.parametrize("core", ["lstm", "compressive_transformer"])
def test_evaluation_carries_the_state_so_segments_read_as_one_stream(tmp_path, core):
    path = write_text(tmp_path / "text.txt", sentences=30)
    cfg = compose("supervised", ["task=language", f"task.path={path}", "task.segment_length=9", *tiny_core(core)])
    parts = setup(cfg)
    batches = list(evaluation_batches(parts.task.splits["train"], 3, 9))
    carry, restart = make_runner(parts.model, parts.device, True), make_runner(parts.model, parts.device, False)
    carried, fresh = torch.cat([carry(b) for b in batches]), torch.cat([restart(b) for b in batches])
    with torch.no_grad():  # the reference: each stream in one call
        inputs, reset = torch.cat([b.inputs for b in batches]), torch.cat([b.reset for b in batches])
        whole, _, _ = parts.model(inputs, parts.model.initial_state(3), reset)
    valid = torch.cat([b.info["position"] for b in batches]) >= 0
    assert torch.allclose(carried[valid], whole[valid], atol=1e-5)
    assert not torch.allclose(fresh[valid], whole[valid], atol=1e-3)  # a fresh state per segment differs


# -- end to end ------------------------------------------------------------------------------------
@pytest.mark.learning
def test_short_language_run_lowers_the_validation_loss_and_evaluates_every_held_out_byte(tmp_path, margin):
    path = write_text(tmp_path / "text.txt", sentences=600)
    overrides = ["task=language", f"task.path={path}", "task.segment_length=32", *tiny_core("compressive_transformer"),
                 "model.embedding_size=16", "optimizer.name=adam", "optimizer.learning_rate=3e-3", "batch_size=8",
                 "max_batches=60", "validation.interval_batches=20", "validation.batch_size=8", "eval.batch_size=8",
                 *QUIET, f"run_root={tmp_path / 'runs'}"]
    assert cli.main(["supervised", *overrides]) == 0
    run = next((tmp_path / "runs").iterdir())
    val = [v for v in read_metrics(run)["val_bits_per_byte"] if v == v]
    assert len(val) == 3 and val[-1] < val[0], val
    margin("final validation bits per byte (uniform guess: 8)", val[-1], below=0.6 * 8)
    rows = json.loads((run / "eval.json").read_text())["rows"]
    size = path.stat().st_size
    assert [r["split"] for r in rows] == ["valid", "test"]
    assert [r["predictions"] for r in rows] == [round(size * 0.05) - 1] * 2  # every held-out byte after the first
    assert abs(rows[0]["bits_per_byte"] - val[-1]) < 0.5


@pytest.mark.learning
def test_short_speech_run_lowers_the_validation_loss(tmp_path, margin):
    folder = write_recordings(tmp_path / "rec", indices=range(8))
    overrides = ["task=speech", f"task.path={folder}", "task.test_below=1", "task.validation_below=2",
                 "task.segment_length=32", *tiny_core("lstm"), "model.embedding_size=16", "optimizer.name=adam",
                 "optimizer.learning_rate=1e-2", "batch_size=8", "max_batches=150", "validation.interval_batches=75",
                 "eval.at_end=false", *QUIET, f"run_root={tmp_path / 'runs'}"]
    assert cli.main(["supervised", *overrides]) == 0
    val = [v for v in read_metrics(next((tmp_path / "runs").iterdir()))["val_bits_per_sample"] if v == v]
    assert val[-1] < val[0], val
    margin("final validation bits per sample (uniform guess: 8)", val[-1], below=0.75 * 8)


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, overrides, expected", [
    (None, ["task=language"], "task.path is required"),
    (None, ["task=language", "task.path=/nonexistent/text.txt"], "does not exist"),
    ("folder", ["task=language_words"], "lacks valid.txt, test.txt"),
    ("text", ["task.level=letters"], "task.level='letters' is not known"),
    (None, ["task=speech"], "task.path is required"),
    (None, ["task=speech", "task.path=/nonexistent/wavs"], "is not a folder"),
    ("empty", ["task=speech"], "holds no .wav files"),
    ("badname", ["task=speech"], "is not named {digit}_{speaker}_{index}.wav"),
    ("notwav", ["task=speech"], "is not a PCM wav file"),
])
def test_bad_paths_give_one_line_errors(tmp_path, capsys, make, overrides, expected):
    if make == "folder":
        (tmp_path / "train.txt").write_text("a b\n")
        overrides = [*overrides, f"task.path={tmp_path}"]
    elif make == "text":
        overrides = ["task=language", f"task.path={write_text(tmp_path / 't.txt', 5)}", *overrides]
    elif make in ("empty", "badname", "notwav"):
        name = {"empty": "notes.txt", "badname": "hello.wav", "notwav": "0_ann_0.wav"}[make]
        (tmp_path / name).write_text("not audio")
        overrides = [*overrides, f"task.path={tmp_path}"]
    assert cli.main(["supervised", *overrides, "max_batches=1", f"run_root={tmp_path / 'runs'}", *QUIET]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err, err
    assert not (tmp_path / "runs").exists()
