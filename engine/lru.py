"""The one least-recently-used cache: worker captures and images, shown maps, thumbnails.

Plain Python (no Qt, no torch), so each user keeps only its size and its key.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``size`` entries; ``get`` and ``put`` make an entry the newest, the oldest goes.

    A stored ``None`` is a value (a thumbnail that failed to load): test with ``in`` when it
    matters, since ``get`` also answers ``None`` for a missing key.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"an LRU cache holds at least one entry, got size {size}")
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        """The value, now the most recently used; None when absent."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: K, value: V) -> None:
        """Store (or replace) as the most recently used, dropping the oldest beyond ``size``."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def values(self) -> list[V]:
        """The values, least recently used first."""
        return list(self._items.values())

    def clear(self) -> None:
        self._items.clear()
