"""Scores -> score tables -> metrics, reports and plots (ours and vendors' alike)."""
