"""Supervised tasks: generators against brute-force solutions, the curriculum, the bAbI parser and metrics."""
import math

import pytest
import torch

from training.supervised.curriculum import CurriculumConfig, ExponentialCurriculum
from training.supervised.tasks import build_task
from training.supervised.tasks.algorithmic import code_bits, distinct_codes
from training.supervised.tasks.babi import (
    BabiConfig, BabiTask, build_vocabulary, collate, encode_story, error_table_markdown, locate_files, parse_babi,
    permute_story, read_stories,
)

# -- algorithmic generators vs brute force ------------------------------------------------------------


def rows_of(batch, b):
    """Sequence b as Python lists: inputs [T][I], targets [T][O], mask [T]."""
    return batch.inputs[:, b].tolist(), batch.targets[:, b].tolist(), batch.mask[:, b].tolist()


def check_answer_phase(inputs, mask, answer_flag, answers, targets):
    """The mask is exactly the steps flagged as answers, and they hold ``answers`` in order."""
    assert [bool(step[answer_flag]) for step in inputs] == mask
    assert [t for t, m in zip(targets, mask) if m] == answers
    assert all(not any(t) for t, m in zip(targets, mask) if not m)


@pytest.mark.parametrize("level", [0, 3, 9])
def test_copy_targets_are_the_inputs_in_order(level):
    task = build_task({"name": "copy", "bits": 5, "min_size": 1}, seed=0)
    batch = task.sample(level, 6, torch.Generator().manual_seed(level))
    assert batch.inputs.shape == (2 * (level + 1) + 1, 6, 7)
    for b in range(6):
        inputs, targets, mask = rows_of(batch, b)
        delimiter = [i for i, step in enumerate(inputs) if step[5] == 1]
        assert delimiter == [level + 1]
        data = [step[:5] for step in inputs[:delimiter[0]]]
        check_answer_phase(inputs, mask, 6, data, targets)


@pytest.mark.parametrize("level, item_length", [(0, 1), (5, 1), (4, 3), (30, 2)])
def test_associative_recall_targets_match_a_dictionary_lookup(level, item_length):
    task = build_task({"name": "associative_recall", "bits": 4, "item_length": item_length}, seed=0)
    batch = task.sample(level, 8, torch.Generator().manual_seed(level))
    bits, flags = 4, {"key": 4, "value": 5, "query": 6, "answer": 7}
    for b in range(8):
        inputs, targets, mask = rows_of(batch, b)
        runs = {name: [tuple(step[:bits]) for step in inputs if step[col] == 1] for name, col in flags.items()}
        chunk = lambda steps: [tuple(steps[i:i + item_length]) for i in range(0, len(steps), item_length)]  # noqa: E731
        keys, values, (query,) = chunk(runs["key"]), chunk(runs["value"]), chunk(runs["query"])
        assert len(keys) == len(values) == level + 1
        assert len(set(keys)) == len(keys), "keys must be distinct"
        memory = dict(zip(keys, values))
        expected = [list(step) for step in memory[query]]
        check_answer_phase(inputs, mask, flags["answer"], expected, targets)
        # Keys and values alternate: pair i is L key steps then L value steps.
        order = [("key" if s[4] else "value") for s in inputs if s[4] or s[5]]
        assert order == (["key"] * item_length + ["value"] * item_length) * (level + 1)


@pytest.mark.parametrize("level, fraction", [(0, 0.8), (19, 0.8), (10, 0.5), (6, 1.0)])
def test_priority_sort_targets_are_the_top_keys_by_priority(level, fraction):
    task = build_task({"name": "priority_sort", "bits": 6, "fraction": fraction}, seed=0)
    batch = task.sample(level, 5, torch.Generator().manual_seed(level))
    n = level + 1
    m = max(1, round(fraction * n))
    for b in range(5):
        inputs, targets, mask = rows_of(batch, b)
        items = [(step[6], step[:6]) for step in inputs[:n]]
        assert inputs[n][7] == 1 and all(-1 <= p <= 1 for p, _ in items)
        expected = [key for _, key in sorted(items, key=lambda item: -item[0])[:m]]
        check_answer_phase(inputs, mask, 8, expected, targets)


