"""Files of a run folder, opened so that nothing planted there reaches outside it.

A run's folder (``<runs>/<run id>``) is made by the server's own processes (the local executor's supervisor, a
worker, the server relaying a remote run), never by the process that submits a run. Everything in it is opened
through a descriptor of the folder taken with ``O_NOFOLLOW | O_DIRECTORY``, and each file with ``O_NOFOLLOW``:
a symbolic link planted where ``weights.pt``, ``worker.log`` or a temporary file goes (pointing at the server's
secrets, say) is refused, never read, written or offered for download. New files are written to a fresh
temporary name (``O_CREAT | O_EXCL``: a planted name fails) and renamed into place; logs are ``0600``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["UnsafeFile", "append_fd", "make_run_folder", "open_folder", "read_regular", "read_tail", "regular_size",
           "replace_file", "safe_append_fd"]

FILE_MODE = 0o600
FOLDER_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UnsafeFile(OSError):
    """A run's file or folder that is a link, not a regular file, or not this server's."""


def make_run_folder(path: Path) -> None:
    """Create a run's folder (``0700``) as this process's user; an existing one must be a real folder of this user
    (not a link, not made by someone else): otherwise :class:`UnsafeFile`."""
    try:
        os.mkdir(path, FOLDER_MODE)
        return
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeFile(f"{path} is not a folder (a link or a file was put there)")
    if info.st_uid != os.geteuid():
        raise UnsafeFile(f"{path} was made by another user (uid {info.st_uid}), not by this server")


@contextlib.contextmanager
def open_folder(path: Path, create: bool = False) -> Iterator[int]:
    """A descriptor of the folder ``path`` itself (never a link's target); made first when ``create``."""
    if create:
        make_run_folder(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as error:
        if os.path.islink(path):
            raise UnsafeFile(f"{path} is a link, not a run folder") from None
        raise error
    try:
        yield fd
    finally:
        os.close(fd)


def _open_regular(folder: int, name: str, flags: int, mode: int = FILE_MODE) -> int:
    try:
        fd = os.open(name, flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=folder)
    except OSError as error:
        if error.errno == errno.ELOOP:  # the name is a symbolic link
            raise UnsafeFile(f"{name} is a link") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise UnsafeFile(f"{name} is not a regular file of its own (a device, a fifo or a hard link)")
    return fd


def read_regular(folder_path: Path, name: str) -> bytes:
    """The bytes of the regular file ``name`` in ``folder_path``; :class:`UnsafeFile` for a link (file or folder),
    FileNotFoundError when it is not there."""
    with open_folder(folder_path) as folder:
        fd = _open_regular(folder, name, os.O_RDONLY)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()


def read_tail(folder_path: Path, name: str, max_bytes: int) -> bytes:
    """The last ``max_bytes`` of the regular file ``name`` in ``folder_path`` (b"" when it is not there);
    :class:`UnsafeFile` for a link."""
    try:
        with open_folder(folder_path) as folder:
            fd = _open_regular(folder, name, os.O_RDONLY)
    except FileNotFoundError:
        return b""
    with os.fdopen(fd, "rb") as handle:
        handle.seek(max(0, handle.seek(0, 2) - max_bytes))
        return handle.read()


def regular_size(folder_path: Path, name: str) -> int | None:
    """The size of the regular file ``name`` in ``folder_path`` (a link or anything else: None)."""
    try:
        with open_folder(folder_path) as folder:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 else None


def replace_file(folder_path: Path, name: str, write) -> None:
    """Write ``name`` in the folder (made if missing) atomically: ``write(handle)`` fills a fresh temporary file
    (``O_EXCL``, ``0600``), then it is renamed over ``name`` (a link there is replaced, never followed)."""
    with open_folder(folder_path, create=True) as folder:
        tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = _open_regular(folder, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
            raise


def append_fd(folder_path: Path, name: str, create_folder: bool = True) -> int:
    """A descriptor appending to ``name`` in the folder (created ``0600``); :class:`UnsafeFile` for a link."""
    with open_folder(folder_path, create=create_folder) as folder:
        return _open_regular(folder, name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def safe_append_fd(path: Path) -> int:
    """A descriptor appending to the file ``path`` (created ``0600``) in a folder that exists, never through a link
    (the supervisor's log beside the runs)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW | _CLOEXEC, FILE_MODE)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise UnsafeFile(f"{path} is not a regular file of its own")
    return fd
