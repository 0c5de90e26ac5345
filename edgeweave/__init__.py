"""edgeweave: collaborative edge training experiments on Ray."""

__version__ = "0.1.0"
