"""Input files a run reads besides its config: a DISTREAL front, a resource trace.

Each is read once, when its config section is validated (on the driver, or in a Tune trial),
and its bytes travel inside the config object: workers get the config pickled, so every process
uses the same content and none reads the disk again. The checkpoint's fingerprint covers the
content (`input_files`), so a run resumed after such a file changed is refused. A relative path is
found as a plugin is, from the config's folder, else from the working directory, and recorded
absolute (`absolute_inputs`): the run directory's config names the same file from any folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, PrivateAttr

from edgeweave.platform.core.registry import Params


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


def locate(path: str, base: Optional[Path]) -> str:
    """The absolute path of an input file: in `base` (the config's folder) if it is there, else in the working
    directory if it is there, else in `base` (a file still to be made, e.g. the front `edgeweave dse` writes)."""
    candidates = ([base / path] if base is not None else []) + [Path(path)]
    return os.path.abspath(next((c for c in candidates if c.is_file()), candidates[0]))


def absolute_inputs(params: type[BaseModel], body: dict[str, Any], base: Optional[Path]) -> dict[str, Any]:
    """A section's raw parameters, validated by `params`, with its input files as absolute paths: those the
    config gives found from `base`, the config's folder (`locate`); a default one from the working directory."""
    if not issubclass(params, FileParams):
        return body
    body = dict(body)
    for name in params.input_fields:
        given = body.get(name, params.model_fields[name].get_default())
        if isinstance(given, str) and given:
            body[name] = locate(given, base if name in body else None)
    return body
