"""Neural networks: the UNet of the study (reference section 2.0) and its building blocks."""

from fundiff.nn.unet import ClassConditionalUNet, TimeConditionalUNet, UnconditionalUNet, build_unet

__all__ = ["UnconditionalUNet", "TimeConditionalUNet", "ClassConditionalUNet", "build_unet"]
