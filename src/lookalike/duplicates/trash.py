"""The freedesktop.org trash (the one file managers show): a trashed file goes to
``TRASH/files/NAME`` with ``TRASH/info/NAME.trashinfo`` saying where it came from and when.

A file on the home trash's filesystem goes to the home trash (``$XDG_DATA_HOME/Trash``, by
default ``~/.local/share/Trash``); a file on another filesystem goes to that filesystem's own
trash at its top directory (``.Trash/UID`` when the administrator made it, sticky and not a
link, else ``.Trash-UID``), as the specification says, so a file is never copied across
disks to be trashed. Where neither can be made the file is refused with the reason."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote

from lookalike.errors import InvalidInputError


@dataclass(frozen=True)
class TrashCan:
    """A trash directory; ``topdir`` is set for a per-filesystem trash (its info files hold
    paths relative to it)."""

    root: Path
    topdir: Path | None = None

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def info(self) -> Path:
        return self.root / "info"

    def prepare(self) -> None:
        """Make the can's folders (private to the user) if they are missing."""
        for folder in (self.root, self.files, self.info):
            folder.mkdir(mode=0o700, parents=folder is self.root, exist_ok=True)

    def free_name(self, source: Path) -> str:
        """A name under which neither a trashed file nor an info file exists yet."""
        name = source.name
        number = 0
        while (self.files / name).exists() or (self.info / f"{name}.trashinfo").exists():
            number += 1
            name = f"{source.stem}.{number}{source.suffix}"
        return name

    def info_text(self, source: Path, when: datetime) -> str:
        original = source if self.topdir is None else source.relative_to(self.topdir)
        return (
            "[Trash Info]\n"
            f"Path={quote(str(original))}\n"
            f"DeletionDate={when.strftime('%Y-%m-%dT%H:%M:%S')}\n"
        )

    def write_info(self, name: str, source: Path, when: datetime) -> Path:
        """Write ``NAME.trashinfo`` (exclusively: the name is claimed by it) and flush it."""
        path = self.info / f"{name}.trashinfo"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, self.info_text(source, when).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return path


def describes(info: Path, source: Path) -> bool:
    """Whether the ``.trashinfo`` file ``info`` says its file came from ``source``."""
    for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Path="):
            original = unquote(line.removeprefix("Path="))
            return original == str(source) or str(source).endswith(f"/{original}")
    return False


def home_trash() -> TrashCan:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return TrashCan(Path(data_home) / "Trash")


def trash_for(path: Path) -> TrashCan:
    """The trash that ``path`` goes to (see the module's docstring); raises
    ``InvalidInputError`` naming the file when no trash on its filesystem can be used."""
    device = path.stat().st_dev
    home = home_trash()
    if _device(home.root) == device:
        return home
    top = _mount_point(path)
    uid = os.getuid()
    shared = top / ".Trash"
    try:
        info = shared.lstat()
        if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX:
            return TrashCan(shared / str(uid), topdir=top)
    except FileNotFoundError:
        pass
    own = TrashCan(top / f".Trash-{uid}", topdir=top)
    try:
        own.prepare()
    except OSError as exc:
        raise InvalidInputError(
            f"{path}: it is on another filesystem than the home trash ({home.root}) and that "
            f"filesystem's trash {own.root} cannot be made ({exc.strerror}); use --move-to "
            "DIR instead"
        ) from None
    return own


def _device(folder: Path) -> int:
    """The device of ``folder``, or of its nearest existing parent (the trash may not exist
    yet)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder.stat().st_dev


def _mount_point(path: Path) -> Path:
    path = path.absolute()
    device = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == device:
        path = path.parent
    return path


__all__ = ["TrashCan", "describes", "home_trash", "trash_for"]
