"""Input files a run reads besides its config: a DISTREAL front, a resource trace.

Each is read once, when its config section is validated (on the driver, or in a Tune trial),
and its bytes travel inside the config object: workers get the config pickled, so every process
uses the same content and none reads the disk again. The checkpoint's fingerprint covers the
content (`input_files`), so a run resumed after such a file changed is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, PrivateAttr

from edgeweave.platform.registry import Params


class FileParams(Params):
    """Parameters whose fields named in `input_fields` are paths of input files, read at validation."""

    input_fields: ClassVar[tuple[str, ...]] = ()
    _content: dict[str, bytes] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        for name in self.input_fields:
            path = getattr(self, name)
            if path is not None and Path(path).is_file():
                self._content[name] = Path(path).read_bytes()

    def content(self, name: str) -> Optional[bytes]:
        """The bytes of the file that field `name` names, as read at validation; None if it was missing."""
        return self._content.get(name)


def input_files(section: BaseModel, prefix: str = "") -> dict[str, bytes]:
    """Every input file's content in a config, keyed by its field as the YAML spells it (strategy.front)."""
    found: dict[str, bytes] = {}
    if isinstance(section, FileParams):
        for name in section.input_fields:
            content = section.content(name)
            if content is not None:
                found[prefix + name] = content
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            # A pluggable section's parameters read as keys of the section itself (strategy.front).
            found.update(input_files(value, prefix if name == "params" else f"{prefix}{name}."))
    return found
