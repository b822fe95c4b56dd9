"""Image backbone: a timm model with ``features_only=True``; channels come from ``feature_info``.

Pretrained hub weights cannot be fetched by occkit; pass a local safetensors file (a timm
``state_dict`` of the same architecture, e.g. exported once from ``timm.create_model(name,
pretrained=True)``) or train from random initialisation.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

from occkit.shapes import check_shape


class Backbone(nn.Module):
    """A timm feature extractor returning the levels whose stride is at least ``min_stride``.

    Attributes:
        channels: channels of each returned level (from timm's ``feature_info``).
        strides: stride (reduction) of each returned level, increasing.
    """

    def __init__(self, name: str, min_stride: int, weights: str | None = None) -> None:
        super().__init__()
        import timm  # here, not at import: timm brings torchvision and torch._dynamo (2 s), which a
        # process that reads configs and builds no network (the ablate runner, eval) never needs

        try:
            body = timm.create_model(name, pretrained=False, features_only=True)
        except RuntimeError as e:  # timm raises RuntimeError for unknown names
            raise ValueError(f"backbone: unknown timm model {name!r} ({e})") from e
        reductions = body.feature_info.reduction()
        keep = [i for i, r in enumerate(reductions) if r >= min_stride]
        if not keep or reductions[keep[0]] != min_stride:
            raise ValueError(f"backbone {name!r}: no feature level at stride {min_stride} (levels at {reductions})")
        self.body = body
        self.keep = keep
        self.channels: list[int] = [body.feature_info.channels()[i] for i in keep]
        self.strides: list[int] = [reductions[i] for i in keep]
        if weights is not None:
            load_backbone_weights(self.body, weights, name)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x: (B, 3, H, W)`` normalised images -> one ``(B, C_l, H/s_l, W/s_l)`` per kept level."""
        check_shape(x, "B 3 H W", name="backbone input")
        feats = self.body(x)
        return [feats[i] for i in self.keep]


def load_backbone_weights(body: nn.Module, path: str | Path, name: str | None = None) -> None:
    """Load a timm ``state_dict`` from a safetensors file into ``body`` (a features_only model).

    Keys of the classifier head (absent from a features_only model) are ignored; any missing
    backbone key is an error naming the file. A file that records the timm model it was trained
    for (occkit's pretrained backbones: metadata ``backbone``) is refused for another ``name``.
    Once loaded, one line on stderr (rank 0 only) says what took: the file, the tensors loaded of
    the backbone's, and the file's tensors left unused (:func:`loaded_line`).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone weights not found")
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path}: cannot read safetensors ({type(e).__name__}: {e})") from e
    if name is not None:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("backbone") and meta["backbone"] != name:
            raise ValueError(f"{path}: weights of a {meta['backbone']!r} backbone, but model.backbone is {name!r}")
    own = body.state_dict()
    # features_only wrappers may rename modules with '_' for '.'; match on both spellings.
    remapped = {}
    for k, v in state.items():
        if k in own:
            remapped[k] = v
        elif k.replace(".", "_", 1) in own:
            remapped[k.replace(".", "_", 1)] = v
    missing = sorted(set(own) - set(remapped))
    if missing:
        raise ValueError(f"{path}: {len(missing)} backbone weights missing, e.g. {missing[:3]}")
    for k, v in remapped.items():
        if v.shape != own[k].shape:
            raise ValueError(f"{path}: weight {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    body.load_state_dict(remapped, strict=True)
    if os.environ.get("RANK", "0") == "0":  # one line per run, not one per process
        unused = sorted(set(state) - {k for k in state if k in own or k.replace(".", "_", 1) in own})
        print(loaded_line(path, name, len(remapped), len(own), unused), file=sys.stderr, flush=True)


def loaded_line(path: Path, name: str | None, loaded: int, total: int, unused: list[str]) -> str:
    """What :func:`load_backbone_weights` took from ``path``, in one line: ``loaded`` of the backbone's
    ``total`` tensors (so ``total - loaded`` missing) and the file's tensors it did not use (a few named)."""
    what = f"the {name} backbone's" if name else "the backbone's"
    line = f"model.backbone_weights: loaded {loaded} of {what} {total} tensors from {path} ({total - loaded} missing"
    if unused:
        line += f"; {len(unused)} of the file's tensors unused: {', '.join(unused[:3])}" + (
            ", ..." if len(unused) > 3 else ""
        )
    return line + ")"
