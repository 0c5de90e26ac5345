"""Everything that runs without Ray: config, data, models, policies, training, aggregation."""
