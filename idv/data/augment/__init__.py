"""Augmentation: albumentations pipelines from config and IDV attack simulators."""
