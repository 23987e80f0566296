"""LightningModules: the training logic of each kind of task, on plain models."""
