"""Every file that docs/results names is in the repository (a number's raw files must be committed)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A path-like token: in backticks, or a markdown link/image target.
TOKEN = re.compile(r"`([^`\s]+)`|\]\(([^)\s]+)\)")
FILE_SUFFIXES = (".json", ".csv", ".png", ".gif", ".md", ".py", ".sh", ".txt", ".yaml", ".jsonl", ".pt")


def committed_files() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.splitlines())


def named_paths(page: Path) -> list[tuple[int, str]]:
    """(line number, path) for each path-like token of a page that names a repository file or folder."""
    found = []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        for backticked, link in TOKEN.findall(line):
            token = (backticked or link).split("#")[0].rstrip(".,:;")
            if not token or "://" in token or token.startswith(("/", "~", "$", "-", "*")) or "=" in token:
                continue
            if any(c in token for c in "<>{}[]|"):  # a placeholder, not a path
                continue
            if token.startswith(("runs/", "../")):  # the user's own run folders, or outside the repository
                continue
            if token.endswith(FILE_SUFFIXES) or "/runs/" in token or token.endswith("/runs"):
                found.append((number, token))
    return found


# Files every run folder has; the pages name them to say what a run folder holds.
RUN_FOLDER_FILES = {"checkpoint.pt", "checkpoint-best.pt", "config.yaml", "metrics.csv", "eval.md", "eval.json"}


def exists(token: str, page: Path, files: set[str]) -> bool:
    """A path names committed files relative to the page or to the repository root; * globs must match one.
    A bare file name (no folder) may be any committed file of that name."""
    if "/" not in token:
        return token in RUN_FOLDER_FILES or any(f.rsplit("/", 1)[-1] == token for f in files)
    for base in (page.parent, page.parent / page.stem, ROOT):  # docs/results/x.md keeps its files in x/
        candidate = (base / token).resolve()
        try:
            relative = candidate.relative_to(ROOT).as_posix()
        except ValueError:
            continue
        pattern = re.compile(re.escape(relative).replace(r"\*", "[^/]*") + "(/.*)?$")
        if any(pattern.match(f) for f in files):
            return True
    return False


def test_every_file_named_in_docs_results_is_committed():
    files = committed_files()
    missing = [f"{page.relative_to(ROOT)}:{number}: {token}"
               for page in sorted((ROOT / "docs").rglob("*.md"))
               for number, token in named_paths(page) if not exists(token, page, files)]
    assert not missing, "named but not in git:\n" + "\n".join(missing)


def test_no_page_points_outside_the_repository():
    """A reader of a clone has only the repository: no page may send them to ../something beyond it."""
    outside = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for backticked, link in TOKEN.findall(line):
                token = (backticked or link).split("#")[0]
                base = page.parent if link else ROOT  # links are relative to the page, code paths to the root
                if token.startswith("../") and not (base / token).resolve().is_relative_to(ROOT):
                    outside.append(f"{page.relative_to(ROOT)}:{number}: {token}")
    assert not outside, "points outside the repository:\n" + "\n".join(outside)
