"""Platform administration: whole-platform backup and restore, cluster nodes."""
