"""`Problem`: one broken rule in a sample, shared by the tarball and the options validators."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A rule a sample breaks: a stable `code`, a sentence, and the member it concerns.

    Messages name the member and the rule, never the data: no VCF line ever reaches one.
    """

    code: str
    message: str
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.member}: {self.message}" if self.member else self.message

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
