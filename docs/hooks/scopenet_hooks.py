"""MkDocs hooks of the scopenet site (``hooks:`` in mkdocs.yml).

- ``on_page_markdown``: a ``<!-- model-table: TASK -->`` line becomes a table of the installed models of TASK.
- ``on_page_content``: the Sphinx roles that some docstrings use (``:class:`~a.B```) are shown as plain code
  (``B``) in the API reference instead of as literal ``:class:`` text.

The model table is made from the model cards at build time (``scopenet.weights.list_models()``, the same data as
``scopenet models list --json``), so a task page always shows what the shipped cards say: each model's
version, architecture, headline figure (``card.metrics.headline``) and the command that printed it.
"""
from __future__ import annotations

import logging
import re

#: a marker on a line of its own (a marker quoted inside a code span is left alone)
MARKER = re.compile(r"^<!--\s*model-table:\s*([\w-]+)\s*-->[ \t]*$", re.MULTILINE)
#: under "mkdocs.", so that a warning fails a strict build
log = logging.getLogger("mkdocs.hooks.scopenet")
#: ":class:<code>~a.b.C</code>" as mkdocstrings renders a Sphinx role
ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj):<code>(~?)([^<]*)</code>")


def _cell(text) -> str:
    return "-" if text in (None, "") else str(text).replace("|", "\\|").replace("\n", " ")


def model_table(task: str) -> str:
    """The markdown table of the installed models whose card says ``task``."""
    from scopenet.weights import list_models

    rows = [m for m in list_models() if m.task == task]
    if not rows:
        log.warning("model-table: no installed model has task %r", task)
        return f"*(no installed model has task `{task}`)*"
    lines = ["| model | version | architecture | headline figure | measured by | size |",
             "|---|---|---|---|---|---|"]
    for m in rows:
        h = m.card.metrics.headline
        head = "-" if h is None else f"**{h.value:.4g}** {h.label}"
        cmd = m.card.metrics.command
        lines.append(f"| `{m.name}` | {m.card.version} | `{m.architecture}` | {_cell(head)} | "
                     f"{_cell(f'`{cmd}`' if cmd else None)} | {m.size_bytes / 1e6:.1f} MB |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs hook signature
    return MARKER.sub(lambda mt: model_table(mt.group(1)), markdown)


def _role(mt: re.Match) -> str:
    target = mt.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if mt.group(1) else target}</code>"


def on_page_content(html: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs hook signature
    return ROLE.sub(_role, html)
