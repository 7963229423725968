"""Neural networks: the study's UNet (reference section 2.0), its blocks, and the model registry."""

from fundiff.nn.registry import MODEL_KINDS, build_model, register
from fundiff.nn.classifier import MnistClassifier
from fundiff.nn.noisy_classifier import NoisyMnistClassifier
from fundiff.nn.unet import ClassConditionalUNet, TimeConditionalUNet, UnconditionalUNet
from fundiff.nn.shortcut import ShortcutUNet

__all__ = ["UnconditionalUNet", "TimeConditionalUNet", "ClassConditionalUNet", "ShortcutUNet", "build_model", "register", "MODEL_KINDS", "MnistClassifier", "NoisyMnistClassifier"]
