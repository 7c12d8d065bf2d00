"""Pipelines: the use cases that carry one codebase through stages (couplings, promotion,
review apps). They compose the apps' and the add-ons' use cases, so they stand above both."""
