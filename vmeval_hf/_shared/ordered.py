"""Walking sorted streams together: what lets a whole-tree comparison hold a row at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

L = TypeVar("L")
R = TypeVar("R")

_END: Any = object()


def outer_join(left: Iterable[L], right: Iterable[R], left_key: Callable[[L], Any],
               right_key: Callable[[R], Any]) -> Iterator[tuple[L | None, R | None]]:
    """Walk ``left`` and ``right``, each in strictly ascending key order, together: ``(l, r)`` for
    a key both hold, ``(l, None)`` and ``(None, r)`` for a key only one holds, in key order."""
    lit, rit = iter(left), iter(right)
    a, b = next(lit, _END), next(rit, _END)
    while a is not _END or b is not _END:
        if b is _END or (a is not _END and left_key(a) < right_key(b)):
            yield a, None
            a = next(lit, _END)
        elif a is _END or right_key(b) < left_key(a):
            yield None, b
            b = next(rit, _END)
        else:
            yield a, b
            a, b = next(lit, _END), next(rit, _END)
