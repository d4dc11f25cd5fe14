"""The one error configuration raises, and how pydantic's findings become its lines.

Whoever edits a station's configuration fixes every mistake in one go only if they see
every one, so each problem gets a line of its own naming its key: an unknown key (a typo
such as `[thresholds.ribon]` or `statoin_id`) with the keys that table does take.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from printstation.drivers.errors import PrintstationError

#: Where the top level's keys are all listed (too many for one line).
EVERY_KEY = "printstation.example.toml lists every key"


class ConfigError(PrintstationError):
    """A configuration that cannot be used; the message names the key and the problem.

    With several problems the message is a heading and then one indented line for each
    (`problems` holds them), so `printstation: ...` shows all of them at once.
    """

    code = "config"

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]

    @classmethod
    def of(cls, problems: list[str]) -> ConfigError:
        if len(problems) == 1:
            return cls(problems[0])
        lines = "\n".join(f"  {p}" for p in problems)
        return cls(f"{len(problems)} problems in the configuration:\n{lines}", problems)


def problems(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per error in `exc`, each `config key KEY: PROBLEM`, in pydantic's order."""
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in error["loc"]]
        msg = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            msg = unknown_key(model, loc)
        elif error["type"] == "literal_error" and loc and loc[-1] == "[key]":
            loc = loc[:-1]  # a table's name that is not one of the names it may have
            msg = f"unknown key; valid: {_names(error.get('ctx', {}).get('expected', ''))}"
        elif error["type"] == "missing":
            msg = "missing: this table needs it"
        key = ".".join(loc) or "config"
        # A validator that finds several problems in one value gives one line for each.
        for part in msg.split("\n"):
            line = f"config key {key}: {part}"
            if line not in lines:
                lines.append(line)
    return lines


def unknown_key(model: type[BaseModel], loc: list[str]) -> str:
    """`unknown key`, and what the table holding it takes: all its keys, or at the top
    level (dozens) the near misses."""
    table = _table(model, loc[:-1])
    valid = list(table.model_fields) if table is not None else []
    if not loc[:-1]:
        near = difflib.get_close_matches(loc[-1], valid, n=3, cutoff=0.6)
        return (f"unknown key; did you mean {' or '.join(near)}?" if near
                else f"unknown key; {EVERY_KEY}")
    return f"unknown key; valid: {', '.join(valid)}" if valid else "unknown key"


def _table(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The model that holds the keys under `path` (a `dict[..., Model]` field's own key,
    such as `ribbon` in `thresholds.ribbon`, is stepped over)."""
    current: Any = model
    rest = list(path)
    while rest:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(rest.pop(0))
        if field is None:
            return None
        current = _inner(field.annotation)
        if _is_dict(field.annotation):
            if not rest:
                return None
            rest.pop(0)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _is_dict(annotation: Any) -> bool:
    return typing.get_origin(_unwrap(annotation)) is dict


def _inner(annotation: Any) -> Any:
    """A field's model: itself, a dict's value type, or the model in `X | None`."""
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) is dict:
        return typing.get_args(annotation)[1]
    return annotation


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _names(expected: str) -> str:
    """pydantic's `'a', 'b' or 'c'` as `a, b, c`."""
    return ", ".join(p.strip(" '") for p in expected.replace(" or ", ", ").split(","))
