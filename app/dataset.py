"""A folder of episode files: what is in it, filtering, and deleting into a restorable trash.

`Dataset.scan()` reads every `*.h5` in the folder with `open_episode` into `EpisodeEntry` rows;
files that cannot be read are skipped and listed in `Dataset.unreadable` with their one-line
reason. Deleting moves the file into `<folder>/.trash/` (nothing is ever unlinked), restoring moves
it back; both rescan. The browser widget renders `entries`/`filtered()` and calls these methods.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recorders.episode_file import EpisodeError, open_episode

TRASH_DIR = ".trash"
EPISODE_GLOB = "*.h5"


class DatasetError(Exception):
    """A dataset operation that cannot be done; one-line message."""


@dataclass(frozen=True)
class EpisodeEntry:
    path: Path
    task: str
    instruction: str
    duration_s: float
    frames: int
    segments: int
    success: bool | None
    edited: bool

    @property
    def name(self) -> str:
        return self.path.name


def read_entry(path: Path) -> EpisodeEntry:
    with open_episode(path) as ep:
        return EpisodeEntry(Path(path), ep.task, ep.instruction, ep.duration_s, ep.frames, len(ep.labels),
                            ep.success, ep.labels_edited)


class Dataset:
    """The episodes of one folder."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DatasetError(f"{self.folder} is not a folder")
        self.entries: list[EpisodeEntry] = []
        self.unreadable: list[tuple[Path, str]] = []  # (file, why it was skipped)
        self.scan()

    @property
    def trash_dir(self) -> Path:
        return self.folder / TRASH_DIR

    def scan(self) -> None:
        self.entries, self.unreadable = [], []
        for path in sorted(self.folder.glob(EPISODE_GLOB)):
            try:
                self.entries.append(read_entry(path))
            except (EpisodeError, OSError) as e:
                self.unreadable.append((path, str(e)))

    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.entries})

    def filtered(self, text: str = "", task: str | None = None) -> list[EpisodeEntry]:
        """Entries whose file name, task or instruction contains `text` (any case), of `task` if given."""
        needle = text.strip().lower()
        return [e for e in self.entries
                if (task is None or e.task == task)
                and (not needle or needle in f"{e.name} {e.task} {e.instruction}".lower())]

    def trash(self, path) -> Path:
        """Move an episode into the trash; returns where it went."""
        path = Path(path)
        if path.parent.resolve() != self.folder.resolve() or not path.is_file():
            raise DatasetError(f"{path} is not an episode of {self.folder}")
        self.trash_dir.mkdir(exist_ok=True)
        dest = self._free_name(self.trash_dir, path.name)
        os.replace(path, dest)
        self.scan()
        return dest

    def trashed(self) -> list[Path]:
        return sorted(self.trash_dir.glob(EPISODE_GLOB)) if self.trash_dir.is_dir() else []

    def restore(self, trashed) -> Path:
        """Move a trashed episode back into the folder; refuses to overwrite an episode there."""
        trashed = Path(trashed)
        if trashed.parent.resolve() != self.trash_dir.resolve() or not trashed.is_file():
            raise DatasetError(f"{trashed} is not in the trash of {self.folder}")
        dest = self.folder / trashed.name
        if dest.exists():
            raise DatasetError(f"cannot restore {trashed.name}: {dest} already exists")
        os.replace(trashed, dest)
        self.scan()
        return dest

    @staticmethod
    def _free_name(folder: Path, name: str) -> Path:
        dest = folder / name
        stem, suffix, i = Path(name).stem, Path(name).suffix, 1
        while dest.exists():  # an older trashed episode of the same name stays
            dest = folder / f"{stem}~{i}{suffix}"
            i += 1
        return dest
