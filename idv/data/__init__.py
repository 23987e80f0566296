"""Data layer: manifest, splits, image reading, datasets, augmentation, datamodule."""
