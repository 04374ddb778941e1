"""Number formatting for metrics, tables and chart labels, and escaping of untrusted text for Markdown and for
Plotly figures."""

from __future__ import annotations

import html
import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~$])")   # emphasis, links, directives, HTML, LaTeX


def count(n: int) -> str:
    """25557032 -> '25,557,032' (exact, as papers and torchvision report parameter counts)."""
    return f"{int(n):,}"


def si(n: float, unit: str = "") -> str:
    """1.82e9 -> '1.82 G': mult-adds and other large quantities, three significant digits."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}{unit}"
    return f"{n:.3g} {unit}".rstrip()


def nbytes(n: float) -> str:
    """Bytes in binary units: 1.5 MiB."""
    for scale, prefix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.3g} {prefix}"
    return f"{int(n)} B"


def shape(dims) -> str:
    """(64, 56, 56) -> '64×56×56'; None -> '—'."""
    return "×".join(str(d) for d in dims) if dims else "—"


def plain(text: object, limit: int = 400) -> str:
    """Untrusted text (a URL parameter, a file's error) made safe to show as Markdown: escaped, shortened."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def chart(text: object, limit: int = 120) -> str:
    """Untrusted text (a network's name, a run's label, a trial's values) made safe for a Plotly figure, shortened.

    Plotly draws a subset of HTML wherever text is shown (trace names, legends, hover text, tick labels,
    annotations): ``<a href>`` makes a link, ``<span style>`` restyles the page's chart. ``&``, ``<`` and ``>``
    become entities, which Plotly shows as the characters; quotes are left alone (Plotly knows no ``&quot;``).
    ``{`` becomes ``&#123;``, so that a name placed in a hover template is not read as a ``%{variable}``."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return html.escape(text, quote=False).replace("{", "&#123;")


def chart_texts(texts) -> list[str]:
    """:func:`chart` of each text."""
    return [chart(text) for text in texts]


def code(text: object, limit: int = 400) -> str:
    """Untrusted text as Markdown inline code (a path, a command): nothing inside a code span is markup, so it
    is not escaped; backticks and line breaks, which would end the span, are replaced."""
    text = re.sub(r"[`\r\n]", "'", str(text))
    return "`" + (text[:limit] + "…" if len(text) > limit else text) + "`"


def seconds(s: float) -> str:
    """0.0123 -> '12.3 ms'; 2.5 -> '2.5 s': a measured time, three significant digits."""
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def duration(s: float) -> str:
    """A rough duration for a person: '5 s', '40 s', '3 min'."""
    if s < 60:
        return f"{max(1, round(s))} s"
    return f"{round(s / 60)} min"
