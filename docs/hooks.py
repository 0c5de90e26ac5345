"""MkDocs hook: the reference pages' tables are written from the schemas at build time, so they cannot drift."""

from __future__ import annotations

PAGES = {  # page -> (its marker line, the rows' function in edgeweave.platform.config.reference)
    "reference/config.md": (
        "<!-- config keys: written from edgeweave/platform/config/schema.py at build time -->",
        "keys",
    ),
    "reference/sweep.md": (
        "<!-- sweep keys: written from edgeweave/platform/config/sweep.py at build time -->",
        "sweep_keys",
    ),
}


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Put the generated tables where a reference page holds its marker."""
    if page.file.src_uri not in PAGES:
        return markdown
    marker, rows = PAGES[page.file.src_uri]
    if marker not in markdown:
        raise ValueError(f"docs/{page.file.src_uri} has lost its marker line {marker!r}")
    from edgeweave.platform.config import reference

    return markdown.replace(marker, reference.markdown(getattr(reference, rows)()))
