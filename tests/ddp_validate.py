"""Run by test_ddp.py in a subprocess: validate one checkpoint under a trainer config and
write the logged validation metrics as JSON. argv: data_dir ckpt trainer out_json"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.utils import instantiate

from idv.tasks.fit import build_task
from tests.conftest import compose

if __name__ == "__main__":
    data_dir, ckpt, trainer_name, out = sys.argv[1:5]
    cfg = compose(
        "train",
        [
            "debug=fast",
            f"paths.data_dir={data_dir}",
            f"trainer={trainer_name}",
            "trainer.precision=32-true",
            "trainer.limit_val_batches=1.0",
        ],
        Path(out).parent,
    )
    trainer = instantiate(
        cfg.trainer, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    results = trainer.validate(build_task(cfg), datamodule=instantiate(cfg.data), ckpt_path=ckpt)
    if trainer.is_global_zero:
        Path(out).write_text(json.dumps({**results[0], "world_size": trainer.world_size}))
