"""fundiff's pipelines: one per job of the study, in diffusers' style.

    pipe = Text2ImagePipeline.from_pretrained("mnist")
    out = pipe(prompt="7", num_images_per_prompt=4, generator=torch.Generator().manual_seed(0))
    out.images[0].save("seven.png"); out.record   # what ran

Every front-end (the CLI, the web UI, the report, the benchmarks) calls these.
"""

from fundiff.pipelines.base import DiffusionPipeline, PipelineOutput, load_denoiser
from fundiff.pipelines.editing import InpaintPipeline, SDEditPipeline
from fundiff.pipelines.illusions import AnagramPipeline, HybridPipeline
from fundiff.pipelines.sample import SamplePipeline
from fundiff.pipelines.text2image import Text2ImagePipeline
from fundiff.pipelines.upsample import UpsamplePipeline

__all__ = ["AnagramPipeline", "DiffusionPipeline", "HybridPipeline", "InpaintPipeline", "PipelineOutput",
           "SDEditPipeline", "SamplePipeline", "Text2ImagePipeline", "UpsamplePipeline", "load_denoiser"]
