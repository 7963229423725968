"""fundiff: diffusion and flow-matching image generation, written to be read.

    import torch, fundiff
    pipe = fundiff.AnagramPipeline.from_pretrained("mnist")
    out = pipe(prompt=["6", "9"], views=["identity", "flip"], generator=torch.Generator().manual_seed(0))

Layers, top to bottom (imports point down; docs/layout.md, enforced by tests/test_layers.py):

- ``fundiff.cli``, ``fundiff.commands``, ``fundiff.report``, ``fundiff.web``, ``fundiff.studies``  front-ends
- ``fundiff.pipelines`` the Python API: Text2Image, SDEdit, Inpaint, Anagram, Hybrid, Upsample, Sample
- ``fundiff.backends``  the models behind the denoiser interface (embedded MNIST flow model, DeepFloyd IF)
- ``fundiff.generate``, ``fundiff.evaluate``, ``fundiff.metrics``  Part B sampling and measured quality
- ``fundiff.objectives``, ``fundiff.training``  seeded, resumable training with atomic safetensors checkpoints
- ``fundiff.engine``, ``fundiff.samplers``, ``fundiff.paths``, ``fundiff.nn``, ``fundiff.data``  the core math, the UNet, MNIST
"""

__version__ = "0.1.0"

# The pipelines, loaded on first use so that ``import fundiff`` (and the CLI's start) stays light.
_PIPELINES = ("AnagramPipeline", "DiffusionPipeline", "HybridPipeline", "InpaintPipeline", "PipelineOutput",
              "SDEditPipeline", "SamplePipeline", "Text2ImagePipeline", "UpsamplePipeline")
__all__ = ["FundiffError", "MAX_IMAGE_PIXELS", "__version__", "pixel_limit", *_PIPELINES]


def __getattr__(name: str):
    if name in _PIPELINES:
        from fundiff import pipelines

        return getattr(pipelines, name)
    if name == "FundiffError":
        from fundiff.errors import FundiffError

        return FundiffError
    if name in ("MAX_IMAGE_PIXELS", "pixel_limit"):   # the cap on input images (checked before decoding)
        from fundiff.engine import pixel_limit

        return getattr(pixel_limit, name)
    raise AttributeError(f"module 'fundiff' has no attribute {name!r}")
