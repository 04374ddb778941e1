"""The server's data folder (``$ARCHS_DATA_DIR``, default ``./data``), the image folders inside it, and
:class:`DataError`, raised for anything about data (here, below the data package, so both can raise it).

A shared dashboard may read data only there. It names an image folder *relative to* the data folder, as
``folder:<relative/path>`` (:func:`folder_name`), so a stored run request never holds a server path;
:mod:`archs.training.data` resolves such a name against the data folder when it checks or loads it, in
whichever process that is (the web server before a run is queued, a worker when it trains), and refuses
one that leads out of it (:func:`resolve_folder`): ``..``, an absolute path, or a link whose target lies
outside. The refusal is one message that names no path, so it does not tell whether an outside folder
exists. Plain paths (the command line's ``--data PATH``, run by the operator) are not confined.

Downloads of torchvision data sets (into the data folder) are offered by the dashboard only where the
operator allows them: ``$ARCHS_ALLOW_DOWNLOAD`` set to 1, true or yes (:func:`downloads_allowed`).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

__all__ = [
    "DataError", "FOLDER_PREFIX", "OUTSIDE", "class_dirs", "confined_file", "data_dir", "downloads_allowed",
    "folder_name", "image_folders", "is_folder_name", "relative_part", "resolve_folder", "split_folder",
]

FOLDER_PREFIX = "folder:"
OUTSIDE = ("image folder refused: it is not inside the data folder (name one of its sub-folders; '..', absolute "
           "paths and links that lead out of it are not allowed)")
MAX_FOLDER_CHARS = 4096  # PATH_MAX; DataConfig's name has the same limit
SCAN_DEPTH = 3  # how deep image_folders looks below the data folder
SCAN_LIMIT = 2000  # folders it looks at, at most (a page draws the list on every rerun)
TEST_NAMES = ("test", "val", "valid", "validation")


class DataError(ValueError):
    """A data set is missing, partial, unreadable or cannot be fitted to the network."""


def data_dir() -> Path:
    """``$ARCHS_DATA_DIR`` or ``./data``, as given (not resolved)."""
    return Path(os.environ.get("ARCHS_DATA_DIR", "data"))


def downloads_allowed() -> bool:
    """Whether the operator lets dashboard users download data sets: ``$ARCHS_ALLOW_DOWNLOAD`` is 1, true or
    yes."""
    return os.environ.get("ARCHS_ALLOW_DOWNLOAD", "").strip().lower() in ("1", "true", "yes")


def is_folder_name(name: str) -> bool:
    return isinstance(name, str) and name.startswith(FOLDER_PREFIX)


def folder_name(relative: str) -> str:
    """The data-set name of an image folder given relative to the data folder."""
    return FOLDER_PREFIX + relative


def relative_part(name: str) -> str:
    return name[len(FOLDER_PREFIX):] if is_folder_name(name) else name


def _inside(path: Path, base: Path) -> bool:
    return path == base or path.is_relative_to(base)


def resolve_folder(relative: str, base: str | os.PathLike | None = None) -> Path:
    """The real path of ``relative`` inside the data folder (``base``, default :func:`data_dir`).

    Raises DataError with :data:`OUTSIDE` (whatever lies outside, existing or not) for an absolute path, a
    ``..`` part, or a path whose links lead out of the folder, and for the data folder itself (a name must
    be one of its sub-folders). Does not check that the folder exists.
    """
    text = str(relative)
    if len(text) > MAX_FOLDER_CHARS:            # before any parsing: no path on Linux is longer
        raise DataError(f"image folder refused: its name is over {MAX_FOLDER_CHARS:,} characters")
    if not text or "\x00" in text:
        raise DataError(OUTSIDE)
    pure = PurePath(text)
    parts = set(pure.parts) | set(text.replace("\\", "/").split("/"))
    if pure.is_absolute() or pure.anchor or pure.drive or ".." in parts:
        raise DataError(OUTSIDE)
    try:
        real_base = Path(base if base is not None else data_dir()).resolve()
        target = (real_base / pure).resolve()
    except (OSError, RuntimeError, ValueError):  # a link loop, a name the system refuses
        raise DataError(OUTSIDE) from None
    if target == real_base or not _inside(target, real_base):
        raise DataError(OUTSIDE)
    return target


def confined_file(path: str | os.PathLike, real_base: Path) -> bool:
    """Whether ``path`` (a file or folder found inside an image folder) really lies inside ``real_base``."""
    try:
        return _inside(Path(os.path.realpath(path)), real_base)
    except (OSError, ValueError):
        return False


def split_folder(path: Path) -> tuple[Path, Path | None]:
    """(train folder, test folder or None) of an image folder: ``train/`` beside ``test/`` (or ``val/``,
    ``valid/``, ``validation/``), or the folder itself, to be split."""
    if (path / "train").is_dir():
        for name in TEST_NAMES:
            if (path / name).is_dir():
                return path / "train", path / name
        return path / "train", None
    return path, None


def class_dirs(folder: Path) -> list[Path]:
    """The class sub-folders of ``folder``, as torchvision's ImageFolder finds them (every sub-folder)."""
    try:
        return [p for p in sorted(folder.iterdir()) if p.is_dir()]
    except OSError:
        return []


def _has_file(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(entry.is_file() for entry in entries)  # stops at the first
    except OSError:
        return False


def _qualifies(path: Path, real_base: Path) -> bool:
    """An image folder whose classes all lie inside the data folder: two class folders or more, one of them
    at least holding files (a folder of image folders is searched further instead)."""
    train, test = split_folder(path)
    classes = class_dirs(train)
    if len(classes) < 2 or not any(_has_file(c) for c in classes):
        return False
    every = classes + (class_dirs(test) if test is not None else []) + [train] + ([test] if test else [])
    return all(confined_file(p, real_base) for p in every)


def image_folders(base: str | os.PathLike | None = None, depth: int = SCAN_DEPTH,
                  limit: int = SCAN_LIMIT) -> list[str]:
    """The image folders inside the data folder, as relative POSIX paths, sorted: sub-folders up to
    ``depth`` levels down with at least two class sub-folders (or a ``train/`` folder that has them), of
    which one holds files, all inside the data folder. Hidden folders and links that lead out are skipped;
    the folders of an image folder are not searched further."""
    try:
        real_base = Path(base if base is not None else data_dir()).resolve()
    except (OSError, RuntimeError):
        return []
    if not real_base.is_dir():
        return []
    found: list[str] = []
    queue: list[tuple[Path, tuple[str, ...]]] = [(real_base, ())]
    seen = 0
    while queue:
        folder, parts = queue.pop(0)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
            except OSError:
                continue
            path = Path(entry.path)
            if not confined_file(path, real_base) or Path(os.path.realpath(path)) == real_base:
                continue
            seen += 1
            if seen > limit:
                return sorted(found)
            rel = parts + (entry.name,)
            if _qualifies(path, real_base):
                found.append("/".join(rel))
            elif len(rel) < depth:
                queue.append((path, rel))
    return sorted(found)
