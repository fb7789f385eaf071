"""Training: the one path every model rides (:mod:`gen_keras.training.trainer`), its callbacks,
guards and checkpoints."""
from gen_keras.training.trainer import TrainResult, checkpoint_dir, evaluate_at_end, train

__all__ = ["TrainResult", "checkpoint_dir", "evaluate_at_end", "train"]
