"""YAML config files plus command-line flags, read into config dataclasses: the one parser every stage uses.

Every stage describes its settings as dataclasses whose fields carry ``metadata={"help": ...}`` (a field that must
be given carries ``"required": True``), and is one function taking them (``run_dedup(config)``, ...). The CLI is
:class:`StageParser`, an ``HfArgumentParser`` that reads ``[CONFIG.yaml] [POSITIONAL] [--key value ...]`` into
the same dataclasses: the YAML file's values become the defaults, flags on the command line win. Python users build
the dataclasses directly (or from a dict with :func:`config_from_dict`) and get the same checks, which live in the
dataclasses' ``__post_init__`` (:func:`check_required`, :func:`check_range`, :func:`check_choice`).

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
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from lamini_lm.errors import UsageError

__all__ = [
    "ConfigError",
    "StageParser",
    "check_choice",
    "check_range",
    "check_required",
    "config_from_dict",
    "load_yaml",
    "parse_config",
]


class ConfigError(UsageError):
    """A config file or flag that cannot be used; the message names the file and the key (exit 2)."""


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a flat YAML mapping, with errors that name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of setting: value, got {type(data).__name__}")
    return data


# --- checks the config dataclasses run in __post_init__ (Python and CLI users get the same errors) ---


def _flag(name: str) -> str:
    return f"--{name}"


def check_required(config: Any) -> None:
    """Every field whose metadata says ``required`` must be set (not None or empty)."""
    for f in dataclasses.fields(config):
        if f.metadata.get("required") and getattr(config, f.name) in (None, "", [], ()):
            raise ConfigError(f"{_flag(f.name)} is required: {f.metadata.get('help', '')}".rstrip(": "))


def check_range(name: str, value: Any, low: float | None = None, high: float | None = None, *, low_open=False):
    """``value`` within ``[low, high]`` (``(low, high]`` with ``low_open``; either bound may be None); None passes."""
    if value is None:
        return
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if not (too_low or too_high):
        return
    if low is not None and high is not None:
        what = f"in {'(' if low_open else '['}{low}, {high}]"
    elif low is not None:
        what = f"{'>' if low_open else '>='} {low}"
    else:
        what = f"<= {high}"
    raise ConfigError(f"{_flag(name)}: must be {what}, got {value}")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"{_flag(name)}: must be one of {', '.join(map(str, choices))}; got {value!r}")


# --- dicts (YAML, keyword overrides) into dataclasses, with the parser's type conversions ---


def _base_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    return tp


def _coerce(value: Any, tp: Any, where: str) -> Any:
    tp = _base_type(tp)
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (list, Sequence, tuple) or tp is list:
        items = value if isinstance(value, (list, tuple)) else [value]
        args = typing.get_args(tp)
        return [_coerce(v, args[0], where) if args else v for v in items]
    try:
        if tp is bool and isinstance(value, str):
            if value.lower() in ("true", "yes", "1", "on"):
                return True
            if value.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError(value)
        if tp in (int, float) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return tp(float(value)) if tp is int and isinstance(value, str) and "e" in value.lower() else tp(value)
    except ValueError:
        raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def config_from_dict(cls: type, values: Mapping[str, Any], source: str = "settings") -> Any:
    """``cls(**values)`` with YAML-style strings converted to the fields' types and unknown keys refused by name."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(k for k in values if k not in fields)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {unknown}; see --help for the valid ones")
    kwargs = {k: _coerce(v, hints.get(k, Any), f"{source}: {k}") for k, v in values.items()}
    return cls(**kwargs)


# --- the parser ---


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each default once and marks required flags; descriptions and epilogs keep their lines."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required and "(required)" not in text:
            return f"{text} (required)".strip()
        if "%(default)" in text or "(default" in text or action.default in (None, argparse.SUPPRESS, "", [], False):
            return text
        if isinstance(action, argparse._StoreFalseAction) or action.option_strings == []:
            return text
        return f"{text} (default: %(default)s)"


