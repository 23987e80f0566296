"""idv: training, evaluation and export of the identity-verification models.

Importing the package first sets the offline switches, so that every entry point, test and
DVC stage runs without the network whatever the user's environment says: the values are
forced, not defaulted (a user's NO_ALBUMENTATIONS_UPDATE=0 would make albumentations reach
PyPI at import). The one explicit opt-in is IDV_ONLINE=1, which leaves the environment as it
is (a hub download, an online wandb run).
"""

import os

_OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",  # timm would otherwise hang ~46 s on a hub lookup
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations checks PyPI at every import
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "DVC_NO_ANALYTICS": "1",
}
# Values at least as offline as ours, kept as the user set them.
_AS_OFFLINE = {"WANDB_MODE": {"offline", "disabled"}}
ONLINE_OPT_IN = "IDV_ONLINE"
if os.environ.get(ONLINE_OPT_IN) != "1":
    for _key, _value in _OFFLINE_DEFAULTS.items():
        if os.environ.get(_key) not in _AS_OFFLINE.get(_key, ()):
            os.environ[_key] = _value

__version__ = "0.1.0"
