"""Generators of the embedded synthetic corpora (deterministic given a seed)."""
