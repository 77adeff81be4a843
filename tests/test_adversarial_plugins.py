"""Plugins that fail in any way at import or registration: each is reported (a warning naming
the plugin, and ``plugin_errors``), the built-ins and the other plugins keep working, and nothing
a plugin does at import time takes the process down.

The plugins are real modules in a temporary folder, reached through entry points exactly as an
installed package's would be (``importlib.metadata.entry_points`` is pointed at them)."""
from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import pytest

import estimators

GOOD = '''
import estimators
from estimators.straight_through import StraightThrough


@estimators.register
class FinePlugin(StraightThrough):
    """A plugin that works."""

    name = "fine_plugin_{n}"
'''

#: how a plugin can fail: module source (``{n}``: a unique number) and what the warning says
FAILURES = {
    "import_error": ("import not_a_module_anywhere_{n}\n", "ModuleNotFoundError"),
    "runtime_error": ("raise RuntimeError('plugin {n} broke')\n", "plugin {n} broke"),
    "syntax_error": ("def broken(:\n", "SyntaxError"),
    "system_exit": ("import sys\nsys.exit(3)\n", "SystemExit"),
    "duplicate_builtin": (textwrap.dedent('''
        import estimators
        from estimators.straight_through import StraightThrough

        @estimators.register
        class Clash(StraightThrough):
            """Takes a built-in's name."""
            name = "score_function"
        '''), "already registered"),
    "bad_families": (textwrap.dedent('''
        import estimators
        from estimators.base import Estimator

        @estimators.register
        class BadFamilies(Estimator):
            """Misspells its family."""
            name = "bad_families_{n}"
            families = ("Bernouli",)
        '''), "not a torch.distributions class"),
    "bad_kind": (textwrap.dedent('''
        import estimators
        from estimators.base import Estimator

        @estimators.register
        class BadKind(Estimator):
            """A kind that does not exist."""
            name = "bad_kind_{n}"
            kind = "gradients"
        '''), "kind must be one of"),
    "no_name": (textwrap.dedent('''
        import estimators
        from estimators.base import Estimator

        @estimators.register
        class NoName(Estimator):
            """Forgets its name."""
        '''), "declares no name"),
    "bad_name": ("import estimators\nestimators.register('a:b', unbiased=True)(lambda: None)\n",
                 "without ':' or ','"),
    "callable_raises": ("def setup():\n    raise ValueError('setup {n} failed')\n",
                        "setup {n} failed"),
}


@pytest.fixture
def entry_points(tmp_path, monkeypatch):
    """``install(name, source, attr=None)`` writes a plugin module and exposes it as an entry
    point of the estimators' group; the registry re-reads its plugins afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    eps: list[importlib.metadata.EntryPoint] = []
    real = importlib.metadata.entry_points

    def fake(**kw):
        if kw.get("group") == estimators.ESTIMATORS.group:
            return list(eps)
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    monkeypatch.setattr(estimators.ESTIMATORS, "_plugins_loaded", False)
    monkeypatch.setattr(estimators.ESTIMATORS, "plugin_errors", {})
    before = set(estimators.ESTIMATORS._entries)

    def install(name: str, source: str, attr: str | None = None) -> None:
        module = f"adv_plugin_{name}"
        (tmp_path / f"{module}.py").write_text(source)
        value = f"{module}:{attr}" if attr else module
        eps.append(importlib.metadata.EntryPoint(name, value, estimators.ESTIMATORS.group))

    yield install
    for name in set(estimators.ESTIMATORS._entries) - before:
        estimators.ESTIMATORS.unregister(name)
    for module in [m for m in sys.modules if m.startswith("adv_plugin_")]:
        del sys.modules[module]


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failing_plugin_is_reported_and_the_rest_keeps_working(failure, entry_points):
    source, needle = FAILURES[failure]
    n = abs(hash(failure)) % 10_000
    entry_points(f"good_before_{n}", GOOD.format(n=f"a{n}"))
    entry_points(f"broken_{failure}", source.format(n=n),
                 "setup" if failure == "callable_raises" else None)
    entry_points(f"good_after_{n}", GOOD.format(n=f"b{n}"))
    with pytest.warns(RuntimeWarning, match=f"broken_{failure}") as record:
        names = estimators.available()
    message = " ".join(str(w.message) for w in record)
    assert needle.format(n=n) in message, message
    assert f"broken_{failure}" in estimators.ESTIMATORS.plugin_errors
    # the built-ins are intact (a clash did not replace score_function) and both good plugins
    # on either side of the broken one are registered and work
    assert {"score_function", f"fine_plugin_a{n}", f"fine_plugin_b{n}"} <= set(names)
    assert estimators.info("score_function").factory.__module__ == "estimators.score_function"
    assert estimators.get(f"fine_plugin_b{n}").unbiased is False


def test_plugins_are_loaded_once(entry_points):
    entry_points("counted", "import builtins\nbuiltins.ADV_PLUGIN_LOADS = "
                            "getattr(builtins, 'ADV_PLUGIN_LOADS', 0) + 1\n")
    import builtins
    estimators.available()
    estimators.available()
    estimators.get("score_function")
    assert builtins.ADV_PLUGIN_LOADS == 1
    del builtins.ADV_PLUGIN_LOADS
