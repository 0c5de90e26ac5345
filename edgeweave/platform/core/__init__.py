"""The ground floor: what every stage uses and nothing of a run's own.

Errors users see (`UserError`), the name-to-class registries and the table of built-in parts
(`registries.py`: a new built-in part is one file plus one line there), plugin loading, seeded
random streams, NumPy-to-torch views, input paths. Imports nothing else of the platform.
"""

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ()
