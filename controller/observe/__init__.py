"""Observing apps: metrics, the resource sampler, log drains, app logs."""
