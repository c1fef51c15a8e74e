#!/usr/bin/env python3
"""Fails if a file in src/ (tests aside) has more than 400 lines, or a function there more
than 80 (issue 14's limits). Functions are measured by brace depth after string and char
literals are blanked: a rough reader, but the tree's code is rustfmt-formatted."""
import pathlib
import re
import sys

MAX_FILE, MAX_FN = 400, 80
ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
LITERAL = re.compile(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])\'')


def is_test(path: pathlib.Path) -> bool:
    return "tests" in path.relative_to(ROOT).parts or path.name.endswith("_tests.rs")


def long_functions(path: pathlib.Path):
    lines = [LITERAL.sub('""', l.split("//")[0]) for l in path.read_text().split("\n")]
    i = 0
    while i < len(lines):
        if lines[i].strip().startswith("#[cfg(test)]"):
            return  # the unit tests at the end of a file
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            depth += lines[j].count("{") - lines[j].count("}")
            opened = opened or "{" in lines[j]
            if (opened and depth <= 0) or (not opened and lines[j].rstrip().endswith(";")):
                break
            j += 1
        if j - i + 1 > MAX_FN:
            yield m.group(6), i + 1, j - i + 1
        i = j + 1


def main() -> int:
    problems = []
    for path in sorted(ROOT.rglob("*.rs")):
        if is_test(path):
            continue
        rel = path.relative_to(ROOT.parent)
        n = path.read_text().count("\n")
        if n > MAX_FILE:
            problems.append(f"{rel}: {n} lines (limit {MAX_FILE})")
        for name, line, length in long_functions(path):
            problems.append(f"{rel}:{line}: fn {name} is {length} lines (limit {MAX_FN})")
    for p in problems:
        print(f"size_check: {p}", file=sys.stderr)
    print(f"size_check: {'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
