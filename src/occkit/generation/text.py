"""Text conditioning: token-level hidden states of the priors layer's text encoder.

Cross-attention reads a sequence: the MiniLM transformer's last hidden states, one 384-d vector
per word piece (``[CLS]`` first), padded to ``max_tokens`` with a mask, rather than the one pooled
sentence vector (a sequence of one would give every query the same value vector; the tokens let
the image attend to "trees" and "trucks" separately). The transformer stays frozen and is no part
of any checkpoint: it comes from its package (``occkit.priors.text.load_text_encoder``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class TextConditioner:
    """Frozen text encoder -> ``(K, T, D)`` token states and ``(K, T)`` bool mask (True = token).

    Args:
        spec: a text-encoder spec of :func:`occkit.priors.text.load_text_encoder` (a
            sentence-transformers model: ``minilm`` or ``st:PATH``).
        max_tokens: T, tokens kept (longer texts are cut).
    """

    def __init__(self, spec: str = "minilm", max_tokens: int = 48) -> None:
        from occkit.priors.text import load_text_encoder

        enc = load_text_encoder(spec)
        model = getattr(enc, "model", None)
        if model is None or not hasattr(model, "tokenize"):
            raise ValueError(
                f"text encoder {spec!r}: token states need a sentence-transformers model (minilm or st:PATH)"
            )
        self.spec, self.model, self.max_tokens = spec, model, max_tokens
        self.transformer = model[0].auto_model.eval()
        self.dim = int(self.transformer.config.hidden_size)
        self._memo: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def encode(self, texts: Sequence[str], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``states (K, max_tokens, D)`` float32 and ``mask (K, max_tokens)`` bool on ``device``;
        the empty string gives all-zero states with only the first position unmasked (the
        unconditional input of classifier-free guidance)."""
        out_s, out_m = [], []
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"TextConditioner.encode: expected strings, got {type(t).__name__}")
            if t not in self._memo:
                self._memo[t] = self._encode_one(t)
            s, m = self._memo[t]
            out_s.append(s)
            out_m.append(m)
        return torch.stack(out_s).to(device), torch.stack(out_m).to(device)

    def _encode_one(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.max_tokens
        states, mask = torch.zeros(T, self.dim), torch.zeros(T, dtype=torch.bool)
        if not text:
            mask[0] = True
            return states, mask
        tok = getattr(self.model, "preprocess", None) or self.model.tokenize  # preprocess: sentence-transformers >= 5
        feats = tok([text])
        ids = feats["input_ids"][:, :T]
        att = feats["attention_mask"][:, :T]
        dev = next(self.transformer.parameters()).device
        h = (
            self.transformer(input_ids=ids.to(dev), attention_mask=att.to(dev)).last_hidden_state[0].float().cpu()
        )  # (T', D)
        states[: h.shape[0]] = h
        mask[: h.shape[0]] = att[0].bool()
        return states, mask
