"""Training objectives: what a model is asked to predict from what (one module per objective)."""

from fundiff.objectives.ddpm import DDPMObjective
from fundiff.objectives.classify import ClassifyObjective, NoisyClassifyObjective
from fundiff.objectives.denoise import DenoiseObjective
from fundiff.objectives.distill import ShortcutDistillation
from fundiff.objectives.flow import FlowMatchingObjective

__all__ = ["ClassifyObjective", "NoisyClassifyObjective", "DenoiseObjective", "FlowMatchingObjective", "DDPMObjective", "ShortcutDistillation"]
