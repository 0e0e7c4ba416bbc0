"""The study's one training loop and its checkpoints."""

from taste.training.checkpoint import load_safetensors, save_safetensors_atomic
from taste.training.loop import TrainConfig, TrainResult, batch_indices, train

__all__ = ["TrainConfig", "TrainResult", "batch_indices", "train", "load_safetensors", "save_safetensors_atomic"]
