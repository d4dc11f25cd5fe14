"""Every command the agent tells a person to run exists: alerts, refusals, help and pages
name `printstation <command>`, and an operator who types it must not be told it is unknown."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from printstation.agent.surfaces.cli import build_parser

AGENT = Path(__file__).resolve().parents[2] / "agent"
MENTION = re.compile(r"printstation ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
#: "printstation" followed by a word that is not a command: the contract's title.
NOT_COMMANDS = {"station", "agent"}  # "the printstation station", "another printstation agent"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            found.add(id(node.body[0].value))
    return found


def mentions(root: Path = AGENT) -> list[tuple[str, str, str | None]]:
    """(where, command, the word after it) for every `printstation X` a person can read:
    string literals (f-strings' text too) in the agent's code, its web page's text."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docs:
                found += [(f"{path.relative_to(root)}:{node.lineno}", m[1], m[2])
                          for m in MENTION.finditer(node.value)]
    for path in sorted(root.rglob("*.html")):
        found += [(str(path.relative_to(root)), m[1], m[2])
                  for m in MENTION.finditer(path.read_text())]
    return [m for m in found if m[1] not in NOT_COMMANDS]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def problems(named: list[tuple[str, str, str | None]]) -> list[str]:
    """Each mention of a command the parser lacks, or of a kind its command does not take."""
    commands = subcommands()
    wrong = []
    for where, command, word in named:
        if command not in commands:
            wrong.append(f"{where}: printstation {command} is no command")
            continue
        kinds = [a for a in commands[command]._actions if not a.option_strings and a.choices]
        if word and kinds and word not in kinds[0].choices:
            wrong.append(f"{where}: printstation {command} {word}: {command} takes "
                         f"{', '.join(kinds[0].choices)}")
    return wrong


def test_every_command_the_agent_names_exists_in_the_cli():
    named = mentions()
    # The advice that must be there, so that this test reads the strings it should.
    assert {("load", "ribbon"), ("unload", "cards"), ("correct", None)} <= {
        (c, w) for _, c, w in named}
    wrong = problems(named)
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_command_that_does_not_exist(tmp_path):
    """The test above can fail: advice naming a command or a kind the CLI lacks is found."""
    (tmp_path / "advice.py").write_text(
        '"""`printstation docstrings` are for developers."""\n'
        'N = 3\n'
        'ADVICE = f"take {N} out and record that with `printstation remove cards`"\n'
        'MORE = "record it with `printstation load paper`, then `printstation stock`"\n')
    assert sorted(problems(mentions(tmp_path))) == [
        "advice.py:3: printstation remove is no command",
        "advice.py:4: printstation load paper: load takes ribbon, film, cards"]
