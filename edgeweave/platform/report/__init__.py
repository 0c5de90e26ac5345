"""After a run: comparing run directories, FLOP savings, per-width scores, sweep results.

`edgeweave report` reads finished runs (`report.py`, `savings.py`), scores a global model at
each width of the nested family (`widths.py`), and summarises a sweep's trials
(`sweep_results.py`); a figure comparing runs or trials goes here. Imports the stages up to
`run`.
"""

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core", "config", "data", "partition", "devices", "models", "train", "methods", "run")
