"""Simulated devices: tiers of different speed, resources that shift with virtual time, the clock."""