def test_distinct_codes_in_a_large_space_and_code_bits():
    codes = distinct_codes(16, 300, 20, torch.Generator().manual_seed(0))  # rejection path (2^20 > 65536)
    assert all(len(set(row.tolist())) == 300 for row in codes) and codes.max() < 2 ** 20
    assert code_bits(torch.tensor([6]), 4).tolist() == [[0.0, 1.0, 1.0, 0.0]]


def test_associative_recall_curriculum_is_capped_by_the_key_space():
    task = build_task({"name": "associative_recall", "bits": 2, "item_length": 1}, seed=0)
    assert task.curriculum.config.max_level == 3  # 4 distinct 2-bit keys, min_size 1
    with pytest.raises(ValueError, match="largest level"):
        task.evaluate(lambda b: b.targets, {"levels": [4]})
    task.curriculum.level = 2  # the default levels (h, 2h, 4h, 8h) stop at the largest level instead of failing
    assert [row["level"] for row in task.evaluate(lambda b: b.targets, {})["rows"]] == [2, 3]


def test_bit_metrics_count_wrong_bits_per_sequence():
    task = build_task({"name": "copy", "bits": 3}, seed=0)
    batch = task.sample(1, 2, torch.Generator().manual_seed(0))
    logits = (batch.targets * 2 - 1) * 5.0  # confident and right everywhere
    logits[3, 0, 1] *= -1  # one wrong answer bit in sequence 0
    logits[0, 1, 2] *= -1  # a wrong bit outside the answer phase does not count
    summary = task.summarise(task.score(logits, batch))
    assert summary["bit_errors_per_seq"] == 0.5


# -- the curriculum ---------------------------------------------------------------------------------


def test_curriculum_doubles_after_a_full_window_under_the_threshold():
    curriculum = ExponentialCurriculum(CurriculumConfig(start_level=1, threshold=1.0, window=3, max_level=4))
    assert [curriculum.observe(x) for x in (0.5, 0.5)] == [False, False]  # window not full yet
    assert curriculum.observe(0.5) and curriculum.level == 2
    assert [curriculum.observe(x) for x in (0.1, 2.9, 0.1, 0.1)] == [False] * 4  # means 1.03 >= threshold
    assert curriculum.observe(0.1) and curriculum.level == 4  # the window slid past 2.9: mean 0.1
    assert not any(curriculum.observe(0.0) for _ in range(10)) and curriculum.level == 4  # max_level


def test_curriculum_samples_every_level_from_zero_to_h():
    curriculum = ExponentialCurriculum(CurriculumConfig(start_level=4))
    generator = torch.Generator().manual_seed(0)
    seen = [curriculum.sample(generator) for _ in range(500)]
    assert set(seen) == {0, 1, 2, 3, 4}
    restored = ExponentialCurriculum(CurriculumConfig(start_level=1))
    curriculum.observe(0.3)
    restored.load_state_dict(curriculum.state_dict())
    assert restored.level == 4 and list(restored.recent) == [0.3]


@pytest.mark.parametrize("values, message", [
    ({"start_level": 0}, "start_level"), ({"threshold": 0}, "threshold"), ({"window": 0}, "window"),
    ({"start_level": 8, "max_level": 4}, "max_level"),
])
def test_bad_curriculum_config(values, message):
    with pytest.raises(ValueError, match=message):
        CurriculumConfig(**values)


# -- bAbI parser ----------------------------------------------------------------------------------------

