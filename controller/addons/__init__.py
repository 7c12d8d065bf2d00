"""Add-ons: kinds, provisioning and attachments, operations inside the services, backups, health."""
