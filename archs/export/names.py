"""Names from hostile text: a network's name comes from a link, an upload or a stored run (issue 13). File
names are :func:`file_stem` slugs that cannot leave the output folder; messages and comments show text
:func:`escaped`."""

from __future__ import annotations

import hashlib
import keyword
import re
import sys
import unicodedata


class ExportError(ValueError):
    """A network, module or format the exporter cannot handle."""


MAX_STEM = 64
# a stem never names a module the generated code imports (a torch.py beside it would shadow torch) or a
# Windows device (CON.py opens the console there)
_RESERVED_STEMS = frozenset(sys.stdlib_module_names) | {"torch", "archs", "numpy", "onnx", "onnxruntime",
                                                         "safetensors"}
_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def file_stem(name: str) -> str:
    """A file and Python module name for a network name: 'cifar-resnet20' -> 'cifar_resnet20'.

    Whatever ``name`` holds (path separators, '..', NUL, control characters, any script, any length), the
    stem is ASCII letters, digits and underscores, at most :data:`MAX_STEM` characters, starting with a
    letter, and neither a Python keyword, a module the generated code imports, nor a Windows device name:
    a file name that stays in the folder it is written to, and a module name that imports."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")     # 'réseau' -> 'reseau'
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "network"
    if (not stem[0].isalpha() or keyword.iskeyword(stem) or stem.lower() in _RESERVED_STEMS
            or stem.lower() in _WINDOWS_DEVICES):
        stem = f"net_{stem}"
    if len(stem) > MAX_STEM:              # cut, with a digest of the whole name so long names stay apart
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem = f"{stem[:MAX_STEM - 9].rstrip('_')}_{digest}"
    return stem


def escaped(text: str) -> str:
    """``text`` for a terminal, an error message or a ``#`` comment: every character that is not printable
    (newlines, CR, escape sequences, bidi overrides, lone surrogates) and every backslash as its Python
    escape, so the text stays on one line and shows what it holds. Printable text is unchanged."""
    return "".join(ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def check_file_name(file_name: str) -> str:
    if not _SAFE_FILE_NAME.fullmatch(file_name):
        raise ExportError(f"refusing to write {file_name!r}: not a plain file name")
    return file_name
