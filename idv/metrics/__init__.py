"""Biometric metrics: pure functions over score arrays, and torchmetrics wrappers."""
