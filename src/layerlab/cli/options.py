"""Checked options for the commands whose flags are not generated from the config dataclasses
(``generate``, ``inspect``, ``compare-cells``, ``report``, ``claims``...): each number or list is
parsed and checked as the flag is read, by the same rules and in the same words as a config field
(:func:`layerlab.config.check_range`), so a bad value is one sentence and exit 2 before any work.

    p.add_argument("--samples", action=Number, kind=int, ge=1, default=32)
    p.add_argument("--seed", action=Number, like="train.seed", default=0)  # a config field's range
    p.add_argument("--input-shape", action=IntList, ge=1)
"""

from __future__ import annotations

import argparse
import dataclasses

from ..config import SECTIONS, check_range, limits, split_list
from ..errors import ConfigError

#: what a value of each kind is called in a message
_NAMES = {int: "a whole number", float: "a number"}


def parse_number(text: str, where: str, kind: type = int, **bounds) -> int | float:
    """``text`` as an ``int`` or ``float`` within ``bounds`` (``ge``, ``gt``, ``lt``: see
    :func:`~layerlab.config.check_range`); ConfigError naming ``where`` otherwise. NaN and
    infinities are refused; an int is written in digits (``1e23`` is not one)."""
    try:
        value = kind(text.strip())
    except (ValueError, OverflowError):
        raise ConfigError(f"{where} must be {_NAMES[kind]}, got {text!r}") from None
    check_range(value, where, **bounds)
    return value


def parse_int_list(text: str, where: str, **bounds) -> list[int]:
    """A comma list of whole numbers (``1,28,28``; ``x`` also separates, as in ``28x28``), each
    within ``bounds``; an empty item (``1,,28``) is refused, not skipped."""
    return [int(parse_number(item, where, int, **bounds)) for item in split_list(text.replace("x", ","), where)]


def field_bounds(key: str) -> dict:
    """The range of the config field ``"section.field"``, for a flag that means the same thing."""
    section, name = key.split(".")
    return limits(next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name))


class Number(argparse.Action):
    """An option holding one number, checked when read: ``kind`` (int or float) and a range, given
    as ``ge``/``gt``/``lt`` or ``like="section.field"`` (a config field's). A bad value raises
    ConfigError, which :func:`layerlab.cli.main` prints as one sentence (exit 2)."""

    def __init__(self, option_strings, dest, kind: type = int, like: str | None = None, **kw):
        self.kind = kind
        self.bounds = field_bounds(like) if like else {}
        self.bounds.update({k: kw.pop(k) for k in ("ge", "gt", "lt") if k in kw})
        kw.setdefault("metavar", "N" if kind is int else "X")
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, parse_number(values, option_string or self.dest, self.kind, **self.bounds))


class IntList(argparse.Action):
    """An option holding a comma list of whole numbers (``1,28,28``), each within ``ge``/``gt``/``lt``."""

    def __init__(self, option_strings, dest, **kw):
        self.bounds = {k: kw.pop(k) for k in ("ge", "gt", "lt") if k in kw}
        kw.setdefault("metavar", "N,N,...")
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, parse_int_list(values, option_string or self.dest, **self.bounds))


class NameList(argparse.Action):
    """An option holding a comma list of names (``rnn,lstm``); an empty item is refused."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, split_list(values, option_string or self.dest))


class Text(argparse.Action):
    """An option holding a path or name, which may not be empty: ``--out ""`` is a slip (an unset
    shell variable), not a request for the default."""

    def __call__(self, parser, namespace, values, option_string=None):
        if not values.strip():
            raise ConfigError(f"{option_string or self.dest} needs a value; leave the flag out for its default")
        setattr(namespace, self.dest, values)
