"""Tests for engine/lru.py: order of eviction, refresh on use, None as a value."""

from __future__ import annotations

import pytest

from engine.lru import LruCache


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LruCache[str, int] = LruCache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # a is now the newest: b is the oldest
    cache.put("d", 3)
    assert "b" not in cache and len(cache) == 3
    assert cache.values() == [2, 0, 3]  # c, a, d: least recently used first


def test_put_of_an_existing_key_replaces_and_refreshes_it() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.values() == [10, 3]
    assert cache.get("b") is None


def test_none_is_a_value_told_apart_by_in() -> None:
    cache: LruCache[str, int | None] = LruCache(2)
    cache.put("broken", None)
    assert "broken" in cache and cache.get("broken") is None
    assert "missing" not in cache and cache.get("missing") is None


def test_clear_and_size() -> None:
    cache: LruCache[int, int] = LruCache(1)
    cache.put(1, 1)
    cache.put(2, 2)
    assert cache.values() == [2]
    cache.clear()
    assert len(cache) == 0 and cache.values() == []
    with pytest.raises(ValueError, match="at least one"):
        LruCache(0)
