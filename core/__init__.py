"""The ground floor every other package stands on: domain records, the exception tree,
name rules, Procfile parsing and the atomic-write helper. Pure; imports nothing of ours."""
