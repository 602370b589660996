"""Command-line flags from a config dataclass, for `reward-server` and `grpo-train` alike.

Each field carries its help text in its metadata, as TRL's configs do
(`field(default=..., metadata={"help": ...})`; `option` is that call, shorter). `add_flags`
gives every field whose type a flag can hold a `--field-name` flag with that text and the
default; `given_flags` returns the fields whose flag was given, so that values from a TOML file
stand where no flag overrides them.

    @dataclass(frozen=True)
    class Config:
        workers: int = option(4, "Warm sandbox containers.")

    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_flags(parser, Config)
    config = Config(**given_flags(parser.parse_args(), Config))

Standard library only: a trainer machine imports it without Docker, and a server without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
import types
import typing
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Literal, Protocol

HELP = "help"


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """`dataclasses.field` with its help text in `metadata["help"]`."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={HELP: help}, **kwargs)


def help_of(field: dataclasses.Field[Any]) -> str:
    return str(field.metadata.get(HELP, ""))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help layout (the description as written) with help texts wrapped at spaces
    only: `micro-batches` stays one word."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(Protocol):
    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action: ...


def add_flags(parser: _Parser, cls: type, names: Collection[str] | None = None) -> None:
    """A `--field-name` flag for each field of the dataclass `cls` that a flag can set (those
    in `names` only, when given), with the field's help text. Raises TypeError for a field
    without one: every flag says what it does."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if names is not None and field.name not in names:
            continue
        keywords = _argument(hints[field.name])
        if keywords is None:
            continue
        text = help_of(field)
        if not text:
            raise TypeError(f"{cls.__name__}.{field.name} has no help text: declare it with option(default, help)")
        if field.default is not dataclasses.MISSING:
            text = f"{text} (default: {_shown(field.default)})"
        # default None: a flag that was not given leaves the field to the file or its default
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, default=None, help=text.replace("%", "%%"), **keywords)


def given_flags(args: argparse.Namespace, cls: type, names: Collection[str] | None = None) -> dict[str, Any]:
    """The fields of `cls` (those in `names`, when given) whose flag was on the command line."""
    chosen = [f.name for f in dataclasses.fields(cls) if names is None or f.name in names]
    return {name: getattr(args, name) for name in chosen if getattr(args, name, None) is not None}


def _argument(hint: Any) -> dict[str, Any] | None:
    """argparse keywords for a field of type `hint`; None when no flag can hold one."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        rest = [a for a in args if a is not type(None)]
        return _argument(rest[0]) if len(rest) == 1 else None
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return {"choices": args, "type": type(args[0])}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in (str, int, float):
        return {"type": _comma_separated(args[0]), "metavar": "A,B,..."}
    if hint in (str, int, float, Path):
        return {"type": hint}
    return None


def _comma_separated(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        return tuple(kind(item.strip()) for item in text.split(",") if item.strip())

    parse.__name__ = f"comma-separated {getattr(kind, '__name__', 'value')}s"  # argparse names it in errors
    return parse


def _shown(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(map(str, default)) or "none"
    if default is None:
        return "none"
    if isinstance(default, str):
        return repr(default)
    return str(default)