# Every form of the format: trailing space before the tab (qa1), none (qa20), several supporting
# facts (qa8), comma-separated answers (qa8 lists, qa19 directions), yes/no, "nothing", a story
# restart, CRLF line ends and a blank line.
SAMPLE = (
    "1 Mary moved to the bathroom.\n"
    "2 John went to the hallway.\n"
    "3 Where is Mary? \tbathroom\t1\n"
    "4 Mary got the football there.\r\n"
    "5 Mary took the milk.\n"
    "6 What is Mary carrying?\tfootball,milk\t4 5\n"
    "\n"
    "1 The office is east of the hallway.\n"
    "2 The kitchen is north of the office.\n"
    "3 How do you go from the kitchen to the hallway?\ts,w\t2 1\n"
    "4 Is John in the office? \tno\t\n"
    "5 Sandra dropped the apple.\n"
    "6 What is Sandra carrying?\tnothing\t5\n"
)


def test_parser_reads_every_story_question_and_supporting_fact_form():
    stories = parse_babi(SAMPLE, task=8, source="sample")
    assert len(stories) == 2 and all(s.task == 8 for s in stories)
    first, second = stories
    assert [line.id for line in first.lines] == [1, 2, 3, 4, 5, 6]
    assert first.lines[0].words == ["mary", "moved", "to", "the", "bathroom", "."] and first.lines[0].answer is None
    q1, q2 = first.questions
    assert (q1.words, q1.answer, q1.supporting) == (["where", "is", "mary", "?"], ["bathroom"], [1])
    assert (q2.answer, q2.supporting) == (["football", "milk"], [4, 5])
    path, yes_no, nothing = second.questions
    assert (path.answer, path.supporting) == (["s", "w"], [2, 1])
    assert (yes_no.answer, yes_no.supporting) == (["no"], [])
    assert nothing.answer == ["nothing"]


