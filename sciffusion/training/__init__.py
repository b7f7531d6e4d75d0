"""Training: the loop, checkpoints, EMA, data order, learning-rate schedules, logs and sampling runs."""
from .checkpoint import CheckpointError, for_sampling, half_weights, load_checkpoint, save_checkpoint, seed_everything
from .data import Layout, StepSampler
from .ema import EMA
from .generate import SamplingOptions, decode_all, generate
from .loop import NonFiniteLossError, Trainer, TrainingLoss, TrainOptions
from .schedule import make_schedule

__all__ = [
    "CheckpointError", "EMA", "Layout", "NonFiniteLossError", "SamplingOptions", "StepSampler", "TrainOptions",
    "Trainer", "TrainingLoss", "decode_all", "for_sampling", "generate", "half_weights", "load_checkpoint", "make_schedule", "save_checkpoint", "seed_everything",
]
