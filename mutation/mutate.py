#!/usr/bin/env python3
"""Reads mutation/mutants.txt and applies one mutant to a source tree.

Usage:
  mutate.py list  MUTANTS                 ids, one per line: "<id> <set> <file>"
  mutate.py check MUTANTS ROOT [ID...]    every (or each named) mutant's snippet occurs
                                          exactly once in its file under ROOT
  mutate.py apply MUTANTS ROOT ID         writes the mutated file (checks first)
  mutate.py show  MUTANTS ID FIELD        prints one field (file, set, desc)

Exit status 0 on success; 2 with a message on stderr when the list is malformed, an id is
unknown, or a snippet is missing or ambiguous (the list must then be updated to the code).
"""

import sys
from pathlib import Path

SETS = ("core", "driver")


class ListError(Exception):
    pass


def parse(path):
    """The mutants of `path`, in order, as dicts (id, file, set, desc, original, replacement)."""
    mutants = []
    seen = set()
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    i = 0

    def where():
        return f"{path}:{i + 1}"

    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            i += 1
            continue
        if not line.startswith("=== "):
            raise ListError(f"{where()}: expected '=== <id>', found {line!r}")
        mid = line[4:].strip()
        if not mid or " " in mid:
            raise ListError(f"{where()}: bad id {mid!r}")
        if mid in seen:
            raise ListError(f"{where()}: duplicate id {mid!r}")
        seen.add(mid)
        m = {"id": mid, "line": i + 1}
        i += 1
        while i < len(lines) and not lines[i].startswith("--- "):
            field = lines[i]
            if field.strip():
                key, sep, value = field.partition(":")
                key = key.strip()
                if not sep or key not in ("file", "set", "desc"):
                    raise ListError(f"{where()}: expected 'file:', 'set:' or 'desc:', found {field!r}")
                m[key] = value.strip()
            i += 1
        for key in ("file", "set", "desc"):
            if not m.get(key):
                raise ListError(f"{path}:{m['line']}: mutant {mid} has no '{key}:'")
        if m["set"] not in SETS:
            raise ListError(f"{path}:{m['line']}: mutant {mid}: set must be one of {SETS}")

        def section(marker):
            nonlocal i
            if i >= len(lines) or lines[i] != marker:
                raise ListError(f"{where()}: mutant {mid}: expected {marker!r}")
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("--- "):
                body.append(lines[i])
                i += 1
            return "\n".join(body)

        m["original"] = section("--- original")
        m["replacement"] = section("--- replacement")
        if i >= len(lines) or lines[i] != "--- end":
            raise ListError(f"{where()}: mutant {mid}: expected '--- end'")
        i += 1
        if not m["original"].strip():
            raise ListError(f"{path}:{m['line']}: mutant {mid}: empty original")
        if m["original"] == m["replacement"]:
            raise ListError(f"{path}:{m['line']}: mutant {mid}: replacement equals the original")
        mutants.append(m)
    return mutants


def find(mutants, mid):
    for m in mutants:
        if m["id"] == mid:
            return m
    raise ListError(f"unknown mutant id {mid!r}")


def check_one(m, root):
    """The file's text, or ListError when the snippet is missing or ambiguous."""
    target = Path(root) / m["file"]
    if not target.is_file():
        raise ListError(f"mutant {m['id']}: file {m['file']} does not exist")
    text = target.read_text(encoding="utf-8")
    count = text.count(m["original"])
    if count == 0:
        raise ListError(
            f"mutant {m['id']}: original snippet not found in {m['file']} "
            f"(the code moved on: update mutants.txt line {m['line']})"
        )
    if count > 1:
        raise ListError(
            f"mutant {m['id']}: original snippet occurs {count} times in {m['file']} "
            f"(ambiguous: give more context in mutants.txt line {m['line']})"
        )
    return text


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, listing = argv[1], argv[2]
    try:
        mutants = parse(listing)
        if command == "list":
            for m in mutants:
                print(m["id"], m["set"], m["file"])
        elif command == "check":
            root = argv[3]
            chosen = [find(mutants, mid) for mid in argv[4:]] or mutants
            errors = []
            for m in chosen:
                try:
                    check_one(m, root)
                except ListError as error:
                    errors.append(str(error))
            if errors:
                for error in errors:
                    print(f"error: {error}", file=sys.stderr)
                return 2
            print(f"{len(chosen)} mutant(s) valid")
        elif command == "apply":
            root, mid = argv[3], argv[4]
            m = find(mutants, mid)
            text = check_one(m, root)
            mutated = text.replace(m["original"], m["replacement"], 1)
            (Path(root) / m["file"]).write_text(mutated, encoding="utf-8")
            print(m["file"])
        elif command == "show":
            m = find(mutants, argv[3])
            print(m[argv[4]])
        else:
            print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
            return 2
    except ListError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except IndexError:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
