"""Synth-time helpers: configuration, bundling, image sources, cdk-nag, logical ids, log groups, the app."""
