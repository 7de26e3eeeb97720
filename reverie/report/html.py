"""The page around the charts: one HTML file with its styles inline, nothing fetched when viewed.

    from reverie.report.html import document, section, table
    document("reverie: 3 nights", [section("Nights", table(["id"], [["1"]]))])

Text is escaped here; pieces already in HTML (a chart, a badge) are passed as `Raw`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

# System fonts only: a web font would be a request at view time.
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0 auto; padding: 16px 24px 40px; max-width: 1340px; }
h1 { font-size: 22px; margin: 8px 0 2px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 14px 0 4px; }
.meta, .note { color: #666; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 20px; }
figure { margin: 0; flex: 1 1 560px; max-width: 660px; }
figcaption { font-weight: 600; margin: 4px 0; }
svg.chart { width: 100%; height: auto; font-size: 11px; }
svg .grid { stroke: #e6e6e6; }
svg .tick { fill: #555; }
svg .note { fill: #888; font-size: 13px; }
svg .hollow { fill: #fff; stroke-width: 2; }
svg .frame { fill: none; stroke: #e6e6e6; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; border-bottom: 1px solid #eee; }
th { color: #555; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.kept { color: #2a7a2a; font-weight: 600; }
.rejected, .failed { color: #c62828; font-weight: 600; }
.running, .interrupted { color: #a06000; font-weight: 600; }
details { margin: 6px 0; }
summary { cursor: pointer; }
code { background: #f4f4f4; padding: 1px 4px; border-radius: 3px; }
blockquote { margin: 2px 0 6px; padding-left: 8px; border-left: 3px solid #ddd; white-space: pre-wrap; }
"""


class Raw(str):
    """HTML that is inserted as it is (a chart, a badge)."""


def html(value) -> str:
    return value if isinstance(value, Raw) else escape("" if value is None else str(value))


def document(title: str, parts: Iterable[str], subtitle: str = "") -> str:
    body = "\n".join(parts)
    sub = f'<p class="meta">{escape(subtitle)}</p>' if subtitle else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><h1>{escape(title)}</h1>{sub}\n{body}\n</body></html>\n")


def section(title: str, *parts: str) -> Raw:
    return Raw(f"<section><h2>{escape(title)}</h2>" + "".join(parts) + "</section>")


def figure(caption: str, svg: str) -> Raw:
    return Raw(f"<figure><figcaption>{escape(caption)}</figcaption>{svg}</figure>")


def charts(*figures: str) -> Raw:
    return Raw('<div class="charts">' + "".join(figures) + "</div>")


def paragraph(text, cls: str = "") -> Raw:
    return Raw(f'<p class="{cls}">{html(text)}</p>' if cls else f"<p>{html(text)}</p>")


def table(headers: Sequence[str], rows: Iterable[Sequence], numeric: Sequence[int] = (), cls: str = "") -> Raw:
    """`numeric`: the columns aligned right."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{html(c)}</td>' if i in numeric else f"<td>{html(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return Raw(f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def badge(status: str) -> Raw:
    return Raw(f'<span class="{escape(status)}">{escape(status)}</span>')
