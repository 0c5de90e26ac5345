"""Training methods: each a file with a registered Strategy subclass."""

from edgeweave.platform.plugins import import_all
from edgeweave.platform.strategies.base import STRATEGIES, Job, Strategy

import_all(__name__, __path__)

__all__ = ["STRATEGIES", "Job", "Strategy"]
