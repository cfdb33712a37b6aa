"""bAbI question answering (Weston et al. 2015) from its standard files; thesis Sec. 3.5.3.

File format (``qaN_<name>_train.txt`` / ``qaN_<name>_test.txt``)::

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? <TAB>bathroom<TAB>1
    ...
    1 Sandra travelled to the office.        <- ids restart at 1: a new story

A question line holds the question, its answer (comma-separated when it has
several words: ``football,milk``, ``s,e``) and the ids of its supporting facts.

Encoding (``encoding=word``, the thesis' one-hot words, as in the DNC): a story
is one token sequence, statements ending in ``.``, questions in ``?`` followed
by one ``-`` marker per answer word; the target at each marker is that answer
word. Reading the story once answers every question from the statements before
it. ``encoding=sentence`` makes each statement and each question one step
instead: its bag of words plus a bag of (position, word) one-hots, so a word
is the same feature wherever it stands and the word order is kept (as MemN2N's
position encoding does), while the story is about six times shorter; the ``-``
markers stay steps of their own. A
question counts as wrong if any of its answer words is wrong; a task fails when
its question error exceeds 5%.

Joint training: all chosen tasks' stories in one shuffled stream, batched by
similar length (less padding); a fixed share of each task's training stories
is held out for validation.

Augmentation (``permute_words``, off by default; the thesis used none): groups
of interchangeable words (the names, the places, the objects of a task); every
training batch draws, per story, one random permutation within each group and
applies it to the whole story, answers included, so "Mary went to the kitchen
... Where is Mary? kitchen" may be seen as "John went to the garden ... Where
is John? garden". Validation and test stories are never changed.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from . import register_task
from .base import Batch, Task, ratio, summarise_classes, score_classes

PAD, UNKNOWN, ANSWER = "<pad>", "<unk>", "-"
SPECIAL = [PAD, UNKNOWN, ANSWER]  # ids 0, 1, 2
FAILED_ABOVE_PCT = 5.0  # a task with more question error than this counts as failed (Table 3.1)
FILE_PATTERN = re.compile(r"^qa(\d+)_(.+)_(train|test)\.txt$")
ENCODINGS = ("word", "sentence")


@dataclass
class BabiConfig:
    path: str | None = None  # folder with qaN_*_train.txt / qaN_*_test.txt (1k: .../en, 10k: .../en-10k)
    fallback_path: str | None = None  # folder to take a task's missing train/test file from (the 10k set lacks qa3 train: use .../en)
    tasks: Any = "all"  # "all" or a list of task numbers, e.g. [1, 2]
    validation_fraction: float = 0.05  # share of each task's training stories held out for validation
    split_seed: int = 0  # seed of the validation split (fixed, independent of the run seed)
    bucket_batches: int = 50  # batches per length-sorted pool: more means less padding but less mixing
    encoding: str = "word"  # word: one word per step (the thesis); sentence: one statement/question per step, bag of words + bag of (position, word)
    sentence_words: int | None = None  # encoding=sentence: word positions per step; None = the longest line (train and test files)
    permute_words: Any = ()  # augmentation: groups of interchangeable words, each permuted at random per training story


# -- parsing -------------------------------------------------------------------------------------
@dataclass
class Line:
    """One numbered line of a story: a statement, or a question with its answer."""

    id: int
    words: list[str]
    answer: list[str] | None = None  # answer words; None for a statement
    supporting: list[int] = field(default_factory=list)  # ids of the supporting statements


@dataclass
class Story:
    task: int
    lines: list[Line]

    @property
    def questions(self) -> list[Line]:
        return [line for line in self.lines if line.answer is not None]


def tokenize(text: str) -> list[str]:
    """Lower-case words; ``.``, ``?``, ``!`` and ``,`` become tokens of their own."""
    return re.sub(r"([.?!,])", r" \1 ", text.lower()).split()


def parse_babi(text: str, task: int, source: str = "<text>") -> list[Story]:
    """Stories of one bAbI file; a malformed line raises a one-line ValueError naming ``source:line``."""
    stories: list[Story] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        head, _, rest = raw.strip().partition(" ")
        if not head.isdigit():
            raise ValueError(f"{where}: a bAbI line starts with its sentence id, got {raw.strip()[:40]!r}")
        line_id = int(head)
        if line_id == 1:
            stories.append(Story(task, []))
        elif not stories or line_id != stories[-1].lines[-1].id + 1:
            previous = stories[-1].lines[-1].id if stories else None
            raise ValueError(f"{where}: sentence id {line_id} after {previous}; ids count up from 1 within a story")
        stories[-1].lines.append(_parse_line(line_id, rest, stories[-1], where))
    return stories


def _parse_line(line_id: int, rest: str, story: Story, where: str) -> Line:
    if "\t" not in rest:
        return Line(line_id, tokenize(rest))
    fields = rest.split("\t")
    answer = [word for part in fields[1].split(",") for word in part.lower().split()] if len(fields) > 1 else []
    if not answer:
        raise ValueError(f"{where}: question {fields[0].strip()!r} has no answer after its tab")
    try:
        supporting = [int(i) for i in fields[2].split()] if len(fields) > 2 else []
    except ValueError:
        raise ValueError(f"{where}: supporting facts {fields[2]!r} must be sentence ids") from None
    statements = {line.id for line in story.lines if line.answer is None}
    missing = [i for i in supporting if i not in statements]
    if missing:
        raise ValueError(f"{where}: supporting fact id(s) {missing} are not earlier statements of this story")
    return Line(line_id, tokenize(fields[0]), answer, supporting)


def find_task_files(folder: Path) -> dict[tuple[int, str], Path]:
    """{(task number, "train" | "test"): file} of the bAbI files in ``folder``."""
    found = {}
    for path in sorted(Path(folder).iterdir()):
        match = FILE_PATTERN.match(path.name)
        if match:
            found[(int(match.group(1)), match.group(3))] = path
    return found


def task_title(path: Path) -> str:
    """"qa1_single-supporting-fact_train.txt" -> "single-supporting-fact"."""
    return FILE_PATTERN.match(path.name).group(2)


# -- encoding ---------------------------------------------------------------------------------
@dataclass
class EncodedStory:
    """A story as a sequence of L steps: tokens [L] (word encoding) or [L, S] (sentence: S word ids, 0-padded);
    targets, question: [L] long."""

    task: int
    tokens: torch.Tensor
    targets: torch.Tensor  # answer word id at each "-" marker, 0 elsewhere
    question: torch.Tensor  # the question's index within the story at each marker, -1 elsewhere

    @property
    def length(self) -> int:
        return self.tokens.shape[0]


def build_vocabulary(stories: list[Story]) -> list[str]:
    words = {w for s in stories for line in s.lines for w in line.words + (line.answer or [])}
    return SPECIAL + sorted(words - set(SPECIAL))


def encode_story(story: Story, index: dict[str, int], sentence_words: int = 0) -> EncodedStory:
    """Word encoding (``sentence_words=0``): one step per word. Otherwise one step per line, its word ids
    padded with 0 (``<pad>``) to ``sentence_words``; each answer marker is a step either way."""
    steps, targets, question = [], [], []
    lookup = lambda w: index.get(w, index[UNKNOWN])  # noqa: E731

    def add(ids: list[int], target: int = 0, asked: int = -1) -> None:
        if sentence_words and len(ids) > sentence_words:
            raise ValueError(f"a bAbI line of {len(ids)} words is longer than task.sentence_words={sentence_words}; "
                             f"set task.sentence_words={len(ids)} or more")
        chunks = [ids + [0] * (sentence_words - len(ids))] if sentence_words else [[i] for i in ids]
        steps.extend(chunks)
        targets.extend([target] * len(chunks))
        question.extend([asked] * len(chunks))

    asked = 0
    for line in story.lines:
        add([lookup(w) for w in line.words])
        if line.answer is not None:
            for word in line.answer:
                add([index[ANSWER]], lookup(word), asked)
            asked += 1
    tokens = torch.tensor(steps, dtype=torch.long).view(len(steps), -1)
    as_long = lambda values: torch.tensor(values, dtype=torch.long)  # noqa: E731
    return EncodedStory(story.task, tokens if sentence_words else tokens[:, 0], as_long(targets), as_long(question))


def bag_of_positions(tokens: torch.Tensor, vocabulary_size: int) -> torch.Tensor:
    """[T, B, S] word ids (0 = padding) -> [T, B, (S + 1) V] float: the bag of words (a one at v for word v,
    the same feature wherever the word stands) and the order (a one at (j + 1) V + v for word v at position j)."""
    positions = tokens.shape[-1]
    slots = torch.cat([tokens, tokens + vocabulary_size * torch.arange(1, positions + 1)], -1)
    present = (tokens > 0).float()
    bags = torch.zeros(*tokens.shape[:-1], (positions + 1) * vocabulary_size)
    return bags.scatter_(-1, slots, torch.cat([present, present], -1))  # padding writes 0 to a <pad> slot


def collate(stories: list[EncodedStory], vocabulary_size: int = 0) -> Batch:
    """Stories padded at the end to one batch; question ids made unique across the batch.

    Sentence-encoded stories ([L, S] tokens) become bag-of-positions vectors, for which ``vocabulary_size``
    is needed."""
    T, B = max(s.length for s in stories), len(stories)
    inputs = torch.zeros(T, B, *stories[0].tokens.shape[1:], dtype=torch.long)
    targets = torch.zeros(T, B, dtype=torch.long)
    question = torch.full((T, B), -1, dtype=torch.long)
    task = torch.zeros(T, B, dtype=torch.long)
    offset = 0
    for b, story in enumerate(stories):
        inputs[:story.length, b] = story.tokens
        targets[:story.length, b] = story.targets
        asked = story.question >= 0
        question[:story.length, b] = torch.where(asked, story.question + offset, story.question)
        task[:story.length, b] = story.task
        offset += int(story.question.max()) + 1 if asked.any() else 0
    if inputs.dim() == 3:
        inputs = bag_of_positions(inputs, vocabulary_size)
    return Batch(inputs, targets, question >= 0, None, {"question": question, "task": task})


# -- the task ---------------------------------------------------------------------------------
@register_task("babi", BabiConfig)
class BabiTask(Task):
    """Joint training on the chosen bAbI tasks; metrics per task and over all."""

    output_kind = "classes"

    def __init__(self, config: BabiConfig, seed: int):
        if config.encoding not in ENCODINGS:
            raise ValueError(f"task.encoding={config.encoding!r} is not known; use word or sentence")
        if config.sentence_words is not None and (not isinstance(config.sentence_words, int) or config.sentence_words < 1):
            raise ValueError(f"task.sentence_words={config.sentence_words} must be a positive integer (null: the longest line)")
        if not 0 <= config.validation_fraction < 1:
            raise ValueError(f"task.validation_fraction={config.validation_fraction} must be in [0, 1)")
        if config.bucket_batches < 1:
            raise ValueError(f"task.bucket_batches={config.bucket_batches} must be >= 1")
        self.config, self.seed = config, seed
        self.files, self.notes = locate_files(config)
        for note in self.notes:
            print(f"babi: {note}", flush=True)
        self.task_numbers = sorted({task for task, _ in self.files})
        self.titles = {task: task_title(self.files[task, "train"]) for task in self.task_numbers}
        train = {t: read_stories(self.files[t, "train"], t) for t in self.task_numbers}
        self.train_stories, self.validation_stories = split_validation(train, config.validation_fraction, config.split_seed)
        self.epoch, self.position = 0, 0
        self.sentence_words = 0
        if config.encoding == "sentence":  # sized from the test files too, so evaluation never meets a longer line
            stories = self.train_stories + self.validation_stories + self.test_stories
            self.sentence_words = config.sentence_words or max(len(line.words) for s in stories for line in s.lines)
        self.set_vocabulary(build_vocabulary(self.train_stories))
        self.permute_groups = check_word_groups(config.permute_words, self.index)

    def set_vocabulary(self, vocabulary: list[str]) -> None:
        self.vocabulary = list(vocabulary)
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        self.output_size = len(self.vocabulary)
        self.input_kind = "vector" if self.sentence_words else "token"
        self.input_size = len(self.vocabulary) * (self.sentence_words + 1 if self.sentence_words else 1)
        self.train_encoded = [self.encode(s) for s in self.train_stories]
        self.validation_encoded = [self.encode(s) for s in self.validation_stories]
        self._epoch_batches: tuple[int, int, list[list[int]]] | None = None

    @functools.cached_property
    def test_stories(self) -> list[Story]:
        """The chosen tasks' test stories, read once (for the sentence encoding's size and for evaluate)."""
        return [s for t in self.task_numbers for s in read_stories(self.files[t, "test"], t)]

    def encode(self, story: Story) -> EncodedStory:
        return encode_story(story, self.index, self.sentence_words)

    def collate(self, stories: list[EncodedStory]) -> Batch:
        return collate(stories, len(self.vocabulary))

    # -- data -------------------------------------------------------------------------------
    def train_batch(self, generator: torch.Generator, batch_size: int) -> Batch:
        """The next batch of this epoch's length-bucketed order (seeded by run seed and epoch, so resumable)."""
        batches = self._batches_of_epoch(self.epoch, batch_size)
        if self.position >= len(batches):
            self.epoch, self.position = self.epoch + 1, 0
            batches = self._batches_of_epoch(self.epoch, batch_size)
        chosen = batches[self.position]
        self.position += 1
        if not self.permute_groups:
            return self.collate([self.train_encoded[i] for i in chosen])
        return self.collate([self.encode(permute_story(self.train_stories[i], self.permute_groups, generator))
                             for i in chosen])

    def _batches_of_epoch(self, epoch: int, batch_size: int) -> list[list[int]]:
        if self._epoch_batches is None or self._epoch_batches[:2] != (epoch, batch_size):
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            lengths = [s.length for s in self.train_encoded]
            self._epoch_batches = (epoch, batch_size, bucketed_batches(lengths, batch_size, self.config.bucket_batches, generator))
        return self._epoch_batches[2]

    def validation_batches(self, batch_size: int) -> Iterator[Batch]:
        return sorted_batches(self.validation_encoded, batch_size, self.collate)

    def progress(self) -> dict[str, float]:
        batches = len(self._epoch_batches[2]) if self._epoch_batches else 0
        return {"epoch": round(self.epoch + self.position / batches, 3) if batches else float(self.epoch)}

    # -- metrics ----------------------------------------------------------------------------
    def score(self, logits: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Answer-word sums plus, per task, questions and questions with any wrong answer word."""
        sums = score_classes(logits, batch)
        mask, question = batch.mask, batch.info["question"]
        if not mask.any():
            return sums
        wrong = (logits.argmax(-1) != batch.targets) & mask
        count = int(question.max()) + 1
        wrong_words = torch.zeros(count, device=logits.device).scatter_add_(0, question[mask], wrong[mask].float())
        task_of = torch.zeros(count, dtype=torch.long, device=logits.device).scatter_(0, question[mask], batch.info["task"][mask])
        for task in self.task_numbers:
            mine = task_of == task
            sums[f"questions_qa{task}"] = float(mine.sum())
            sums[f"errors_qa{task}"] = float((mine & (wrong_words > 0)).sum())
        return sums

    def summarise(self, sums: dict[str, float]) -> dict[str, float]:
        summary = summarise_classes(sums)
        per_task = {t: 100 * ratio(sums.get(f"errors_qa{t}", 0.0), sums.get(f"questions_qa{t}", 0.0)) for t in self.task_numbers}
        questions = sum(sums.get(f"questions_qa{t}", 0.0) for t in self.task_numbers)
        summary["error_pct"] = 100 * ratio(sum(sums.get(f"errors_qa{t}", 0.0) for t in self.task_numbers), questions)
        known = [e for e in per_task.values() if not math.isnan(e)]
        summary["mean_task_error_pct"] = sum(known) / len(known) if known else math.nan
        summary["failed_tasks"] = float(sum(e > FAILED_ABOVE_PCT for e in known)) if known else math.nan
        summary.update({f"error_pct_qa{t}": e for t, e in per_task.items()})
        return summary

    # -- evaluation: the per-task test-error table ----------------------------------------------------
    def evaluate(self, run_model, eval_cfg: dict[str, Any]) -> dict[str, Any]:
        test = [self.encode(s) for s in self.test_stories]
        sums: dict[str, float] = {}
        with torch.no_grad():
            for batch in sorted_batches(test, eval_cfg.get("batch_size", 32), self.collate):
                for key, value in self.score(run_model(batch), batch).items():
                    sums[key] = sums.get(key, 0.0) + value
        summary = self.summarise(sums)
        rows = [{"task": t, "name": self.titles[t], "questions": int(sums.get(f"questions_qa{t}", 0)),
                 "error_pct": summary[f"error_pct_qa{t}"]} for t in self.task_numbers]
        result_summary = {
            "mean_error_pct": summary["mean_task_error_pct"], "failed_tasks": int(summary["failed_tasks"]),
            "failed": [r["task"] for r in rows if r["error_pct"] > FAILED_ABOVE_PCT],
            "answer_word_accuracy": summary["accuracy"], "question_error_pct": summary["error_pct"],
            "train_files": {t: str(self.files[t, "train"]) for t in self.task_numbers},
            "test_files": {t: str(self.files[t, "test"]) for t in self.task_numbers},
        }
        return {"rows": rows, "summary": result_summary, "notes": self.notes,
                "markdown": error_table_markdown({"model": {"rows": rows, "summary": result_summary}}, self.notes)}

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "sentence_words": self.sentence_words, "epoch": self.epoch,
                "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_words = state.get("sentence_words", 0)  # checkpoints from before the sentence encoding: word
        if state["vocabulary"] != self.vocabulary or saved_words != self.sentence_words:
            self.sentence_words = saved_words
            self.set_vocabulary(state["vocabulary"])  # the model's input and output sizes follow the saved task
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def locate_files(config: BabiConfig) -> tuple[dict[tuple[int, str], Path], list[str]]:
    """{(task, split): file} for the chosen tasks, and notes on files taken from ``fallback_path``."""
    fix = "pass task.path=<folder with qaN_*_train.txt files>, e.g. task.path=/work/shared/data/babi/tasks_1-20_v1-2/en-10k"
    if not config.path:
        raise ValueError(f"task=babi needs its data: {fix}")
    folder = Path(config.path)
    if not folder.is_dir():
        raise ValueError(f"task.path={config.path} is not a folder; {fix}")
    found = find_task_files(folder)
    fallback = find_task_files(Path(config.fallback_path)) if config.fallback_path and Path(config.fallback_path).is_dir() else {}
    if config.fallback_path and not Path(config.fallback_path).is_dir():
        raise ValueError(f"task.fallback_path={config.fallback_path} is not a folder; point it at another bAbI set (e.g. .../en) or set it to null")
    available = sorted({t for t, _ in found} | {t for t, _ in fallback})
    if not available:
        raise ValueError(f"no qaN_*_train.txt / _test.txt files in {folder}; {fix}")
    tasks = available if config.tasks == "all" else _task_list(config.tasks)
    files, notes = {}, []
    for task in tasks:
        for split in ("train", "test"):
            if (task, split) in found:
                files[task, split] = found[task, split]
            elif (task, split) in fallback:
                files[task, split] = fallback[task, split]
                notes.append(f"qa{task}: no {split} file in {folder}; using {fallback[task, split]}")
            else:
                raise ValueError(f"no qa{task}_*_{split}.txt in {folder}; pass task.fallback_path=<a bAbI folder that has it> "
                                 f"(e.g. the 1k set) or leave task {task} out of task.tasks")
    return files, notes


def _task_list(tasks: Any) -> list[int]:
    values = [tasks] if isinstance(tasks, int) else list(tasks) if isinstance(tasks, (list, tuple)) else None
    if not values or not all(isinstance(t, int) and 1 <= t <= 20 for t in values):
        raise ValueError(f"task.tasks={tasks!r} must be 'all' or a list of task numbers 1..20, e.g. task.tasks=[1,2]")
    return sorted(set(values))


def check_word_groups(groups: Any, index: dict[str, int]) -> list[list[str]]:
    """``task.permute_words`` as lists of known words, no word in two groups; a one-line ValueError otherwise."""
    fix = "e.g. task.permute_words=[[john,mary,sandra,daniel],[kitchen,garden,office]]"
    if not groups:
        return []
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, (list, tuple)) for g in groups):
        raise ValueError(f"task.permute_words={groups!r} must be a list of word lists; {fix}")
    seen: set[str] = set()
    checked = []
    for group in groups:
        words = [str(w).lower() for w in group]
        unknown = [w for w in words if w not in index or w in SPECIAL]
        if unknown:
            raise ValueError(f"task.permute_words: {unknown[0]!r} is not a word of the training stories; {fix}")
        if seen & set(words) or len(set(words)) != len(words):
            raise ValueError(f"task.permute_words: a word appears twice ({sorted(seen & set(words) or words)[0]!r}); "
                             f"each word belongs to one group")
        seen |= set(words)
        checked.append(words)
    return checked


def permute_story(story: Story, groups: list[list[str]], generator: torch.Generator) -> Story:
    """The story with each group's words permuted by one random permutation (the same for every line)."""
    mapping = {}
    for group in groups:
        order = torch.randperm(len(group), generator=generator).tolist()
        mapping.update({word: group[j] for word, j in zip(group, order)})
    lines = [Line(line.id, [mapping.get(w, w) for w in line.words],
                  None if line.answer is None else [mapping.get(w, w) for w in line.answer], line.supporting)
             for line in story.lines]
    return Story(story.task, lines)


def read_stories(path: Path, task: int) -> list[Story]:
    return parse_babi(Path(path).read_text(encoding="utf-8"), task, str(path))


def split_validation(stories: dict[int, list[Story]], fraction: float, seed: int) -> tuple[list[Story], list[Story]]:
    """(train, validation): ``fraction`` of each task's stories, at least one when fraction > 0, chosen by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    train, validation = [], []
    for task in sorted(stories):
        order = torch.randperm(len(stories[task]), generator=generator).tolist()
        held = max(1, round(fraction * len(order))) if fraction > 0 else 0
        validation += [stories[task][i] for i in sorted(order[:held])]
        train += [stories[task][i] for i in sorted(order[held:])]
    return train, validation


def bucketed_batches(lengths: list[int], batch_size: int, pool_batches: int, generator: torch.Generator) -> list[list[int]]:
    """Indices in batches: shuffle, sort pools of ``pool_batches`` batches by length, cut, shuffle the batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def sorted_batches(stories: list[EncodedStory], batch_size: int, make_batch=collate) -> Iterator[Batch]:
    """Every story once, longest first, in batches of similar length."""
    order = sorted(range(len(stories)), key=lambda i: -stories[i].length)
    for start in range(0, len(order), batch_size):
        yield make_batch([stories[i] for i in order[start:start + batch_size]])


def error_table_markdown(results: dict[str, dict[str, Any]], notes: list[str] = ()) -> str:
    """Table 3.1's layout: one row per task, one column per model (test error %), then mean and failed count."""
    names = list(results)
    tasks = {r["task"]: r["name"] for result in results.values() for r in result["rows"]}
    error = {name: {r["task"]: r["error_pct"] for r in result["rows"]} for name, result in results.items()}
    lines = ["| task | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for task in sorted(tasks):
        cells = [f"{error[n][task]:.1f}" if task in error[n] else "" for n in names]
        lines.append(f"| {task}: {tasks[task]} | " + " | ".join(cells) + " |")
    lines.append("| **mean error (%)** | " + " | ".join(f"{results[n]['summary']['mean_error_pct']:.1f}" for n in names) + " |")
    lines.append(f"| **failed tasks (err. > {FAILED_ABOVE_PCT:g}%)** | "
                 + " | ".join(str(results[n]["summary"]["failed_tasks"]) for n in names) + " |")
    return "\n".join(lines + ([""] + [f"- {note}" for note in notes] if notes else []))
