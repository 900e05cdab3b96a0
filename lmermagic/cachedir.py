"""A private directory reached through one open descriptor (the disk cache's).

A directory in a shared place (``/tmp``) can be swapped for a symbolic link
by another user between a check and a use. So the directory is opened once,
without following a link, and checked on that descriptor (ours, not
writable by group or others); every file is then opened, written, renamed
and removed relative to it (``dir_fd=``), never by path, each file opened
without following a link and non-blocking (a FIFO cannot hang the reader)
and checked on its own descriptor: a regular file of ours, or refused.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Directory", "open_private"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW


class Directory:
    """An open cache directory: one descriptor, opened without following a
    symbolic link and checked (ours, not writable by others) on the open
    descriptor; every entry is reached through it, never by path again, so
    that swapping the directory for a link afterwards changes nothing.
    ``d / name`` is the path, for messages and tests; :meth:`close` (or the
    end of the object) closes the descriptor."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def open(self, name: str) -> int | None:
        """A regular file of ours in the directory, opened for reading; None if
        absent; OSError (a FIFO, a link, a device, someone else's) otherwise.
        Never blocks: a FIFO is opened non-blocking and refused."""
        try:
            fd = os.open(name, _READ, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        try:
            _own_regular(os.fstat(fd), name)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def write(self, name: str, data: Sequence[bytes], link: bool = False) -> None:
        """Write ``name`` atomically: a new private file, then renamed (or,
        ``link``, linked: fails with FileExistsError if ``name`` exists)."""
        tmp, fd = self._temporary()
        try:
            with os.fdopen(fd, "wb") as fh:
                for part in data:
                    fh.write(part)
            if link:
                os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd,
                        follow_symlinks=False)
            else:
                os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)

    def _temporary(self, suffix: str = "") -> tuple[str, int]:
        for _ in range(100):
            name = f".tmp-{secrets.token_hex(8)}{suffix}"
            try:
                return name, os.open(name, _CREATE, 0o600, dir_fd=self.fd)
            except FileExistsError:
                continue
        raise FileExistsError("no free temporary name in the cache directory")

    def unlink(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=self.fd)

    def touch(self, name: str) -> None:
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(name, dir_fd=self.fd, follow_symlinks=False)

    def names(self) -> list[str]:
        # scandir on a duplicate: it closes the descriptor it is given
        with os.scandir(os.dup(self.fd)) as it:
            return [e.name for e in it]


def _own_regular(st: os.stat_result, name: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{name} is not a regular file")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise OSError(f"{name} belongs to another user")


def open_private(path: str | os.PathLike[str] | Directory) -> Directory:
    """``path`` created (mode 0o700) if absent and opened; OSError saying why
    if it cannot be, is a link, belongs to someone else or others can write
    to it."""
    if isinstance(path, Directory):
        return path
    d = Path(path).expanduser()
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW)
    except OSError as exc:
        raise OSError(f"cannot use {str(d)!r}: {exc}") from None
    st = os.fstat(fd)
    problem = None
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        problem = f"{str(d)!r} belongs to another user"
    elif st.st_mode & 0o022:
        problem = (f"{str(d)!r} can be written by other users (mode {st.st_mode & 0o777:o}); "
                   "its entries would be read by R, so it is not used. chmod 700 it")
    if problem:
        os.close(fd)
        raise OSError(problem)
    return Directory(d, fd)
