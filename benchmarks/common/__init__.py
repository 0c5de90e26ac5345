"""What the benchmark scripts share: seeded runs kept as small JSON summaries, and their statistics."""
