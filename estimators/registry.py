"""Name -> factory registries with info, spec strings and entry-point plugins.

One :class:`Registry` each for gradient/update estimators, losses and metrics. A factory is
registered with its info; ``get("name:key=value,...", **kwargs)`` builds an instance. Third-party
packages register through an entry-point group (``estibench.estimators``, ``estibench.losses``,
``estibench.metrics``): the entry point names a module (importing it runs its ``@register``
decorators) or a zero-argument callable (called once).
"""
from __future__ import annotations

import ast
import difflib
import importlib.metadata
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entry", "Registry", "UnknownNameError", "parse_spec"]


class UnknownNameError(ValueError, KeyError):
    """An unknown registry name; a ValueError and a KeyError, so either ``except`` catches it."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry:
    """A registered factory and what is known about it."""

    name: str
    factory: Callable[..., Any]
    info: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.info[key]
        except KeyError:
            raise AttributeError(key) from None


def _literal(text: str) -> Any:
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # bare words such as loo or moving_average


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"score_function:baseline=loo,decay=0.9"`` -> ``("score_function", {...})``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"expected a non-empty name such as 'score_function' or "
                         f"'score_function:baseline=loo', got {spec!r}")
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad option {part!r} in {spec!r}: expected key=value pairs "
                             f"separated by commas, e.g. 'score_function:baseline=loo'")
        kwargs[key.strip()] = _literal(value)
    return name.strip(), kwargs


class Registry(Mapping[str, Entry]):
    """A mapping from names to :class:`Entry`; refuses duplicates, suggests close names."""

    def __init__(self, what: str, group: str | None = None):
        self.what = what  # "estimator", "loss", "metric": used in messages
        self.group = group  # entry-point group for plugins
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False
        self.plugin_errors: dict[str, str] = {}

    # -- registering -----------------------------------------------------------------------
    def register(self, name: str, **info: Any) -> Callable[[Callable], Callable]:
        """Decorator: ``@REGISTRY.register("name", kind=..., description=..., reference=...)``."""
        if not isinstance(name, str) or not name or ":" in name or "," in name:
            raise ValueError(f"{self.what} name must be a non-empty string without ':' or ',', "
                             f"got {name!r}")

        def decorator(factory: Callable) -> Callable:
            if name in self._entries:
                old = self._entries[name].factory
                raise ValueError(
                    f"{self.what} {name!r} is already registered (by "
                    f"{getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', old)}); "
                    f"choose another name")
            self._entries[name] = Entry(name, factory, dict(info))
            try:
                factory.registered_name = name
            except (AttributeError, TypeError):
                pass
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    # -- plugins ---------------------------------------------------------------------------
    def load_plugins(self) -> None:
        """Import every entry point of ``self.group`` once. A broken plugin is reported as a
        warning (and in ``plugin_errors``) and does not take the built-ins down with it."""
        if self._plugins_loaded or self.group is None:
            return
        self._plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=self.group):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type(importlib)):
                    obj()
            except Exception as exc:  # noqa: BLE001 - a plugin must not break the suite
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"estibench: could not load {self.what} plugin {ep.name!r} "
                              f"({ep.value}): {type(exc).__name__}: {exc}", RuntimeWarning,
                              stacklevel=2)

    # -- Mapping ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Entry:
        self.load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def __iter__(self) -> Iterator[str]:
        self.load_plugins()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._entries

    # -- lookup ----------------------------------------------------------------------------
    def unknown_message(self, name: str) -> str:
        names = sorted(self._entries)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.what} {name!r}{hint} Available: {', '.join(names) or '(none)'}"

    def available(self, **filters: Any) -> list[str]:
        """Sorted names, optionally filtered on info, e.g. ``available(kind="gradient")``."""
        self.load_plugins()
        out = []
        for name, entry in self._entries.items():
            if all(v is None or entry.info.get(k) == v for k, v in filters.items()):
                out.append(name)
        return sorted(out)

    def entry(self, name: str) -> Entry:
        self.load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[name]

    def get(self, spec: str, **kwargs: Any) -> Any:
        """Build an instance from ``"name"`` or ``"name:key=value,..."`` plus keyword options
        (keywords win over the spec string)."""
        name, spec_kwargs = parse_spec(spec)
        entry = self.entry(name)
        options = {**spec_kwargs, **kwargs}
        try:
            obj = entry.factory(**options)
        except TypeError as exc:
            if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
                import inspect
                try:
                    params = [p for p in inspect.signature(entry.factory).parameters
                              if p not in ("self", "args", "kwargs")]
                except (TypeError, ValueError):
                    params = []
                raise TypeError(f"{self.what} {name!r} got an unknown option ({exc}); its options "
                                f"are: {', '.join(params) or '(none)'}") from None
            raise
        try:
            obj.spec = spec if not kwargs else _format_spec(name, options)
        except (AttributeError, TypeError):
            pass
        return obj


def _format_spec(name: str, options: Mapping[str, Any]) -> str:
    if not options:
        return name
    return name + ":" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))
