"""fundiff.backends.deepfloyd, what it costs: the downloads fetch exactly what loading needs, guided batches are split
to at most --max-batch images per UNet call with the same images, T5 does not stay on the accelerator."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("huggingface_hub")

from huggingface_hub.utils import filter_repo_objects  # noqa: E402

from fundiff.backends.deepfloyd import STAGE_1_REPO, STAGE_2_REPO, download_patterns  # noqa: E402

# The files of the real repositories (no download: listed on the Hugging Face file pages of DeepFloyd/IF-I-XL-v1.0's
# public copies, with sizes in GB; IF-II-L-v1.0 has the same layout with its 1.2 B-parameter UNet and an
# image_noising_scheduler/).  The .bin files are pickles; the text_encoder shards are T5-XXL's.
STAGE_1_FILES = {
    "model_index.json": 0, "config.yml": 0, "README.md": 0, ".gitattributes": 0,
    "feature_extractor/preprocessor_config.json": 0,
    "safety_checker/config.json": 0, "safety_checker/model.safetensors": 1.22, "safety_checker/model.fp16.safetensors": 0.61,
    "safety_checker/pytorch_model.bin": 1.22, "safety_checker/pytorch_model.fp16.bin": 0.61,
    "scheduler/scheduler_config.json": 0,
    "text_encoder/config.json": 0,
    "text_encoder/model-00001-of-00002.safetensors": 9.99, "text_encoder/model-00002-of-00002.safetensors": 9.06,
    "text_encoder/model.fp16-00001-of-00002.safetensors": 9.96, "text_encoder/model.fp16-00002-of-00002.safetensors": 1.58,
    "text_encoder/model.8bit.safetensors": 7.92,
    "text_encoder/model.safetensors.index.json": 0, "text_encoder/model.safetensors.index.fp16.json": 0,
    "text_encoder/pytorch_model-00001-of-00002.bin": 9.45, "text_encoder/pytorch_model-00002-of-00002.bin": 9.6,
    "text_encoder/pytorch_model.bin.index.json": 0,
    "tokenizer/special_tokens_map.json": 0, "tokenizer/spiece.model": 0.0008, "tokenizer/tokenizer_config.json": 0,
    "unet/config.json": 0, "unet/diffusion_pytorch_model.safetensors": 17.2, "unet/diffusion_pytorch_model.fp16.safetensors": 8.61,
    "unet/diffusion_pytorch_model.bin": 17.2, "unet/diffusion_pytorch_model.fp16.bin": 8.61,
    "watermarker/config.json": 0, "watermarker/diffusion_pytorch_model.safetensors": 0,
}
STAGE_2_FILES = {
    "model_index.json": 0, "feature_extractor/preprocessor_config.json": 0,
    "image_noising_scheduler/scheduler_config.json": 0, "scheduler/scheduler_config.json": 0,
    "safety_checker/config.json": 0, "safety_checker/model.safetensors": 1.22,
    "text_encoder/config.json": 0, "tokenizer/spiece.model": 0.0008, "tokenizer/tokenizer_config.json": 0,
    "unet/config.json": 0, "unet/diffusion_pytorch_model.safetensors": 4.9, "unet/diffusion_pytorch_model.fp16.safetensors": 2.45,
    "unet/diffusion_pytorch_model.bin": 4.9, "unet/diffusion_pytorch_model.fp16.bin": 2.45,
    "watermarker/config.json": 0, "watermarker/diffusion_pytorch_model.safetensors": 0,
}


def fetched(files, patterns):
    return set(filter_repo_objects(list(files), allow_patterns=patterns))   # what snapshot_download would fetch


def test_stage1_on_a_gpu_with_embeddings_fetches_the_fp16_unet_only():
    got = fetched(STAGE_1_FILES, download_patterns(STAGE_1_REPO, torch.float16))
    assert got == {"model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
                   "unet/diffusion_pytorch_model.fp16.safetensors"}
    assert sum(STAGE_1_FILES[f] for f in got) == pytest.approx(8.61)      # was 8.61 + 17.2 + every T5 file (~57 GB)


def test_stage1_with_t5_adds_the_encoder_in_the_same_precision_only():
    got = fetched(STAGE_1_FILES, download_patterns(STAGE_1_REPO, torch.float16, text_encoder=True))
    t5 = {f for f in got if f.startswith(("text_encoder/", "tokenizer/"))}
    assert t5 == {"text_encoder/config.json", "text_encoder/model.fp16-00001-of-00002.safetensors",
                  "text_encoder/model.fp16-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.fp16.json",
                  "tokenizer/special_tokens_map.json", "tokenizer/spiece.model", "tokenizer/tokenizer_config.json"}
    full = fetched(STAGE_1_FILES, download_patterns(STAGE_1_REPO, torch.float32, text_encoder=True))
    assert {"unet/diffusion_pytorch_model.safetensors", "text_encoder/model-00001-of-00002.safetensors",
            "text_encoder/model-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.json"} <= full
    assert not any(f.endswith(".bin") or ".8bit." in f or ".fp16" in f for f in full)


def test_t5_alone_skips_the_stage1_unet():
    got = fetched(STAGE_1_FILES, download_patterns(STAGE_1_REPO, torch.float16, unet=False, text_encoder=True))
    assert not any(f.startswith("unet/") for f in got) and "text_encoder/config.json" in got
    assert "scheduler/scheduler_config.json" in got                      # IFPipeline.from_pretrained reads it


def test_stage2_fetches_its_image_noising_scheduler_and_no_t5():
    got = fetched(STAGE_2_FILES, download_patterns(STAGE_2_REPO, torch.float16))
    assert got == {"model_index.json", "scheduler/scheduler_config.json", "image_noising_scheduler/scheduler_config.json",
                   "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors"}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    from deepfloyd_tiny import EMBED_DIM, TOKENS, save_pipeline
    from fundiff.backends.embeddings import PromptEmbeddings

    root = tmp_path_factory.mktemp("if")
    folder = save_pipeline(root / "IF-I-XL-v1.0", stage=1, with_text_encoder=False)
    g = torch.Generator().manual_seed(0)
    cache = PromptEmbeddings({p: torch.randn(1, TOKENS, EMBED_DIM, generator=g) for p in ("", "a cat", "a dog")})
    cache.save(root / "e.pth")
    return folder, root / "e.pth"


def test_max_batch_splits_guided_batches_with_the_same_images(stage1):
    """An anagram of 3 images x 2 views x 2 (CFG) is 12 images per step; --max-batch 5 runs them as 5 + 5 + 2."""
    import fundiff

    folder, embeds = stage1
    runs = {}
    for limit in (None, 5):
        pipe = fundiff.AnagramPipeline.from_pretrained(str(folder), embeddings=str(embeds), device="cpu", max_batch=limit)
        sizes = []
        hook = pipe.denoiser.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
        runs[limit] = pipe(prompt=["a cat", "a dog"], views=["identity", "flip"], num_images_per_prompt=3,
                           num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt").images
        hook.remove()
        assert max(sizes) == (12 if limit is None else 5) and sum(sizes) == 12 * 3
    torch.testing.assert_close(runs[5], runs[None], atol=1e-5, rtol=0)
    # the default reduction is the mean here: the balanced one needs a noise-aware classifier of these prompts
    out = pipe(prompt=["a cat", "a dog"], num_images_per_prompt=1, num_inference_steps=2, output_type="pt")
    assert out.record["reduction"] == "mean" and "balance" not in out.record and out.record["rival"] is False
    with pytest.raises(fundiff.FundiffError, match="the balanced reduction .* needs the MNIST model"):
        pipe(prompt=["a cat", "a dog"], num_images_per_prompt=1, num_inference_steps=2, reduction="balanced")


def test_the_text_encoder_leaves_the_accelerator_after_encoding(tmp_path, monkeypatch):
    """T5 is moved to the device only to encode, then back to the CPU (checked by recording its moves)."""
    from deepfloyd_tiny import save_pipeline
    from fundiff.backends.deepfloyd import text_encoder_from

    folder = save_pipeline(tmp_path / "IF-I-XL-v1.0", stage=1)
    moves = []
    original = torch.nn.Module.to

    def to(self, *args, **kwargs):
        if type(self).__name__ == "T5EncoderModel":
            moves.append(str(args[0]) if args else str(kwargs.get("device")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    encode = text_encoder_from(folder, torch.device("meta"), torch.float32)   # any non-CPU device
    with pytest.raises(Exception):
        encode(["a cat"])             # a meta tensor cannot be computed; the point is where T5 went and ends
    assert moves[-2:] == ["meta", "cpu"]
