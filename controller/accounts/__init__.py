"""Accounts: users and tokens, access rules, tenancy (quotas, images), SSH keys."""
