"""Randomly initialised transformers CLIP models and tokenizers, built with no download.

Used by the tests (a tiny config), the benchmark (ViT-B/16 sizes: the same arithmetic as
openai/clip-vit-base-patch16, so timings transfer) and the offline demo table. The tokenizer is a
real CLIPTokenizer whose byte-level BPE vocabulary and merges are learned here from the concept
words themselves, so word lengths in tokens are realistic (frequent words become one token, as in
CLIP's own 49,408-token vocabulary). Nothing built here knows anything about images: its features
are meaningless, which is why every table built with it says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dissection_data.clip_encoder import TransformersClip, resolve_device

RANDOM_CLIP_SEED = 0


@dataclass(frozen=True)
class ClipSizes:
    name: str
    text_hidden: int
    text_intermediate: int
    text_layers: int
    text_heads: int
    vocab_size: int
    vision_hidden: int
    vision_intermediate: int
    vision_layers: int
    vision_heads: int
    image_size: int
    patch_size: int
    projection_dim: int
    max_tokens: int = 77


VIT_B16 = ClipSizes("vit-b16", 512, 2048, 12, 8, 49408, 768, 3072, 12, 12, 224, 16, 512)
TINY = ClipSizes("tiny", 32, 64, 2, 2, 1000, 32, 64, 2, 2, 32, 8, 16)


def offline_clip_tokenizer(corpus: Sequence[str], vocab_size: int):
    """A CLIPTokenizer with a byte-level BPE vocabulary trained on `corpus` (at most `vocab_size` tokens)."""
    from tokenizers import pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    blank = CLIPTokenizer()  # empty vocabulary, but CLIP's normaliser and pre-tokeniser
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    backend = blank.backend_tokenizer
    backend.train_from_iterator(list(corpus), trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return CLIPTokenizer(vocab=model["vocab"], merges=merges)  # type: ignore[arg-type]  # pairs work; the stub says str


def random_clip_model(sizes: ClipSizes, vocab_size: int, seed: int = RANDOM_CLIP_SEED):
    """An untrained CLIPModel of the given sizes (eval mode, deterministic for a seed)."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config={
            "hidden_size": sizes.text_hidden,
            "intermediate_size": sizes.text_intermediate,
            "num_hidden_layers": sizes.text_layers,
            "num_attention_heads": sizes.text_heads,
            "vocab_size": vocab_size,
            "max_position_embeddings": sizes.max_tokens,
            "projection_dim": sizes.projection_dim,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": sizes.vision_hidden,
            "intermediate_size": sizes.vision_intermediate,
            "num_hidden_layers": sizes.vision_layers,
            "num_attention_heads": sizes.vision_heads,
            "image_size": sizes.image_size,
            "patch_size": sizes.patch_size,
            "projection_dim": sizes.projection_dim,
        },
        projection_dim=sizes.projection_dim,
    )
    torch.manual_seed(seed)
    return CLIPModel(config).eval()


def clip_image_processor(image_size: int):
    """CLIP's preprocessing (shortest side resize, bicubic, centre crop, CLIP mean/std) at `image_size`."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


def random_clip_encoder(
    sizes: ClipSizes, corpus: Sequence[str], device: str | torch.device | None = "auto", seed: int = RANDOM_CLIP_SEED
) -> TransformersClip:
    """The full offline stand-in: random CLIPModel + trained-here tokenizer + CLIP image processor."""
    tokenizer = offline_clip_tokenizer(corpus, sizes.vocab_size)
    model = random_clip_model(sizes, len(tokenizer), seed)
    model_id = f"random-clip-{sizes.name} (untrained, seed {seed}; BPE vocabulary of {len(tokenizer)} built offline)"
    return TransformersClip(
        model, tokenizer, clip_image_processor(sizes.image_size), model_id, resolve_device(device), is_random=True
    )


def save_random_clip(directory: Path, sizes: ClipSizes, corpus: Sequence[str], seed: int = RANDOM_CLIP_SEED) -> Path:
    """Write a random CLIP as a save_pretrained folder, loadable with `--clip DIRECTORY`."""
    encoder = random_clip_encoder(sizes, corpus, "cpu", seed)
    directory = Path(directory)
    encoder.model.save_pretrained(directory)
    encoder.tokenizer.save_pretrained(directory)
    encoder.image_processor.save_pretrained(directory)
    (directory / "xai_lens_random_clip.json").write_text(json.dumps({"sizes": asdict(sizes), "seed": seed}))
    return directory
