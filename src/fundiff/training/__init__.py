"""Training infrastructure shared by every trainer: seeded, resumable, atomically checkpointed."""

from fundiff.training.checkpoint import load_model, save_model
from fundiff.training.device import resolve_device
from fundiff.training.trainer import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train", "load_model", "save_model", "resolve_device"]
