"""Ray Tune: maps sweeps onto runs (search spaces, the trainable, the sweep runner)."""
