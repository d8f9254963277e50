"""CLIP image and text features through `transformers` (not the openai `clip` package).

Features come back float32 on the CPU and L2-normalised here, whatever the transformers version
returns: 5.x `get_image_features`/`get_text_features` may hand back an output object with the
projected embedding in `.pooler_output` instead of a tensor. On a GPU the model runs in fp16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image

from explainers.errors import XaiLensError, first_line


class ClipUnavailableError(XaiLensError):
    """The CLIP model is neither cached nor downloadable."""


class ClipEncoder(Protocol):
    """What the builder needs from CLIP; tests plug in stand-ins with the same two methods."""

    model_id: str
    is_random: bool

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor: ...

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor: ...


def as_embedding(output: Any) -> torch.Tensor:
    """A tensor from get_*_features, whether it returned a tensor or an output object."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"Unexpected CLIP feature output of type {type(output).__name__}.")


def l2_normalise(features: torch.Tensor) -> torch.Tensor:
    return features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' (or None) -> CUDA when present, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise XaiLensError(f"Unknown device '{device}'; use auto, cpu, cuda or cuda:N.") from None


@dataclass
class TransformersClip:
    """A transformers CLIPModel with its tokenizer and image processor."""

    model: Any
    tokenizer: Any
    image_processor: Any
    model_id: str
    device: torch.device
    is_random: bool = False

    def __post_init__(self) -> None:
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = self.model.to(device=self.device, dtype=self.dtype).eval()
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)

    @classmethod
    def from_pretrained(cls, model_id: str, device: str | torch.device | None = "auto") -> TransformersClip:
        """Load a hub id (downloads once, then the HF cache) or a local save_pretrained folder."""
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        try:
            model = CLIPModel.from_pretrained(model_id)
            tokenizer = AutoTokenizer.from_pretrained(model_id)
            processor = CLIPImageProcessor.from_pretrained(model_id)
        except (OSError, ValueError) as exc:
            first = first_line(exc, limit=160)
            raise ClipUnavailableError(
                f"CLIP model '{model_id}' is not cached and could not be loaded ({first}). "
                "Connect once so Hugging Face can download it, or pass --clip with a local model folder."
            ) from None
        return cls(model, tokenizer, processor, model_id, resolve_device(device))

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        pixels = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        output = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
        return l2_normalise(as_embedding(output).float()).cpu()

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        # Padding to the longest text in the batch gives the same EOS embedding as CLIP's fixed 77
        # (the text transformer is causal), for a fraction of the work.
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        output = self.model.get_text_features(
            input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
        )
        return l2_normalise(as_embedding(output).float()).cpu()
