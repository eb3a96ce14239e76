"""Constructs of the platform, one per file, each named after its class."""
