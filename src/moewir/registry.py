"""Name -> object tables: one mechanism for every table a user picks from by name.

Models, task weightings, ablation studies, synthesis tasks, describers, judges, luma
conventions and LPIPS backbones are each a :class:`Registry`. Registering a name twice is an
error, and an unknown name raises :class:`UnknownNameError` (a ``ValueError``) that lists the
valid ones, so every table fails the same way::

    TASKS = Registry("synthesis task")

    @TASKS.register("haze")
    def haze(...): ...

    TASKS.register("rain", rain)   # the same, without the decorator
    TASKS.get("fog")               # UnknownNameError: unknown synthesis task 'fog'; known: haze, rain

:meth:`Registry.names` (and iteration, and the list in the error) follow the registration
order, which is the order a module wrote its table in; ``sort=True`` sorts them instead.

This module is the bottom of the package: it imports nothing from moewir.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterable, Iterator, TypeVar, overload

__all__ = ["Registry", "UnknownNameError"]

T = TypeVar("T")

DEFAULT_UNKNOWN = "unknown {kind} {names}; known: {known}"


class UnknownNameError(ValueError):
    """A name that is not in a registry; the message lists the registered names."""

    def __init__(self, message: str, kind: str, names: list[str], known: list[str]):
        super().__init__(message)
        self.kind, self.names, self.known = kind, names, known


class Registry(Generic[T]):
    """Names -> objects, filled by :meth:`register` (see the module docstring).

    ``unknown`` is the wording of the unknown-name error, a format string with ``{kind}``,
    ``{names}`` (the unknown names, quoted) and ``{known}`` (the registered names, joined).
    """

    def __init__(self, kind: str, *, unknown: str = DEFAULT_UNKNOWN, sort: bool = False):
        self.kind = kind
        self._unknown = unknown
        self._sort = sort
        self._table: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name, obj=None):
        """Register ``obj`` under ``name`` and return it; without ``obj``, a decorator that
        registers what it decorates. A name registered twice is a ``ValueError``."""
        if obj is None:
            return lambda decorated: self.register(name, decorated)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._table:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._table[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The object registered under ``name``; :class:`UnknownNameError` when there is none."""
        try:
            return self._table[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name"
            raise self.error([name]) from None

    def require(self, names: Iterable[str]) -> None:
        """Raise one :class:`UnknownNameError` naming every one of ``names`` not registered."""
        missing = [n for n in names if n not in self]
        if missing:
            raise self.error(missing)

    def error(self, names: list[str]) -> UnknownNameError:
        """The error for the unknown ``names`` (several: the kind in the plural form ``(s)``)."""
        known = self.names()
        kind = self.kind if len(names) == 1 else f"{self.kind}(s)"
        message = self._unknown.format(kind=kind, names=", ".join(repr(n) for n in names),
                                       known=", ".join(known) or "(none)")
        return UnknownNameError(message, self.kind, list(names), known)

    def names(self) -> list[str]:
        """The registered names: in registration order, or sorted when made with ``sort=True``."""
        return sorted(self._table) if self._sort else list(self._table)

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs, in the order of :meth:`names`."""
        return [(name, self._table[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._table
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
