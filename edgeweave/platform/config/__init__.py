"""The experiment and sweep schemas: YAML in, validated pydantic models out, one clear line per mistake.

`schema.py` is the experiment file (its reference page is generated from it: `reference.py`),
`sweep.py` the sweep file. A pluggable section is checked against the parameters its registered
part declares, looked up by name, so the schema imports no part itself. Imports `core` and the
device tiers (`devices`).
"""

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core", "devices")
