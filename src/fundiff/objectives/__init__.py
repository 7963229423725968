"""Training objectives: what a model is asked to predict from what (one module per objective)."""

from fundiff.objectives.denoise import DenoiseObjective

__all__ = ["DenoiseObjective"]
