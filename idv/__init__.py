"""idv: training, evaluation and export of the identity-verification models.

Importing the package first sets the offline switches, so that every entry point, test and
DVC stage runs without the network whatever the user's environment says.
"""

import os

_OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",  # timm would otherwise hang ~46 s on a hub lookup
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations checks PyPI at every import
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "DVC_NO_ANALYTICS": "1",
}
for _key, _value in _OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_key, _value)

__version__ = "0.1.0"
