"""Thin Hydra entry points; nothing imports this package."""
