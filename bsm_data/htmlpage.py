"""Self-contained HTML pages: one stylesheet, tables, and images inlined as data URIs, so a
report is a single file that opens anywhere (no server, no network)."""
from __future__ import annotations

import base64
import html

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em}
.num{text-align:right}figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
nav a{margin-right:1em}.note{color:#555;font-size:.9em}"""

escape = html.escape


class Markup(str):
    """Cell text that is already HTML (built with ``escape``), placed in a table as it is."""


def link(href: str, text: str) -> Markup:
    return Markup(f'<a href="{escape(href)}">{escape(text)}</a>')


def _cell(c) -> str:
    return c if isinstance(c, Markup) else escape(str(c))


def table(head: list[str], body: list[list], num: set[int] = frozenset()) -> str:
    """An HTML table; columns whose index is in ``num`` are right-aligned."""
    h = "".join(f"<th>{escape(str(x))}</th>" for x in head)
    cls = ' class="num"'
    rows = "".join("<tr>" + "".join(f"<td{cls if i in num else ''}>{_cell(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in body)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{rows}</tbody></table>"


def png_figure(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'


def page(title: str, body: str, *, head_extra: str = "") -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style>{head_extra}</head><body>{body}</body></html>\n")
