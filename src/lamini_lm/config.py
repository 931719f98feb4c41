"""YAML config files plus command-line overrides, read into dataclasses with ``HfArgumentParser``.

Every stage describes its settings as dataclasses whose fields carry ``metadata={"help": ...}``; this module
turns a ``[CONFIG.yaml] [--key value ...]`` command line into instances of them, the way TRL's scripts do:
values in the YAML file become the parser's defaults, flags given on the command line win.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Demo:
    ...     lr: float = field(default=5e-4, metadata={"help": "learning rate"})
    >>> (cfg,) = parse_config([Demo], ["--lr", "1e-3"])
    >>> cfg.lr
    0.001
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["ConfigError", "load_yaml", "make_parser", "parse_config"]


class ConfigError(ValueError):
    """A config file or flag that cannot be used; the message names the file and the key."""


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a flat YAML mapping, with errors that name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of setting: value, got {type(data).__name__}")
    return data


def make_parser(dataclass_types: Sequence[type], prog: str | None = None, description: str | None = None):
    """An ``HfArgumentParser`` over ``dataclass_types`` that also takes an optional leading YAML file."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(list(dataclass_types), prog=prog, description=description)
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        help="a YAML file of settings; flags given on the command line override it",
    )
    return parser


def parse_config(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    description: str | None = None,
    extra_yaml_keys: Sequence[str] = (),
) -> tuple[Any, ...]:
    """Parse ``[CONFIG.yaml] [--key value ...]`` into one instance per dataclass type.

    Unknown keys in the YAML file raise :class:`ConfigError` naming the file and the key, unless listed in
    ``extra_yaml_keys`` (keys a caller reads itself, e.g. a recipe's ``family``).
    """
    parser = make_parser(dataclass_types, prog=prog, description=description)
    argv = list(argv) if argv is not None else None
    pre, _ = _peek_config(argv)
    if pre is not None:
        values = load_yaml(pre)
        known = {f.name for t in dataclass_types for f in dataclasses.fields(t)}
        unknown = sorted(k for k in values if k not in known and k not in extra_yaml_keys)
        if unknown:
            raise ConfigError(f"{pre}: unknown setting(s) {unknown}; valid settings are {sorted(known)}")
        values = {k: v for k, v in values.items() if k in known}
        parser.set_defaults(**values)
        for action in parser._actions:  # a required field given in the file is no longer required on the CLI
            if action.dest in values:
                action.required = False
    namespace_objs = parser.parse_args_into_dataclasses(args=argv)
    return tuple(o for o in namespace_objs if not isinstance(o, argparse.Namespace))


def _peek_config(argv: list[str] | None) -> tuple[str | None, list[str]]:
    """The YAML path among ``argv`` (the first .yaml/.yml positional), if any."""
    import sys

    args = argv if argv is not None else sys.argv[1:]
    for a in args:
        if not a.startswith("-") and a.endswith((".yaml", ".yml")):
            return a, args
    return None, args
