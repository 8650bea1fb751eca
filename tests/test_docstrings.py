"""Every docstring example in the package runs and prints what it says (deepinv-style runnable documentation)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import unblur

MODULES = sorted(m.name for m in pkgutil.walk_packages(unblur.__path__, "unblur.") if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"
