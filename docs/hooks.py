"""MkDocs hook: the config reference page's tables are written from the schema at build time, so they cannot drift."""

from __future__ import annotations

MARKER = "<!-- config keys: written from edgeweave/platform/config/schema.py at build time -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Put the generated tables where the reference page holds the marker."""
    if page.file.src_uri != "reference/config.md":
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/reference/config.md has lost its marker line {MARKER!r}")
    from edgeweave.platform.config.reference import markdown as reference

    return markdown.replace(MARKER, reference())
