"""Writing a small settings file so that a crash leaves the old file or the new one, never half of one:
the text goes to a temporary file beside it, which then replaces the old file (os.replace is atomic)."""
from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
