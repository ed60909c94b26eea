"""Training: on-the-fly remixes of the corpus stems, one loop for every network, DDP.

``data.py`` (remixed training chunks with their cached score masks, fixed validation clips),
``loop.py`` (:func:`train_model`: loss, optimiser, schedule, validation, checkpoints, exact
resume; :func:`train_all`, :func:`load_trained`), ``distributed.py`` (torchrun ranks). Used by
02_train.ipynb and ``guitarsep train``.
"""
from guitarsep.training.loop import (TrainState, epochs_for, load_trained, read_log, run_dir,
                                     steps_per_epoch, train_all, train_model)

__all__ = ["train_model", "train_all", "load_trained", "read_log", "run_dir", "epochs_for",
           "steps_per_epoch", "TrainState"]
