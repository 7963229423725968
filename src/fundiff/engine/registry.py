"""A registry of named classes of one kind (the views, the decompositions): look-up with a one-line error."""

from __future__ import annotations

from typing import Generic, TypeVar

from fundiff.errors import FundiffError

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """``{cls.name: cls}`` for ``classes``, in the order given; :meth:`lookup` names the known ones when it fails."""

    def __init__(self, kind: str, *classes: type[T]):
        super().__init__((cls.name, cls) for cls in classes)
        self.kind = kind

    def names(self) -> list[str]:
        return list(self)

    def lookup(self, name: str) -> type[T]:
        if name not in self:
            raise FundiffError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self)}")
        return self[name]
