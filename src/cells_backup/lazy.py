"""Package exports imported on first use (PEP 562), so that importing one submodule of a package
does not import all of them: every command pays for the imports at its start."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, sources: dict[str, list[str]]) -> Callable[[str], object]:
    """A module ``__getattr__`` giving each name of ``sources`` (submodule -> names) from its
    submodule, imported when the name is first asked for."""
    where = {name: module for module, names in sources.items() for name in names}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
