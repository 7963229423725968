"""A report section (what the study asks, the commands that rerun it, its figures, numbers and claims)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Section:
    key: str
    title: str
    caption: str                       # what the study asks for
    commands: list[list[str]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)   # paths relative to the report folder
    numbers: dict[str, Any] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)    # sentences built from the numbers
    full_size: list[list[str]] = field(default_factory=list)   # the study's full-size commands (CPU-sized sections)
    seconds: float = 0.0


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
