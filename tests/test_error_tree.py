"""Every exception the project raises on purpose sits in one module,
ivr/errors.py, in the tree its docstring draws: one ``except IvrError`` (or
``AgiError``) catches it. The package is walked for exception classes, so a
new one anywhere else fails here without anyone keeping a list."""

import importlib
import inspect
import pkgutil
import re

import ivr
import ivr.errors
from ivr.agi.protocol import parse_response
from ivr.errors import AgiError, AgiParseError, IvrError

# outside IvrError on purpose, each drawn under the tree with its reason
OUTSIDE_THE_TREE = {"CallerHungUp", "UnsafeCommand", "YamlRefused", "OffloadError"}


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(ivr.__path__, "ivr."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("ivr"):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_public_exception_class_lives_in_ivr_errors():
    elsewhere = sorted(name for name, cls in _exception_classes().items()
                       if cls.__module__ != "ivr.errors" and not cls.__name__.startswith("_"))
    assert not elsewhere, f"exception classes outside ivr/errors.py (move them there): {elsewhere}"
    assert len(_exception_classes()) > 25     # the walk found the package's classes at all


def test_every_error_class_is_drawn_in_the_tree_and_is_an_ivr_error_unless_said_otherwise():
    tree = ivr.errors.__doc__ or ""
    for name, cls in _exception_classes().items():
        if cls.__name__.startswith("_"):
            assert f"``{cls.__name__}``" in tree, f"private control flow {name} is not named in the docstring"
            continue
        assert re.search(rf"(─ |^    ){cls.__name__}\b", tree, re.M), f"{name} is not drawn in the tree of ivr/errors.py"
        assert issubclass(cls, IvrError) == (cls.__name__ not in OUTSIDE_THE_TREE), name


def test_a_malformed_agi_answer_is_an_agi_error_and_still_a_value_error():
    try:
        parse_response("garbage")
    except AgiError:
        pass
    else:
        raise AssertionError("no AgiError")
    assert issubclass(AgiParseError, ValueError)     # a step failure, as before
