"""The `dockyard` command-line client: a separate package that talks to the platform over
HTTP only (it imports nothing from the server packages)."""