@pytest.mark.parametrize("text, message", [
    ("x Mary moved.\n", "sample:1: a bAbI line starts with its sentence id"),
    ("1 Mary moved.\n3 John left.\n", "sample:2: sentence id 3 after 1"),
    ("2 Mary moved.\n", "sample:1: sentence id 2 after None"),
    ("1 Mary moved.\n2 Where is Mary?\t\t1\n", r"sample:2: question 'Where is Mary\?' has no answer"),
    ("1 Mary moved.\n2 Where is Mary?\tkitchen\t2\n", r"sample:2: supporting fact id\(s\) \[2\]"),
    ("1 Mary moved.\n2 Where is Mary?\tkitchen\tone\n", "sample:2: supporting facts 'one'"),
])
def test_parser_rejects_malformed_lines_in_one_line(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_babi(text, task=1, source="sample")
    assert "\n" not in str(info.value)


def test_encoding_puts_one_marker_per_answer_word():
    stories = parse_babi(SAMPLE, task=8)
    vocabulary = build_vocabulary(stories)
    index = {w: i for i, w in enumerate(vocabulary)}
    encoded = encode_story(stories[0], index)
    words = [vocabulary[i] for i in encoded.tokens.tolist()]
    assert words[:6] == ["mary", "moved", "to", "the", "bathroom", "."]
    assert words[12:17] == ["where", "is", "mary", "?", "-"]
    assert words[-7:] == ["what", "is", "mary", "carrying", "?", "-", "-"]
    markers = [i for i, w in enumerate(words) if w == "-"]
    assert encoded.question[markers].tolist() == [0, 1, 1]
    assert [vocabulary[i] for i in encoded.targets[markers].tolist()] == ["bathroom", "football", "milk"]
    assert (encoded.question >= 0).sum() == 3


def test_sentence_encoding_makes_each_line_one_step_with_its_word_order():
    stories = parse_babi(SAMPLE, task=8)
    vocabulary = build_vocabulary(stories)
    index, V = {w: i for i, w in enumerate(vocabulary)}, len(vocabulary)
    encoded = encode_story(stories[0], index, sentence_words=11)
    # 6 lines + 3 answer markers; each step holds its line's word ids, 0-padded.
    assert encoded.tokens.shape == (9, 11) and encoded.length == 9
    assert [vocabulary[i] for i in encoded.tokens[0].tolist()] == ["mary", "moved", "to", "the", "bathroom", "."] + ["<pad>"] * 5
    assert [vocabulary[i] for i in encoded.tokens[3].tolist() if i] == ["-"]
    assert encoded.question.tolist() == [-1, -1, -1, 0, -1, -1, -1, 1, 1]
    assert [vocabulary[i] for i in encoded.targets[encoded.question >= 0].tolist()] == ["bathroom", "football", "milk"]
    # The batch's input: a one at word for each word of the line (the bag), and at (j + 1) V + word for
    # word j (the order); nothing for padding.
    batch = collate([encoded, encode_story(stories[1], index, sentence_words=11)], V)
    assert batch.inputs.shape == (10, 2, 12 * V) and batch.inputs.dtype == torch.float32
    words = ["mary", "moved", "to", "the", "bathroom", "."]
    ones = batch.inputs[0, 0].nonzero().flatten().tolist()
    assert ones == sorted(index[w] for w in words) + [(j + 1) * V + index[w] for j, w in enumerate(words)]
    assert batch.inputs[0, 0].sum() == 12 and batch.inputs[9, 0].sum() == 0  # story 0 has 9 steps, story 1 has 10
    # Order is kept: the same words in another order give another input.
    swapped = parse_babi("1 the office is east of the hallway .\n2 the hallway is east of the office .\n", task=4)[0]
    bags = collate([encode_story(swapped, index, sentence_words=11)], V).inputs[:, 0]
    assert not torch.equal(bags[0], bags[1]) and torch.equal(bags[0, :V], bags[1, :V])  # same bag, other order
    with pytest.raises(ValueError, match="longer than task.sentence_words=3; set task.sentence_words=6"):
        encode_story(stories[0], index, sentence_words=3)


def test_sentence_encoded_task_sizes_its_input_from_the_longest_line(tmp_path):
    folder = write_babi(tmp_path / "data", [1])
    longest_train = max(len(line.words) for s in read_stories(folder / "qa1_toy-task_train.txt", 1) for line in s.lines)
    (folder / "qa1_toy-task_test.txt").write_text("1 Mary went back to the big old kitchen.\n2 Where is Mary? \tkitchen\t1\n")
    task = BabiTask(BabiConfig(path=str(folder), encoding="sentence"), seed=0)
    assert task.sentence_words == 9 > longest_train  # the test file's line, so evaluation fits
    assert task.input_kind == "vector" and task.input_size == 10 * len(task.vocabulary)
    assert task.evaluate(lambda batch: torch.zeros(*batch.targets.shape, task.output_size), {})["rows"][0]["questions"] == 1
    batch = task.train_batch(torch.Generator().manual_seed(0), 4)
    assert batch.inputs.shape[2] == task.input_size and batch.length == 4  # 2 statements, question, marker
    word = BabiTask(BabiConfig(path=str(folder)), seed=0)
    assert word.input_kind == "token" and word.input_size == len(word.vocabulary)
    with pytest.raises(ValueError, match="task.encoding='letters' is not known; use word or sentence"):
        BabiTask(BabiConfig(path=str(folder), encoding="letters"), seed=0)


def test_question_errors_count_a_question_wrong_when_any_answer_word_is():
    stories = parse_babi(SAMPLE, task=8) + parse_babi("1 Mary moved to the office.\n2 Where is Mary?\toffice\t1\n", task=1)
    task = BabiTask.__new__(BabiTask)  # metrics only: no files needed
    task.task_numbers = [1, 8]
    vocabulary = build_vocabulary(stories)
    index = {w: i for i, w in enumerate(vocabulary)}
    batch = collate([encode_story(s, index) for s in stories])
    assert sorted(set(batch.info["question"][batch.mask].tolist())) == list(range(6))  # unique across the batch
    logits = torch.nn.functional.one_hot(batch.targets, len(vocabulary)).float() * 10
    # Story 0, question 1 ("football,milk"): get only "milk" wrong. Story 1: its 2nd question ("s,w") fully wrong.
    t_milk = (batch.info["question"][:, 0] == 1).nonzero().flatten()[-1]
    logits[t_milk, 0] = logits[t_milk, 0].roll(1)
    for t in (batch.info["question"][:, 1] == 2).nonzero().flatten():
        logits[t, 1] = logits[t, 1].roll(1)
    summary = task.summarise(task.score(logits, batch))
    assert summary["accuracy"] == pytest.approx(5 / 8)  # 8 answer words, 3 wrong
    assert summary["error_pct_qa8"] == pytest.approx(100 * 2 / 5) and summary["error_pct_qa1"] == 0
    assert summary["error_pct"] == pytest.approx(100 * 2 / 6)
    assert summary["mean_task_error_pct"] == pytest.approx(20.0) and summary["failed_tasks"] == 1
    empty = task.summarise({})
    assert set(empty) == set(summary) and math.isnan(empty["error_pct_qa1"])


# -- bAbI files -----------------------------------------------------------------------------------------

STORY = "1 {a} went to the {p}.\n2 {b} went to the {q}.\n3 Where is {a}? \t{p}\t1\n"


def write_babi(folder, tasks, splits=("train", "test")):
    folder.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for split in splits:
            text = "".join(STORY.format(a="Mary", b="John", p=p, q="garden") for p in ["kitchen", "office"] * 10)
            (folder / f"qa{task}_toy-task_{split}.txt").write_text(text)
    return folder


def test_loader_uses_the_fallback_for_a_missing_train_file_and_says_so(tmp_path):
    main, small = write_babi(tmp_path / "10k", [1, 2]), write_babi(tmp_path / "1k", [1, 2, 3])
    (main / "qa3_toy-task_test.txt").write_text(STORY.format(a="Mary", b="John", p="hall", q="garden"))
    files, notes = locate_files(BabiConfig(path=str(main), fallback_path=str(small)))
    assert files[3, "train"] == small / "qa3_toy-task_train.txt" and files[3, "test"] == main / "qa3_toy-task_test.txt"
    assert notes == [f"qa3: no train file in {main}; using {small / 'qa3_toy-task_train.txt'}"]
    with pytest.raises(ValueError, match="no qa3_\\*_train.txt .*task.fallback_path"):
        locate_files(BabiConfig(path=str(main)))
    task = BabiTask(BabiConfig(path=str(main), fallback_path=str(small), tasks=[1, 3], validation_fraction=0.1), seed=0)
    assert task.task_numbers == [1, 3] and len(task.validation_stories) == 4 and len(task.train_stories) == 36
    assert task.vocabulary[:3] == ["<pad>", "<unk>", "-"] and "kitchen" in task.vocabulary


@pytest.mark.parametrize("config, message", [
    (dict(path=None), "task=babi needs its data: pass task.path="),
    (dict(path="/no/such/folder"), "is not a folder"),
    (dict(tasks=[25]), "task.tasks"),
    (dict(validation_fraction=1.0), "validation_fraction"),
])
def test_bad_babi_config(tmp_path, config, message):
    folder = write_babi(tmp_path / "data", [1])
    with pytest.raises(ValueError, match=message):
        BabiTask(BabiConfig(**{"path": str(folder), **config}), seed=0)


def test_babi_epoch_order_is_resumable_and_covers_every_story(tmp_path):
    folder = write_babi(tmp_path / "data", [1, 2])
    config = BabiConfig(path=str(folder), validation_fraction=0.0, bucket_batches=2)
    task = BabiTask(config, seed=3)
    first = [task.train_batch(None, 4).inputs for _ in range(5)]  # 40 stories = 10 batches per epoch
    seen = torch.cat([b.T for b in first + [task.train_batch(None, 4).inputs for _ in range(5)]])
    assert seen.shape[0] == 40 and task.position == 10
    restored = BabiTask(config, seed=3)
    restored.load_state_dict({**task.state_dict(), "position": 5, "epoch": 0})
    again = BabiTask(config, seed=3)
    for _ in range(5):
        again.train_batch(None, 4)
    assert torch.equal(restored.train_batch(None, 4).inputs, again.train_batch(None, 4).inputs)


def test_permuted_words_keep_each_story_consistent_and_leave_validation_alone(tmp_path):
    folder = write_babi(tmp_path / "data", [1])
    groups = [["mary", "john"], ["kitchen", "office", "garden"]]
    plain = BabiTask(BabiConfig(path=str(folder), validation_fraction=0.1, encoding="sentence"), seed=0)
    task = BabiTask(BabiConfig(path=str(folder), validation_fraction=0.1, encoding="sentence", permute_words=groups), seed=0)
    generator = torch.Generator().manual_seed(1)
    story = plain.train_stories[0]  # Mary went to the kitchen. John went to the garden. Where is Mary? kitchen
    seen = set()
    for _ in range(40):
        permuted = permute_story(story, task.permute_groups, generator)
        first, second, question = permuted.lines
        person, place = first.words[0], first.words[-2]
        assert question.words[2] == person and question.answer == [place]  # the answer follows its place
        assert second.words[0] != person and second.words[-2] != place  # a permutation: distinct stay distinct
        assert [len(line.words) for line in permuted.lines] == [len(line.words) for line in story.lines]
        seen.add((person, place))
    assert seen == {(p, q) for p in groups[0] for q in groups[1]}  # every assignment is drawn
    # Training batches are the encoded permuted stories, drawn from the training generator.
    batch = task.train_batch(torch.Generator().manual_seed(5), 4)
    again = BabiTask(BabiConfig(path=str(folder), validation_fraction=0.1, encoding="sentence", permute_words=groups), seed=0)
    draws = torch.Generator().manual_seed(5)
    chosen = again._batches_of_epoch(0, 4)[0]
    expected = again.collate([again.encode(permute_story(again.train_stories[i], again.permute_groups, draws)) for i in chosen])
    assert torch.equal(batch.inputs, expected.inputs) and torch.equal(batch.targets, expected.targets)
    validation = [b.inputs for b in task.validation_batches(8)]
    assert all(torch.equal(x, y) for x, y in zip(validation, [b.inputs for b in plain.validation_batches(8)]))


@pytest.mark.parametrize("groups, message", [
    ([["mary", "zebra"]], "'zebra' is not a word of the training stories"),
    ([["mary", "john"], ["john", "kitchen"]], "appears twice"),
    (["mary"], "must be a list of word lists"),
])
def test_bad_permute_words(tmp_path, groups, message):
    folder = write_babi(tmp_path / "data", [1])
    with pytest.raises(ValueError, match=message):
        BabiTask(BabiConfig(path=str(folder), permute_words=groups), seed=0)


def test_error_table_has_tasks_as_rows_and_models_as_columns():
    result = lambda e1, e2: {"rows": [{"task": 1, "name": "a", "error_pct": e1}, {"task": 2, "name": "b", "error_pct": e2}],  # noqa: E731
                              "summary": {"mean_error_pct": (e1 + e2) / 2, "failed_tasks": int(e1 > 5) + int(e2 > 5)}}
    table = error_table_markdown({"lstm": result(28.8, 57.3), "sam": result(0.0, 0.2)}, ["qa3: note"])
    lines = table.splitlines()
    assert lines[0] == "| task | lstm | sam |"
    assert lines[2] == "| 1: a | 28.8 | 0.0 |" and lines[4] == "| **mean error (%)** | 43.0 | 0.1 |"
    assert lines[5].endswith("| 2 | 0 |") and lines[-1] == "- qa3: note"
