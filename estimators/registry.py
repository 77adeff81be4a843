"""Name -> factory registries with info, spec strings and entry-point plugins.

One :class:`Registry` each for gradient/update estimators, losses and metrics. A factory is
registered with its info; ``get("name:key=value,...", **kwargs)`` builds an instance. Third-party
packages register through an entry-point group (``estibench.estimators``, ``estibench.losses``,
``estibench.metrics``): the entry point names a module (importing it runs its ``@register``
decorators) or a zero-argument callable (called once).
"""
from __future__ import annotations

import ast
import importlib.metadata
import inspect
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .checks import unknown_name

__all__ = ["Entry", "Registry", "UnknownNameError", "coerce_options", "parse_spec",
           "split_spec"]


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


#: every registry, so that a plugin that fails while loading is taken back from all of them
_REGISTRIES: list[Registry] = []
#: facts read from the registering class itself, never inherited
_OWN = ("display_name", "variant_names")


def _literal(text: str) -> Any:
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # bare words such as loo or moving_average


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"score_function:baseline=loo,decay=0.9"`` -> ``("score_function", {"baseline": "loo",
    "decay": "0.9"})``: the option values as the text that was written."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"expected a non-empty name such as 'score_function' or "
                         f"'score_function:baseline=loo', got {spec!r}")
    name, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"bad option {part!r} in {spec!r}: expected key=value pairs "
                             f"separated by commas, e.g. 'score_function:baseline=loo'")
        if ":" in value:
            raise ValueError(f"bad option {part!r} in {spec!r}: a value cannot contain ':'; "
                             f"separate options with ',', e.g. 'score_function:baseline=loo,"
                             f"decay=0.9'")
        if key in options:
            raise ValueError(f"option {key!r} is given twice in {spec!r}")
        options[key] = value.strip()
    return name.strip(), options


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"score_function:baseline=loo,decay=0.9"`` -> ``("score_function", {...})`` with values
    read as Python literals where they are ones. :meth:`Registry.get` instead reads each value as
    the type its factory declares for that option (see :func:`coerce_options`)."""
    name, options = split_spec(spec)
    return name, {k: _literal(v) for k, v in options.items()}


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _convert(text: str, target: Any) -> Any:
    """``text`` as ``target`` (a type or a union of types); ValueError when it does not parse."""
    args = typing.get_args(target) if typing.get_origin(target) in (typing.Union,
                                                                     types.UnionType) else ()
    if args:
        if type(None) in args and text.lower() == "none":
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(text, arg)
            except ValueError:
                continue
        raise ValueError(" or ".join(getattr(a, "__name__", str(a)) for a in args
                                     if a is not type(None)))
    if target is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("a boolean (true/false, yes/no, on/off, 1/0)")
    if target is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("an int") from None
    if target is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("a number") from None
    if target is str:
        return text
    return _literal(text)  # no declared type: a Python literal, or the bare word


def _signature(factory: Callable) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """(parameters, their types, takes ``**kwargs``) of a factory or of a class's ``__init__``."""
    try:
        params = dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return {}, {}, True
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back on the defaults
        hints = {}
    types_ = {}
    for key, param in params.items():
        if key in hints:
            types_[key] = hints[key]
        elif param.default is not inspect.Parameter.empty and param.default is not None:
            types_[key] = type(param.default)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {k: p for k, p in params.items()
             if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
    return named, types_, var_kw


def coerce_options(what: str, name: str, factory: Callable,
                   options: Mapping[str, str]) -> dict[str, Any]:
    """Spec-string option texts as the types ``factory`` declares (its annotations, or the type
    of each default). An option it does not take, or a value that does not parse, is an error
    naming the option, what was expected, and the options there are."""
    params, types_, var_kw = _signature(factory)
    out = {}
    for key, text in options.items():
        if key not in params and not var_kw:
            raise TypeError(f"{what} {name!r} has no option {key!r}; its options are: "
                            f"{', '.join(params) or '(none)'}")
        if key not in types_:
            out[key] = _literal(text)
            continue
        try:
            out[key] = _convert(text, types_[key])
        except ValueError as exc:
            raise ValueError(f"{what} {name!r}: option {key}={text!r} is not {exc}") from None
    return out


class Registry(Mapping[str, Entry]):
    """A mapping from names to :class:`Entry`; refuses duplicates, suggests close names.

    ``fields`` are the facts an entry declares, with their defaults (for estimators: ``kind``,
    ``unbiased``, ``families``, ``description``, ``reference``, ...). A class states them once,
    as class attributes, and registers with a bare ``@REGISTRY.register``; the registry reads
    them from the class. A factory function (or a class, as plugins written for earlier versions
    do) may give them to the decorator instead, ``@REGISTRY.register("name", unbiased=True)``;
    they are then written onto the class, so the class and its entry never disagree.
    ``declare(facts) -> facts`` checks and normalises them (it may raise a ValueError).
    """

    def __init__(self, what: str, group: str | None = None,
                 fields: Mapping[str, Any] | None = None,
                 declare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 info: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        self.what = what  # "estimator", "loss", "metric": used in messages
        self.group = group  # entry-point group for plugins
        self.fields = dict(fields or {})
        self._declare = declare or (lambda facts: facts)
        self._info = info or (lambda facts: facts)  # the facts as the Entry shows them
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False
        self.plugin_errors: dict[str, str] = {}
        _REGISTRIES.append(self)

    # -- registering -----------------------------------------------------------------------
    def register(self, name: Any = None, /, **facts: Any) -> Any:
        """``@register`` on a class that declares its facts, or ``@register("name", **facts)``
        on a class or a factory function."""
        if isinstance(name, type):  # bare @register on a class
            return self._add(name, None, facts)
        if name is not None:
            self._check_name(name)

        def decorator(factory: Callable) -> Callable:
            return self._add(factory, name, facts)

        return decorator

    def _check_name(self, name: object) -> None:
        if not isinstance(name, str) or not name or ":" in name or "," in name:
            raise ValueError(f"{self.what} name must be a non-empty string without ':' or ',', "
                             f"got {name!r}")

    def _declared(self, factory: Callable, name: str | None,
                  given: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(given) - set(self.fields))
        if isinstance(factory, type):
            declared_name = factory.__dict__.get("name")
            if name is None:
                name = declared_name
                if name is None:
                    raise ValueError(f"{self.what} class {factory.__qualname__} declares no name: "
                                     f"set the class attribute name = '...' or pass "
                                     f"register('name')")
            elif isinstance(declared_name, str) and declared_name != name:
                raise ValueError(f"{self.what} class {factory.__qualname__} declares name "
                                 f"{declared_name!r} but is registered as {name!r}")
            # a name to show belongs to the class that declares it: a subclass registered under
            # its own name does not inherit its parent's display name
            facts = {key: given[key] if key in given
                     else factory.__dict__.get(key, default) if key in _OWN
                     else getattr(factory, key, default)
                     for key, default in self.fields.items()}
            if "description" in facts and not facts["description"]:
                doc = (factory.__doc__ or "").strip()
                facts["description"] = " ".join(doc.split("\n\n")[0].split())
        else:
            if name is None:
                raise ValueError(f"a {self.what} factory function needs a name: "
                                 f"register('name', ...)")
            facts = {key: given.get(key, default) for key, default in self.fields.items()}
        self._check_name(name)
        facts = self._declare(dict(facts))
        if isinstance(factory, type):
            for key in self.fields:
                setattr(factory, key, facts[key])
            factory.name = name
        info = self._info(dict(facts))
        info.update({key: given[key] for key in unknown})  # extra facts a plugin chose to give
        return name, info

    def _add(self, factory: Callable, name: str | None, given: dict[str, Any]) -> Callable:
        name, info = self._declared(factory, name, given)
        if name in self._entries:
            old = self._entries[name].factory
            raise ValueError(
                f"{self.what} {name!r} is already registered (by "
                f"{getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', old)}); "
                f"choose another name")
        self._entries[name] = Entry(name, factory, info)
        try:
            factory.registered_name = name
        except (AttributeError, TypeError):
            pass
        return factory

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
            # what every registry holds before the plugin loads: a plugin that fails halfway
            # (one invalid name among several) is taken back whole, never left half-registered
            before = [(registry, set(registry._entries)) for registry in _REGISTRIES]
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type(importlib)):
                    obj()
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin must not break
                # the suite, not even by calling sys.exit() at import (KeyboardInterrupt passes)
                for registry, names in before:
                    for name in set(registry._entries) - names:
                        del registry._entries[name]
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"estibench: could not load {self.what} plugin {ep.name!r} "
                              f"({ep.value}): {type(exc).__name__}: {exc}", RuntimeWarning,
                              stacklevel=2)

    # -- Mapping ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Entry:
        return self.entry(name)

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
        return unknown_name(self.what, name, self._entries)

    def available(self, **filters: Any) -> list[str]:
        """Sorted names, optionally filtered on info, e.g. ``available(kind="gradient")``."""
        self.load_plugins()
        return sorted(name for name, entry in self._entries.items()
                      if all(v is None or entry.info.get(k) == v for k, v in filters.items()))

    def entry(self, name: str) -> Entry:
        self.load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[name]

    def get(self, spec: str, **kwargs: Any) -> Any:
        """Build an instance from ``"name"`` or ``"name:key=value,..."`` plus keyword options
        (keywords win over the spec string). Spec-string values are read as the types the
        factory declares (``proposal_correction=false`` is ``False``), see :func:`coerce_options`."""
        name, texts = split_spec(spec)
        entry = self.entry(name)
        options = {**coerce_options(self.what, name, entry.factory, texts), **kwargs}
        params, _, var_kw = _signature(entry.factory)
        extra = sorted(set(kwargs) - set(params))
        if extra and not var_kw:
            raise TypeError(f"{self.what} {name!r} has no option {extra[0]!r}; its options are: "
                            f"{', '.join(params) or '(none)'}")
        obj = entry.factory(**options)
        try:
            obj.spec = spec if not kwargs else _format_spec(name, options)
        except (AttributeError, TypeError):
            pass
        return obj


def _format_spec(name: str, options: Mapping[str, Any]) -> str:
    if not options:
        return name
    return name + ":" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))
