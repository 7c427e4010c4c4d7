"""Ladder (sequence) diagrams of a SIP exchange, as text and as SVG, always redacted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from sipharness.report.redact import redact_message, redact_text

if TYPE_CHECKING:
    from sipharness.capture.analysis import Trace

RETRANSMISSION = "retransmission"


@dataclass(frozen=True)
class LadderEntry:
    """One message on the diagram: when, from which endpoint to which, and its label."""

    time: float
    src: str
    dst: str
    label: str
    raw: bytes
    note: str = ""


def mark_retransmissions(entries: Iterable[LadderEntry]) -> list[LadderEntry]:
    """Entries in time order; a byte-identical repeat on the same path gets the note
    ``retransmission`` unless it already has a note."""
    seen: set[tuple[str, str, bytes]] = set()
    out: list[LadderEntry] = []
    for entry in sorted(entries, key=lambda e: e.time):
        key = (entry.src, entry.dst, entry.raw)
        if key in seen and entry.raw and not entry.note:
            entry = replace(entry, note=RETRANSMISSION)
        seen.add(key)
        out.append(entry)
    return out


def endpoints(entries: Sequence[LadderEntry]) -> list[str]:
    """Endpoints in order of first appearance (the sender of the first message leftmost)."""
    names: list[str] = []
    for entry in entries:
        for name in (entry.src, entry.dst):
            if name not in names:
                names.append(name)
    return names


def _arrow_text(entry: LadderEntry) -> str:
    label = redact_text(entry.label)
    return f"{label} [{redact_text(entry.note)}]" if entry.note else label


def render_text(entries: Iterable[LadderEntry]) -> str:
    """A plain-text ladder: one column per endpoint, one arrow per message, milliseconds
    since the first message on the left, retransmissions marked."""
    items = mark_retransmissions(entries)
    if not items:
        return "(no messages)\n"
    names = endpoints(items)
    labels = [_arrow_text(e) for e in items]
    gap = max([len(n) for n in names] + [len(lb) + 6 for lb in labels] + [20])
    columns = [10 + i * (gap + 1) for i in range(len(names))]
    width = columns[-1] + 1
    lines = []

    header = [" "] * (width + gap)
    for name, col in zip(names, columns, strict=True):
        start = max(0, col - len(name) // 2)
        header[start : start + len(name)] = name
    lines.append("".join(header).rstrip())
    lines.append(_lifelines(columns, width, " " * 10))

    t0 = items[0].time
    for entry, label in zip(items, labels, strict=True):
        row = list(_lifelines(columns, width, f"{(entry.time - t0) * 1000:>9.1f} "))
        a, b = columns[names.index(entry.src)], columns[names.index(entry.dst)]
        if a == b:
            text = f"|<-' {label}"
            row[a : a + len(text)] = text
        else:
            left, right = min(a, b), max(a, b)
            span = right - left - 1
            body = list("-" * span)
            text = f" {label} "
            start = max(1, (span - len(text)) // 2)
            body[start : start + len(text)] = text
            if b > a:
                body[-1] = ">"
            else:
                body[0] = "<"
            row[left + 1 : right] = body
        lines.append("".join(row).rstrip())
    lines.append(_lifelines(columns, width, " " * 10))
    return "\n".join(lines) + "\n"


def _lifelines(columns: list[int], width: int, prefix: str) -> str:
    row = [" "] * width
    row[: len(prefix)] = prefix
    for col in columns:
        row[col] = "|"
    return "".join(row).rstrip()


def render_svg(entries: Iterable[LadderEntry]) -> str:
    """A standalone SVG ladder: lifelines, arrows, labels, relative times, and the redacted
    message as each arrow's tooltip (``<title>``)."""
    items = mark_retransmissions(entries)
    names = endpoints(items)
    labels = [_arrow_text(e) for e in items]
    char = 7.2
    gap = max([len(n) * char + 40 for n in names] + [len(lb) * char + 60 for lb in labels] + [220])
    left_margin, top, row_h = 90.0, 60.0, 32.0
    xs = [left_margin + 20 + i * gap for i in range(len(names))]
    width = (xs[-1] if xs else left_margin) + gap / 2 + 20
    height = top + row_h * (len(items) + 1) + 20
    bottom = height - 20
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="monospace" font-size="12">',
        "<title>SIP ladder diagram</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#333"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#fff"/>',
        f'<text x="8" y="{top - 24:.0f}" fill="#666">time (ms)</text>',
    ]
    for name, x in zip(names, xs, strict=True):
        out.append(
            f'<text x="{x:.1f}" y="{top - 24:.0f}" text-anchor="middle" font-weight="bold">'
            f"{escape(name)}</text>"
        )
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 12:.0f}" x2="{x:.1f}" y2="{bottom:.0f}" '
            'stroke="#999" stroke-dasharray="4 3"/>'
        )
    t0 = items[0].time if items else 0.0
    for i, (entry, label) in enumerate(zip(items, labels, strict=True)):
        y = top + row_h * (i + 1)
        x1, x2 = xs[names.index(entry.src)], xs[names.index(entry.dst)]
        colour = "#b35900" if entry.note == RETRANSMISSION else "#1f4e9c"
        dash = ' stroke-dasharray="6 3"' if entry.note == RETRANSMISSION else ""
        tooltip = redact_message(entry.raw).decode("utf-8", "replace") if entry.raw else label
        out.append(f'<g class="message"><title>{escape(redact_text(tooltip))}</title>')
        out.append(f'<text x="8" y="{y + 4:.1f}" fill="#666">{(entry.time - t0) * 1000:.1f}</text>')
        if x1 == x2:
            path = f"M{x1:.1f},{y - 8:.1f} h40 v16 h-40"
            out.append(
                f'<path d="{path}" fill="none" stroke="{colour}"{dash} marker-end="url(#arrow)"/>'
            )
            out.append(
                f'<text x="{x1 + 46:.1f}" y="{y + 4:.1f}" fill="{colour}">{escape(label)}</text>'
            )
        else:
            out.append(
                f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" '
                f'stroke="{colour}" stroke-width="1.5"{dash} marker-end="url(#arrow)"/>'
            )
            out.append(
                f'<text x="{(x1 + x2) / 2:.1f}" y="{y - 5:.1f}" text-anchor="middle" '
                f'fill="{colour}">{escape(label)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def entries_from_trace(trace: Trace) -> list[LadderEntry]:
    """One entry per SIP message of a capture, labelled from our own parse of it."""
    from sipharness.capture.analysis import sip_label

    return mark_retransmissions(
        LadderEntry(
            time=p.time,
            src=p.src,
            dst=p.dst,
            label=sip_label(p),
            raw=p.raw,
            note="" if p.message is not None else "unparseable",
        )
        for p in trace.sip
    )
