"""Training: the one path every model rides (:mod:`gen_keras.training.trainer`), its callbacks,
guards and checkpoints, and which run a command trains (:mod:`gen_keras.training.resume`)."""
from gen_keras.training.trainer import TrainResult, checkpoint_root, evaluate_at_end, train

__all__ = ["TrainResult", "checkpoint_root", "evaluate_at_end", "train"]
