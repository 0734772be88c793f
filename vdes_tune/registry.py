"""One small registry: named factories for models, architectures and search spaces."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from vdes_tune.errors import BadInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> factory, with an error that lists what is available."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that files a factory under `name`."""
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item
        return add

    def get(self, name: str) -> T:
        """The factory named `name`; BadInputError naming the choices otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise BadInputError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
