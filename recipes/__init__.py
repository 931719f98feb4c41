"""The YAML recipes of the LaMini herd, installed with the package as ``lamini_lm.recipes``.

Example:
    >>> from lamini_lm.recipes import list_recipes, recipe_path
    >>> "lamini-flan-t5-248m" in list_recipes()  # doctest: +SKIP
    True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["list_recipes", "recipe_path"]


def list_recipes() -> list[str]:
    """Names of the shipped recipes (file names without ``.yaml``), sorted."""
    return sorted(p.name[: -len(".yaml")] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def recipe_path(name_or_path: str) -> Path:
    """A recipe's file: an existing path as is, else a shipped recipe by name (with or without ``.yaml``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    name = p.name if p.name.endswith(".yaml") else f"{p.name}.yaml"
    candidate = resources.files(__name__) / name
    if candidate.is_file():
        return Path(str(candidate))
    raise FileNotFoundError(
        f"no recipe file {name_or_path!r} and no shipped recipe of that name; shipped: {', '.join(list_recipes())}"
    )