class StageParser:
    """The parser of a stage: ``[CONFIG.yaml] [POSITIONAL ...] [--key value ...]`` into config dataclasses.

    ``positionals`` name fields that may also be given without their flag (``lamini-lm publish MODEL_DIR``), in
    order. ``config_for`` maps a positional token to a YAML file when it names one (a shipped recipe name). The
    last lines of ``--help`` are ``examples``.
    """

    def __init__(
        self,
        dataclass_types: Sequence[type],
        prog: str | None = None,
        description: str | None = None,
        examples: str | None = None,
        positionals: Sequence[str] = (),
        config_for: Callable[[str], str | None] | None = None,
        extra_yaml_keys: Sequence[str] = (),
    ):
        from transformers import HfArgumentParser

        self.dataclass_types = list(dataclass_types)
        self.positionals = list(positionals)
        self.config_for = config_for
        self.extra_yaml_keys = set(extra_yaml_keys)
        self.prog = prog
        epilog = f"examples:\n{examples.rstrip()}" if examples else None
        self.parser = HfArgumentParser(
            self.dataclass_types,
            prog=prog,
            description=description,
            epilog=epilog,
            formatter_class=_HelpFormatter,
            allow_abbrev=False,
        )
        self.parser.add_argument(
            "-v", "--verbose", action="count", default=0, help="more logging, tracebacks on errors"
        )
        names = ("CONFIG.yaml", *(p.upper() for p in self.positionals))
        self.parser.add_argument(
            "_args",
            nargs="*",
            metavar=" ".join(f"[{n}]" for n in names),
            help="a YAML file of settings (flags given on the command line override it)"
            + (f", then {', '.join(n for n in names[1:])} (or give them as flags)" if self.positionals else ""),
        )
        self._required: list[str] = []
        self._fields = {f.name: f for t in self.dataclass_types for f in dataclasses.fields(t) if f.init}
        for action in self.parser._actions:
            if isinstance(action, argparse._StoreFalseAction) and action.option_strings[0].startswith("--no_"):
                action.help = f"turn off --{action.dest}"
            if action.dest in self._fields and (action.required or self._fields[action.dest].metadata.get("required")):
                self._required.append(action.dest)
                action.required = False  # checked after the YAML file and positionals are merged (check_required)
                action.help = f"{action.help or ''} (required)".strip()

    def format_help(self) -> str:
        return self.parser.format_help()

    def parse(self, argv: Sequence[str] | None = None) -> tuple[Any, ...]:
        """One instance per dataclass type; usage errors exit 2 with one line, bad values raise ConfigError."""
        import sys

        argv = list(sys.argv[1:] if argv is None else argv)
        namespace, unknown = self.parser.parse_known_args(argv)
        if unknown:
            self.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        config_file, values = None, {}
        positional: dict[str, str] = {}
        for token in namespace._args:
            resolved = self.config_for(token) if self.config_for else None
            if resolved is not None or token.endswith((".yaml", ".yml")):
                if config_file is not None:
                    self.parser.error(f"one config file at most, got {config_file} and {token}")
                config_file = str(resolved or token)
            elif len(positional) < len(self.positionals):
                name = self.positionals[len(positional)]
                if self._is_list(name):  # a list positional takes every remaining bare argument
                    positional.setdefault(name, []).append(token)
                else:
                    positional[name] = token
            elif self.positionals and self._is_list(self.positionals[-1]):
                positional[self.positionals[-1]].append(token)
            else:
                self.parser.error(f"unexpected argument {token!r}")
        if config_file is not None:
            values = {k: v for k, v in load_yaml(config_file).items() if k not in self.extra_yaml_keys}
            unknown_keys = sorted(k for k in values if k not in self._fields)
            if unknown_keys:
                raise ConfigError(
                    f"{config_file}: unknown setting(s) {unknown_keys}; `{self.prog} --help` lists the valid ones"
                )
        given = {a.dest for a in self.parser._actions if any(o in argv for o in a.option_strings)}
        given |= {
            a.dest for a in self.parser._actions for o in a.option_strings for t in argv if t.startswith(o + "=")
        }
        for name, value in positional.items():
            if name in given:
                self.parser.error(f"{name} given twice: as {value!r} and as --{name}")
            setattr(namespace, name, value)
        for name, value in values.items():
            if name not in given and name not in positional:
                setattr(
                    namespace, name, _coerce(value, typing.get_type_hints(self._owner(name)).get(name), config_file)
                )
        missing = [f"--{n}" for n in self._required if getattr(namespace, n, None) in (None, "", [])]
        if missing:
            self.parser.error(f"the following arguments are required: {', '.join(missing)}")
        outputs = []
        for dtype in self.dataclass_types:
            keys = {f.name for f in dataclasses.fields(dtype) if f.init}
            outputs.append(dtype(**{k: v for k, v in vars(namespace).items() if k in keys}))
            check_required(outputs[-1])
        return tuple(outputs)

    def _is_list(self, name: str) -> bool:
        tp = _base_type(typing.get_type_hints(self._owner(name)).get(name))
        return tp is list or typing.get_origin(tp) is list

    def _owner(self, name: str) -> type:
        return next(t for t in self.dataclass_types if any(f.name == name for f in dataclasses.fields(t)))


def parse_config(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    description: str | None = None,
    examples: str | None = None,
    positionals: Sequence[str] = (),
    extra_yaml_keys: Sequence[str] = (),
) -> tuple[Any, ...]:
    """Parse ``[CONFIG.yaml] [--key value ...]`` into one instance per dataclass type (see :class:`StageParser`).

    ``extra_yaml_keys``: keys a YAML file may hold that no dataclass declares (ignored here).
    """
    return StageParser(
        dataclass_types, prog, description, examples, positionals, extra_yaml_keys=extra_yaml_keys
    ).parse(argv)
