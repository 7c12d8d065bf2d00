"""Apps: lifecycle, deploys, releases, config, processes, app.json, crash-loop rollback."""
