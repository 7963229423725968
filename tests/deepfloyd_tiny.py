"""Tiny random DeepFloyd-IF-like components built from configs with diffusers' real classes.

Stage I: a UNet2DConditionModel shaped like IF's (3 -> 6 channels, text addition embedding, simple
cross-attention blocks) and IF stage I's scheduler config (learned_range variance, squaredcos_cap_v2,
dynamic thresholding 0.95 / 1.5).  Stage II: a 6 -> 6 channel UNet with the noise level as class
embedding, plus the image-noising scheduler.  ``save_pipeline`` writes them as a diffusers pipeline
folder (with a tiny T5 encoder and a word-level tokenizer) so loading code runs against real files.
"""

from __future__ import annotations

from pathlib import Path

import torch

EMBED_DIM = 32
TOKENS = 77


def stage1_unet(sample_size: int = 16):
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnAddedKVProcessor

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=sample_size, layers_per_block=1, block_out_channels=[32, 64],
        down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
        in_channels=3, out_channels=6, cross_attention_dim=EMBED_DIM, encoder_hid_dim=EMBED_DIM,
        attention_head_dim=8, addition_embed_type="text", addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift", act_fn="gelu",
    )
    unet.set_attn_processor(AttnAddedKVProcessor())
    return unet.eval()


def stage2_unet(sample_size: int = 32):
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnAddedKVProcessor

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=sample_size, layers_per_block=[1, 2], block_out_channels=[32, 64],
        down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
        in_channels=6, out_channels=6, cross_attention_dim=EMBED_DIM, encoder_hid_dim=EMBED_DIM,
        attention_head_dim=8, addition_embed_type="text", addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift", act_fn="gelu",
        class_embed_type="timestep", mid_block_scale_factor=1.414, time_embedding_act_fn="gelu",
        time_embedding_dim=32,
    )
    unet.set_attn_processor(AttnAddedKVProcessor())
    return unet.eval()


def stage1_scheduler(sample_max_value: float = 1.5):
    """IF stage I's scheduler config (diffusers scripts/convert_if.py)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", variance_type="learned_range",
        prediction_type="epsilon", thresholding=True, dynamic_thresholding_ratio=0.95,
        sample_max_value=sample_max_value,
    )


def image_noising_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")


def random_embeds(prompts, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {p: torch.randn(1, TOKENS, EMBED_DIM, generator=g) for p in prompts}


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "a an the of photo high quality rocket ship oil painting man dog skull waterfalls lithograph".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=TOKENS)


def text_encoder():
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(vocab_size=32, d_model=EMBED_DIM, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8)
    return T5EncoderModel(config).eval()


def save_pipeline(folder: Path, stage: int = 1, with_text_encoder: bool = True) -> Path:
    """A diffusers pipeline folder like DeepFloyd/IF-I-XL-v1.0 (stage 1) or IF-II-L-v1.0 (stage 2)."""
    from diffusers import IFPipeline, IFSuperResolutionPipeline

    common = dict(text_encoder=text_encoder() if with_text_encoder else None,
                  tokenizer=tokenizer() if with_text_encoder else None,
                  safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False)
    if stage == 1:
        pipe = IFPipeline(unet=stage1_unet(), scheduler=stage1_scheduler(), **common)
    else:
        pipe = IFSuperResolutionPipeline(unet=stage2_unet(), scheduler=stage1_scheduler(1.0),
                                         image_noising_scheduler=image_noising_scheduler(), **common)
    pipe.save_pretrained(folder)
    return folder
