"""Runtime mechanisms: rollout, reconcile, health checks, locks, sweeps, cron, one-offs,
the git repositories on disk."""
