"""Just enough semantic versioning for module releases (``v1.2.3`` / ``1.2.3``)."""

from __future__ import annotations

import functools
import re

_RE = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


@functools.total_ordering
class Version:
    __slots__ = ("major", "minor", "patch", "pre")

    def __init__(self, major: int, minor: int = 0, patch: int = 0, pre: str = ""):
        self.major, self.minor, self.patch, self.pre = major, minor, patch, pre

    @classmethod
    def parse(cls, text) -> "Version":
        if isinstance(text, Version):
            return text
        m = _RE.match(str(text).strip())
        if not m:
            raise ValueError(f"invalid semantic version: {text!r}")
        return cls(int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), m.group(4) or "")

    @classmethod
    def try_parse(cls, text) -> "Version | None":
        try:
            return cls.parse(text)
        except (ValueError, TypeError):
            return None

    def _key(self):
        # a pre-release sorts before the release
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, self.pre)

    def __eq__(self, other):
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other):
        return self._key() < other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        s = f"{self.major}.{self.minor}.{self.patch}"
        return f"{s}-{self.pre}" if self.pre else s

    def __repr__(self):
        return f"Version({self})"


def is_patch_release(a: Version, b: Version) -> bool:
    """True when b is greater than a only in the patch number."""
    return b.major == a.major and b.minor == a.minor and b.patch > a.patch
