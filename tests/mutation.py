"""`make mutate` (mutmut) support: which tests judge a mutant, and the report per module.

mutmut runs, for each mutant, the tests it saw reaching the mutated function. Through the
in-process server that is every test whose request passes by (each ITI-65 test reaches the
transaction code), so a surviving mutant would cost the whole suite. `[tool.fhir-server.mutate-tests]`
in pyproject.toml names, per module, the tests written for its rules; only those are kept.

`python -m tests.mutation report` reads mutmut's results (mutants/) and prints the score of each
module; survivors judged harmless are listed in tests/mutation_survivors.toml with why.
"""

from __future__ import annotations

import ast
import difflib
import json
import io
import os
import sys
import tokenize
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Values mutmut gives MUTANT_UNDER_TEST outside a mutant's own run.
NOT_A_MUTANT = {"", "fail", "stats", "list_all_tests"}


@cache
def selection() -> dict[str, tuple[str, ...]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {module: tuple(paths) for module, paths in config["tool"]["fhir-server"]["mutate-tests"].items()}


def _names(key: str, mutant: str) -> bool:
    """Whether a selection key (a module, a function `module.x_name`, or a class `module.xǁClassǁ`) names the mutant."""
    return mutant.startswith(key + ".") or mutant.startswith(key + "__mutmut_") or (key.endswith("ǁ") and mutant.startswith(key))


def tests_for(mutant: str) -> tuple[str, ...] | None:
    """The test paths for a mutant name such as `fhir_server.api.body.x_read_body__mutmut_3`: those of
    the most precise key naming it."""
    matches = [key for key in selection() if _names(key, mutant)]
    return selection()[max(matches, key=len)] if matches else None


def keep_selected(config: pytest.Config, items: list[pytest.Item]) -> None:
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if mutant in NOT_A_MUTANT:
        return
    paths = tests_for(mutant)
    if paths is None:
        return
    kept = [item for item in items if item.nodeid.startswith(paths)]
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# mutmut's exit codes (mutmut/stats.py); a timeout is a kill: the mutant made the tests hang.
KILLED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}
SURVIVED = 0
NO_TESTS = {5, 33}


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str
    function: str
    exit_code: int | None
    change: tuple[str, ...]  # the mutated lines, stripped
    before: tuple[str, ...]  # the same lines before the mutation


def _tokens(line: str) -> list[tuple[int, str]]:
    found = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.COMMENT):
                found.append((token.type, token.string))
    except (tokenize.TokenError, IndentationError):
        pass  # a line cut inside brackets: the tokens before the cut are enough
    return found


def _reworded(before: str, after: str) -> bool:
    """Both string literals are prose (they hold a space: a message, a log format, unlike a code or
    a key) and differ only by XX around them or by case."""
    return " " in before and after.replace("XX", "").casefold() == before.casefold()


def wording_only(mutant: Mutant) -> bool:
    """The mutant only rewords prose a person reads: no code, key, status or value changes."""
    if not mutant.change or len(mutant.change) != len(mutant.before):
        return False
    for after_line, before_line in zip(mutant.change, mutant.before):
        after, before = _tokens(after_line), _tokens(before_line)
        if len(after) != len(before):
            return False
        for (kind_a, text_a), (kind_b, text_b) in zip(after, before):
            if (kind_a, text_a) != (kind_b, text_b) and not (kind_a == kind_b == tokenize.STRING and _reworded(text_b, text_a)):
                return False
    return True


def outside_the_session(mutant: Mutant) -> bool:
    """The mutant drops the store session of a call (None, or the argument left out). The embedded
    store isolates no transaction (its writes are visible before commit) and the server's writer
    gate serialises bundles, so there such a call sees the same data; only a replica-set MongoDB
    could tell the difference."""
    if not mutant.change or len(mutant.change) != len(mutant.before):
        return False
    return all("session" in before and after in (before.replace("session", "None"), before.replace("session, ", ""),
                                                  before.replace(", session", ""), before.replace("session", ""))
               for after, before in zip(mutant.change, mutant.before))


def log_only(mutant: Mutant) -> bool:
    """The mutated lines only write a log record (arguments, format): the log line changes, nothing else."""
    return bool(mutant.before) and all(line.startswith(("log.", "logger.")) for line in mutant.before)


def _function_name(mangled: str) -> str:
    """`x_read_body` or `xǁBundleProcessorǁ_execute` to `read_body` or `BundleProcessor._execute`."""
    return mangled.removeprefix("x_") if not mangled.startswith("xǁ") else ".".join(mangled[2:].split("ǁ"))


