"""Ray actors: long-lived device workers and the driver. They only move work and state."""
