"""Routing: the route table, router options, custom domains, certificates and their use cases."""
