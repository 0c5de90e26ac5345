"""FedAvg (McMahan et al., AISTATS 2017): sampled devices train the full model; sample-weighted mean."""

from __future__ import annotations

from edgeweave.platform.methods.base import STRATEGIES, Method, Rules

# Every sampled device trains the whole model locally; the server averages by samples held.
STRATEGIES.add("fedavg", Method(Rules))
