"""One way to register things (issue 20 section 2): stage types, executors, data sources, export formats,
recipes, claims and objectives each live in a package of their own, one module per thing (or a few related
things). The package imports every module of itself (:func:`import_modules`), and each module's thing carries
its kind's registering decorator (``@register_stage``, ``@register``, ``@register_format(...)``), or, for a value
rather than a class or function, is passed through it (``register_recipe(Recipe(...))``). So a new one is one new
file in its package, with nothing else edited; a name taken by another thing is refused (:func:`add`)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, MutableMapping
from typing import TypeVar

T = TypeVar("T")

__all__ = ["add", "import_modules"]


def add(registry: MutableMapping[str, T], name: str, thing: T, what: str) -> T:
    """Register ``thing`` as ``name`` in ``registry`` and return it (so a decorator can return it too). A name
    already taken, by anything else, is refused with a ValueError naming the kind of thing (``what``) and the
    name; registering the very same object again changes nothing."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: a name must be a non-empty string, got {name!r}")
    taken = registry.get(name)
    if taken is not None and taken is not thing:
        raise ValueError(f"{what} {name!r} is already registered")
    registry[name] = thing
    return thing


def import_modules(package: str, path: Iterable[str], skip: Iterable[str] = ("base",)) -> list[str]:
    """Import every module of ``package`` (its ``__name__`` and ``__path__``) except those in ``skip`` and
    private ones (``_name``), in name order; importing a module runs its registering decorators. Returns the
    names imported."""
    skipped = set(skip)
    names = sorted(m.name for m in pkgutil.iter_modules(list(path))
                   if m.name not in skipped and not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