def _sources(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    return {node.name: ast.get_source_segment(text, node) or "" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in node.name}


def mutants(root: Path) -> list[Mutant]:
    found = []
    for meta in sorted(root.rglob("*.py.meta")):
        results = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        if not results:
            continue
        module = meta.relative_to(root).as_posix().removesuffix(".py.meta").replace("/", ".")
        sources = _sources(meta.with_suffix(""))
        for name, exit_code in sorted(results.items()):
            mangled, _, _ = name.removeprefix(module + ".").rpartition("__mutmut_")
            original = sources.get(f"{mangled}__mutmut_orig", "").splitlines()[1:]
            mutated = sources.get(name.removeprefix(module + "."), "").splitlines()[1:]
            diff = list(difflib.ndiff(original, mutated))
            change = tuple(line[1:].strip() for line in diff if line.startswith("+ "))
            before = tuple(line[1:].strip() for line in diff if line.startswith("- "))
            found.append(Mutant(name, module, _function_name(mangled), exit_code, change, before))
    return found


def harmless() -> list[dict[str, str]]:
    return tomllib.loads((ROOT / "tests" / "mutation_survivors.toml").read_text(encoding="utf-8"))["survivor"]


def why_harmless(mutant: Mutant, known: list[dict[str, str]]) -> dict[str, str] | None:
    """The entry naming this mutant: same module and function, and a mutated line equal to its
    `line` or holding its `part`."""
    for entry in known:
        if (entry["module"], entry["function"]) == (mutant.module, mutant.function) and any(
                line == entry.get("line") or ("part" in entry and entry["part"] in line) for line in mutant.change):
            return entry
    return None


def _cell(change: tuple[str, ...]) -> str:
    text = " / ".join(change)
    return (text[:117] + "...").replace("|", "\\|") if len(text) > 120 else text.replace("|", "\\|")


def report(root: Path) -> str:
    known = harmless()
    rows, unexplained, explained = [], [], []
    by_module: dict[str, list[Mutant]] = defaultdict(list)
    for mutant in mutants(root):
        by_module[mutant.module].append(mutant)
    totals: Counter[str] = Counter()
    for module, group in sorted(by_module.items()):
        count: Counter[str] = Counter()
        for mutant in group:
            if mutant.exit_code in KILLED:
                count["killed"] += 1
            elif mutant.exit_code == SURVIVED and (entry := why_harmless(mutant, known)):
                count[entry["kind"]] += 1
                explained.append((mutant, entry["kind"], entry["why"]))
            elif mutant.exit_code == SURVIVED and wording_only(mutant):
                count["harmless"] += 1
                explained.append((mutant, "harmless", "rewords a message a person reads"))
            elif mutant.exit_code == SURVIVED and log_only(mutant):
                count["harmless"] += 1
                explained.append((mutant, "harmless", "changes a log call only"))
            elif mutant.exit_code == SURVIVED and outside_the_session(mutant):
                count["same on this store"] += 1
                explained.append((mutant, "same on this store", "reads or writes outside the transaction's session"))
            elif mutant.exit_code in NO_TESTS:
                count["no tests"] += 1
                unexplained.append(mutant)
            elif mutant.exit_code == SURVIVED:
                count["survived"] += 1
                unexplained.append(mutant)
            else:
                count["not run"] += 1
        totals += count
        rows.append((module, len(group), count))
    lines = ["| Module | Mutants | Killed | Equivalent | Harmless | Same on this store | Survived | No tests | Not run | Score |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for module, total, count in [*rows, ("**all**", sum(t for _, t, _ in rows), totals)]:
        judged = total - count["equivalent"] - count["harmless"] - count["same on this store"] - count["not run"]
        score = f"{100 * count['killed'] / judged:.1f} %" if judged else "-"
        lines.append(f"| {module} | {total} | {count['killed']} | {count['equivalent']} | {count['harmless']} | "
                     f"{count['same on this store']} | {count['survived']} | {count['no tests']} | {count['not run']} | {score} |")
    lines += ["", "Score: killed / (mutants - equivalent - harmless - same on this store - not run).", "",
              "Unexplained survivors:"]
    lines += [f"- `{m.name}` ({'no tests' if m.exit_code in NO_TESTS else m.exit_code}): `{' / '.join(m.change)}`"
              for m in unexplained] or ["- none"]
    lines += ["", "Survivors judged equivalent, harmless or the same on this store:", "",
              "| Mutant | Change | Kind | Why |", "|---|---|---|---|"]
    lines += [f"| `{m.name.removeprefix(m.module + '.')}` ({m.module}) | `{_cell(m.change)}` | {kind} | {why} |"
              for m, kind, why in explained]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["report"]:
        sys.exit("usage: python -m tests.mutation report")
    print(report(ROOT / "mutants"))
