"""Real foundation models as priors, from local folders through ``transformers`` (``hf:ROOT``).

``build_prior("hf:ROOT")`` builds :class:`HFPrior`. ``ROOT`` is a local folder; each subfolder
that exists is one model saved with ``save_pretrained`` (the model *and* its processor or
tokenizer, in the same folder), and gives one kind of prior::

    ROOT/
      sam/        SamModel + SamProcessor                        -> segments (and masks for semantics)
      detector/   Grounding DINO or OWLv2 (or OWL-ViT) + its processor
                  (AutoModelForZeroShotObjectDetection)          -> semantics
      depth/      a *metric* depth model + its image processor
                  (AutoModelForDepthEstimation: Depth Anything metric, ZoeDepth; DPT with
                  ``assume_metric_depth=True``)                  -> depth
      clip/       CLIPModel + CLIPProcessor (tokenizer included) -> features (MaskCLIP) and the
                                                                    text encoder (CLIP's text tower)

``kinds`` are those the subfolders present allow (``semantics`` needs ``detector/``; ``sam/``
makes its masks, otherwise a detected box is filled as a rectangle). A folder must hold
``config.json``, safetensors weights (``model.safetensors`` or a sharded index: pickled
``pytorch_model.bin`` files are refused, re-save them with ``save_pretrained``) and a processor
config (``preprocessor_config.json`` or ``processor_config.json``); otherwise the error names the
folder and what is missing. To fill ROOT on a machine with network access::

    SamModel.from_pretrained("facebook/sam-vit-base").save_pretrained("ROOT/sam")
    SamProcessor.from_pretrained("facebook/sam-vit-base").save_pretrained("ROOT/sam")  # and so on

Nothing is ever downloaded: every load passes ``local_files_only=True`` and the process is put in
Hugging Face's offline mode (:func:`occkit.priors.text.offline_hf`).

What each kind is (all on the CPU in the returned :class:`~occkit.priors.base.Priors`):

- **segments** (SAM's automatic mask generation, written out here): a regular grid of
  ``points_per_side**2`` point prompts, ``points_batch`` at a time, three masks per point; keep
  masks whose predicted IoU exceeds ``pred_iou_thresh`` and whose stability score (IoU of the mask
  logits thresholded at ``+1`` and ``-1``) exceeds ``stability_thresh``; remove duplicates by box
  NMS (``torchvision.ops.nms``, IoU ``mask_nms_iou``, ranked by predicted IoU); all of this on
  SAM's low-resolution (256 px) masks. Kept masks are painted into the image largest first, so
  smaller ones win; ids are 1..K in painting order, 0 = no mask.
- **semantics** (Grounded-SAM as OccNeRF prompted it, docs/methods.md §2): the detector runs once per
  caption group of :data:`CAPTION_GROUPS`; a box is kept when its best token (query) probability
  exceeds ``box_threshold`` and its best prompt name's probability exceeds ``text_threshold``
  (0.20 both). A box's name is the prompt name whose tokens it scores highest (the span of the
  name in the caption, for Grounding DINO; the query, for OWL models); :data:`PROMPT_CLASSES`
  maps names to :data:`~occkit.priors.base.PRIOR_CLASSES` (a frame of another class table, NYUv2's
  indoors, is asked that table's prompts: :mod:`occkit.priors.classes`). SAM turns each box into a mask (the
  box is filled when ``sam/`` is absent); per pixel the class of the highest-scoring mask wins;
  ``confidence`` is that score; pixels of no mask are UNKNOWN with confidence 0. OWL models score
  each query independently, so their prompt names are asked in one pass (same result as five).
- **depth**: the model's prediction, resized bilinearly to the image, in metres (z-depth).
  Relative depth (Depth Anything's default ``depth_estimation_type="relative"``, DPT/MiDaS) is
  inverse depth up to an unknown scale and shift, not metres: such a model is refused unless
  ``assume_metric_depth=True`` asserts that this checkpoint predicts metres. The intrinsics are
  not used: a metric model's scale is right only near the focal lengths it was trained with
  (Metric3D's canonical-camera correction is not applied here).
- **features** (MaskCLIP on CLIP's vision tower, docs/methods.md §4): see :func:`maskclip_tokens`;
  the patch tokens are sampled bilinearly at the centre of each cell of the ``feature_stride``
  grid (``ceil(H/s) x ceil(W/s)``) and L2-normalised. The text encoder (:class:`ClipText`) is the
  same checkpoint's text tower, so features and text share CLIP's space.

Preprocessing: SAM and CLIP inputs are resized and normalised here in torch (bilinear with
antialiasing, the processor's mean and std): SAM's longest side to its input size then zero
padding to a square, as its processor does; CLIP's shortest side to ``clip_size`` (default its
training size) keeping the aspect ratio, without the processor's centre crop, so that every pixel
gets a feature. Detector and depth inputs go through their own processors (each family resizes
and pads in its own way), given the float images with ``do_rescale=False``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from occkit.priors.base import (
    KINDS,
    PRIOR_CLASSES,  # noqa: F401  (named in docstrings; PROMPT_CLASSES gives its names)
    UNKNOWN,
    PriorFrame,
    Priors,
    check_kinds,
    memo_encode,
    offline_hf,
    quiet_hf_progress,
)
from occkit.priors.classes import DEFAULT_PRIORS, PriorClasses

#: The subfolder of ROOT that each model lives in.
SUBFOLDERS: dict[str, str] = {"sam": "sam", "detector": "detector", "depth": "depth", "clip": "clip"}

#: Grounded-SAM's caption groups as OccNeRF used them (docs/methods.md §2); one detector pass per group.
#: The driving world's (:data:`~occkit.priors.classes.DEFAULT_PRIORS`); a frame of another class table
#: is asked its table's groups (:attr:`~occkit.priors.classes.PriorClasses.caption_groups`).
CAPTION_GROUPS: tuple[tuple[str, ...], ...] = DEFAULT_PRIORS.caption_groups

#: Prompt name -> prior class name (:data:`PRIOR_CLASSES`). Riders go with their vehicle's class
#: (nuScenes annotates a cycle with its rider as one object) [unsure which OccNeRF took].
PROMPT_CLASSES: dict[str, str] = dict(DEFAULT_PRIORS.prompts)

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PROCESSOR = ("preprocessor_config.json", "processor_config.json")
_TOKENIZER = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model")


# --------------------------------------------------------------------------------- loading
def check_model_dir(path: Path, what: str, processor: bool = True, tokenizer: bool = False) -> Path:
    """Raise ``FileNotFoundError`` naming ``path`` unless it holds a saved model: ``config.json``,
    safetensors weights, with ``processor`` a processor config, with ``tokenizer`` tokenizer files
    (without them ``AutoTokenizer`` would build an empty vocabulary silently); ``what`` says what
    the folder is for."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder ({what})")
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / w).is_file() for w in _WEIGHTS):
        pickled = [p.name for p in path.glob("pytorch_model*.bin")]
        hint = f"; found {pickled[0]}, which is a pickle: re-save with save_pretrained" if pickled else ""
        missing.append(f"weights ({' or '.join(_WEIGHTS)}{hint})")
    if processor and not any((path / p).is_file() for p in _PROCESSOR):
        missing.append(f"processor ({' or '.join(_PROCESSOR)})")
    if tokenizer and not any((path / t).is_file() for t in _TOKENIZER):
        missing.append(f"tokenizer ({' or '.join(_TOKENIZER)})")
    if missing:
        raise FileNotFoundError(f"{path}: incomplete saved model for {what}: missing {', '.join(missing)}")
    return path


def _load(auto_cls: Any, path: Path, device: torch.device) -> Any:
    """A model from a checked folder, frozen, in eval mode, on ``device``.

    Says in one line on stderr what loads from where (a local folder: nothing is downloaded),
    instead of ``transformers``' bare "Loading weights: 100% 103/103" bar, which is silenced here."""
    import sys

    print(
        f"priors: loading {auto_cls.__name__} weights from {path} (a local folder; nothing is downloaded)",
        file=sys.stderr,
        flush=True,
    )
    with quiet_hf_progress():
        model = auto_cls.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    return model.eval().requires_grad_(False).to(device)


class _LocalModel:
    """A frozen ``transformers`` model from a checked local folder (:func:`check_model_dir`),
    on ``device``, run ``options["batch_size"]`` images a call.

    The models' settings are :attr:`HFPrior.options`, declared (with their defaults) once, in
    :class:`HFPrior`'s signature; each model reads the ones it uses from there.

    Args:
        path: the folder; device: where the model runs; options: :attr:`HFPrior.options`.
        what: what the folder is for (in error messages); auto_cls: the ``transformers`` class
        that loads it; tokenizer: the folder must hold tokenizer files too.
    """

    def __init__(
        self,
        path: Path,
        device: torch.device,
        options: Mapping[str, Any],
        what: str,
        auto_cls: Any,
        tokenizer: bool = False,
    ) -> None:
        self.path = check_model_dir(path, what, tokenizer=tokenizer)
        self._check_config(self.path)
        self.device = device
        self.model = _load(auto_cls, self.path, device)
        self.batch_size = options["batch_size"]

    def _check_config(self, path: Path) -> None:
        """Refuse a folder whose ``config.json`` does not suit, before the weights are read."""


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C, h, w)`` bilinear, antialiased when shrinking."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def _normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> ``(images - mean) / std`` per channel."""
    m = torch.tensor(list(mean), dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m) / s


def _sample_at_pixels(maps: torch.Tensor, size: tuple[int, int], valid: tuple[float, float]) -> torch.Tensor:
    """Sample maps at the centre of every image pixel (bilinear).

    Args:
        maps: ``(C, h, w)`` low-resolution maps whose top-left ``valid = (fh, fw)`` fraction
            covers the image (the rest is padding).
        size: ``(H, W)`` of the image.

    Returns:
        ``(C, H, W)``.
    """
    H, W = size
    dev, dt = maps.device, maps.dtype
    gy = ((torch.arange(H, device=dev, dtype=dt) + 0.5) / H * valid[0]) * 2 - 1
    gx = ((torch.arange(W, device=dev, dtype=dt) + 0.5) / W * valid[1]) * 2 - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]  # (1, H, W, 2) as (x, y)
    return F.grid_sample(maps[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


# --------------------------------------------------------------------------------- SAM
class SamMasks(_LocalModel):
    """SAM (``SamModel``): image embeddings, automatic masks from a point grid, masks from boxes.

    Args:
        path: folder of a saved ``SamModel`` and ``SamProcessor``.
        device: where the model runs.
        options: :attr:`HFPrior.options`, of which: ``batch_size``, images per vision-encoder
            call; ``points_per_side``, the automatic grid has ``points_per_side**2`` point prompts;
            ``points_batch``, point (or box) prompts per mask-decoder call; ``pred_iou_thresh``,
            keep masks whose predicted IoU exceeds this; ``stability_thresh``, keep masks whose
            stability score exceeds this; ``mask_nms_iou``, box IoU above which the lower-ranked
            of two masks is a duplicate.
        stability_offset: the logit offset of the stability score.
    """

    def __init__(
        self, path: Path, device: torch.device, options: Mapping[str, Any], stability_offset: float = 1.0
    ) -> None:
        from transformers import AutoProcessor, SamModel

        super().__init__(path, device, options, "SAM (segments)", SamModel)
        ip = AutoProcessor.from_pretrained(str(path), local_files_only=True).image_processor
        self.mean, self.std = list(ip.image_mean), list(ip.image_std)
        self.input_size = int(self.model.config.prompt_encoder_config.image_size)  # S: square input side (1024)
        self.points_per_side, self.points_batch = options["points_per_side"], options["points_batch"]
        self.pred_iou_thresh, self.stability_thresh = options["pred_iou_thresh"], options["stability_thresh"]
        self.stability_offset, self.mask_nms_iou = stability_offset, options["mask_nms_iou"]

    def resized_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(h', w')``: the image resized so that its longest side is the input size S."""
        H, W = size
        scale = self.input_size / max(H, W)
        return int(H * scale + 0.5), int(W * scale + 0.5)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``images: (N, 3, H, W)`` in [0, 1] -> image embeddings ``(N, C, e, e)``."""
        h, w = self.resized_size(images.shape[-2:])
        S = self.input_size
        x = _normalise(_resize(images, (h, w)), self.mean, self.std)
        x = F.pad(x, (0, S - w, 0, S - h))  # (N, 3, S, S), zero padding right and bottom
        return torch.cat(
            [self.model.get_image_embeddings(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        )

    def _valid(self, size: tuple[int, int]) -> tuple[float, float]:
        h, w = self.resized_size(size)
        return h / self.input_size, w / self.input_size

    def segment_everything(self, embedding: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Automatic masks of one image.

        Args:
            embedding: ``(C, e, e)`` from :meth:`embed`.
            size: ``(H, W)`` of the image.

        Returns:
            ``(H, W)`` int32 segment ids, 0 = none.
        """
        from torchvision.ops import masks_to_boxes, nms

        H, W = size
        h, w = self.resized_size(size)
        n = self.points_per_side
        t = (torch.arange(n, device=self.device, dtype=torch.float32) + 0.5) / n
        ys, xs = torch.meshgrid(t * h, t * w, indexing="ij")
        points = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # (n*n, 2) as (x, y) in the resized image
        fh, fw = self._valid(size)
        logits, scores = [], []  # the masks kept by the filters, batch by batch (all of them would not fit)
        for i in range(0, len(points), self.points_batch):
            p = points[i : i + self.points_batch]
            pred = self.model(image_embeddings=embedding[None], input_points=p[None, :, None, :], multimask_output=True)
            low = pred.pred_masks[0].flatten(0, 1)  # (P*3, L, L) mask logits, low resolution
            iou = pred.iou_scores[0].flatten()  # (P*3,) predicted IoU
            L = low.shape[-1]
            crop = low[:, : max(1, math.ceil(fh * L)), : max(1, math.ceil(fw * L))]  # the image part (no padding)
            hi = (crop > self.stability_offset).flatten(1).sum(1)
            lo = (crop > -self.stability_offset).flatten(1).sum(1)
            stability = hi.float() / lo.clamp_min(1).float()
            keep = (iou > self.pred_iou_thresh) & (stability > self.stability_thresh) & (crop > 0).flatten(1).any(1)
            logits.append(low[keep])
            scores.append(iou[keep].float())
        low, iou = torch.cat(logits), torch.cat(scores)  # (K, L, L), (K,)
        out = torch.zeros(H, W, dtype=torch.int32, device=self.device)
        if len(low) == 0:
            return out.cpu()
        L = low.shape[-1]
        binary = low[:, : max(1, math.ceil(fh * L)), : max(1, math.ceil(fw * L))] > 0  # (K, h_L, w_L)
        boxes = masks_to_boxes(binary).float() + torch.tensor(
            [0.0, 0.0, 1.0, 1.0], device=low.device
        )  # (K, 4) on the crop
        idx = nms(boxes, iou, self.mask_nms_iou)  # duplicates removed, best predicted IoU first
        area = binary[idx].flatten(1).sum(1)
        idx = idx[torch.argsort(area, descending=True, stable=True)]  # paint the largest first
        for start in range(0, len(idx), self.points_batch):
            chunk = idx[start : start + self.points_batch]
            full = _sample_at_pixels(low[chunk], size, (fh, fw)) > 0  # (k, H, W)
            for j in range(len(chunk)):
                out[full[j]] = start + j + 1
        return out.cpu()

    def box_masks(self, embedding: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Masks of one image from box prompts.

        Args:
            embedding: ``(C, e, e)`` from :meth:`embed`.
            boxes: ``(K, 4)`` x1 y1 x2 y2 in image pixels.
            size: ``(H, W)`` of the image.

        Returns:
            ``(K, H, W)`` bool.
        """
        H, W = size
        h, w = self.resized_size(size)
        scale = torch.tensor([w / W, h / H, w / W, h / H], device=boxes.device)
        masks = []
        for i in range(0, len(boxes), self.points_batch):
            b = (boxes[i : i + self.points_batch] * scale)[None]  # (1, k, 4) in the resized image
            out = self.model(image_embeddings=embedding[None], input_boxes=b, multimask_output=False)
            masks.append(_sample_at_pixels(out.pred_masks[0, :, 0], size, self._valid(size)) > 0)
        if not masks:
            return torch.zeros(0, H, W, dtype=torch.bool, device=boxes.device)
        return torch.cat(masks)


# --------------------------------------------------------------------------------- detector
class BoxDetector(_LocalModel):
    """An open-vocabulary detector (``AutoModelForZeroShotObjectDetection``): Grounding DINO, OWLv2, OWL-ViT.

    Args:
        path: folder of the saved model and its processor (tokenizer included).
        device: where the model runs.
        options: :attr:`HFPrior.options`, of which: ``batch_size``, images per call;
            ``box_threshold``, keep a box whose best token (query) probability exceeds this;
            ``text_threshold``, ... and whose best prompt name's probability exceeds this.
    """

    def __init__(self, path: Path, device: torch.device, options: Mapping[str, Any]) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        what = "open-vocabulary detector (semantics)"
        super().__init__(path, device, options, what, AutoModelForZeroShotObjectDetection, tokenizer=True)
        self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        self.model_type = str(self.model.config.model_type)
        self.is_owl = self.model_type.startswith("owl")
        self.box_threshold, self.text_threshold = options["box_threshold"], options["text_threshold"]

    def groups(self, classes: PriorClasses = DEFAULT_PRIORS) -> tuple[tuple[str, ...], ...]:
        """The prompt groups this detector runs for a class table: its caption groups, or one group
        for OWL models."""
        if not classes.caption_groups:
            raise ValueError(f"detector: the {classes.name} classes have no prompts (occkit.priors.classes)")
        if self.is_owl:
            return (tuple(n for g in classes.caption_groups for n in g),)
        return classes.caption_groups

    def _caption(self, names: Sequence[str]) -> tuple[str, torch.Tensor]:
        """Grounding DINO's caption ``"a. b. c."`` and ``(T,)`` the prompt name index of each token (-1 = none)."""
        spans, text = [], ""
        for name in names:
            spans.append((len(text), len(text) + len(name)))
            text += name + ". "
        text = text.strip()
        enc = self.processor.tokenizer(text, return_offsets_mapping=True)
        owner = torch.full((len(enc["input_ids"]),), -1, dtype=torch.long)
        for t, (a, b) in enumerate(enc["offset_mapping"]):
            for k, (s, e) in enumerate(spans):
                if b > a and a >= s and b <= e:
                    owner[t] = k
        return text, owner

    def detect(
        self, images: torch.Tensor, classes: PriorClasses = DEFAULT_PRIORS
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Boxes of every prompt group of the class table ``classes``.

        Args:
            images: ``(N, 3, H, W)`` float in [0, 1].

        Returns:
            per image ``(boxes, scores, classes)``: ``(K, 4)`` x1 y1 x2 y2 in pixels, ``(K,)`` in
            [0, 1], ``(K,)`` long class ids of ``classes``; on ``device``.
        """
        from torchvision.ops import box_convert

        N, _, H, W = images.shape
        found: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(N)]
        cpu = images.detach().float().cpu()
        for names in self.groups(classes):
            cls = torch.tensor([classes.prompt_class(n) for n in names], device=self.device)
            if self.is_owl:
                owner = torch.arange(len(names))
            else:
                caption, owner = self._caption(names)
            for i in range(0, N, self.batch_size):
                batch = list(cpu[i : i + self.batch_size])
                if self.is_owl:
                    max_len = int(self.model.config.text_config.max_position_embeddings)
                    inputs = self.processor(
                        images=batch,
                        text=[list(names)] * len(batch),
                        do_rescale=False,
                        padding="max_length",
                        truncation=True,
                        max_length=max_len,
                        return_tensors="pt",
                    )
                    # OWLv2 pads the image to a square before resizing, OWL-ViT stretches it
                    scale = torch.tensor(
                        [max(H, W)] * 4 if self.model_type == "owlv2" else [W, H, W, H], dtype=torch.float32
                    )
                else:
                    inputs = self.processor(
                        images=batch, text=[caption] * len(batch), do_rescale=False, return_tensors="pt"
                    )
                    scale = torch.tensor([W, H, W, H], dtype=torch.float32)
                out = self.model(**inputs.to(self.device))
                probs = out.logits.float().sigmoid()  # (B, Q, T): per box, per token (query)
                T = min(probs.shape[-1], len(owner))
                o = owner[:T].to(self.device)
                member = F.one_hot(o.clamp_min(0), len(names)).bool() & (o >= 0)[:, None]  # (T, K): token in name
                name_p = (probs[..., :T, None] * member).amax(-2)  # (B, Q, K): best token of each name
                box_p = probs.amax(-1)  # (B, Q)
                best_p, best = name_p.max(-1)  # (B, Q)
                boxes = box_convert(out.pred_boxes.float(), "cxcywh", "xyxy") * scale.to(self.device)
                lim = torch.tensor([W, H, W, H], dtype=torch.float32, device=self.device)
                boxes = torch.minimum(boxes.clamp_min(0), lim)
                for b in range(probs.shape[0]):
                    keep = (box_p[b] > self.box_threshold) & (best_p[b] > self.text_threshold)
                    keep &= (boxes[b, :, 2] > boxes[b, :, 0]) & (boxes[b, :, 3] > boxes[b, :, 1])
                    found[i + b].append((boxes[b][keep], box_p[b][keep].clamp(0, 1), cls[best[b][keep]]))
        return [tuple(torch.cat(parts) for parts in zip(*f)) for f in found]  # type: ignore[misc]


# --------------------------------------------------------------------------------- depth
def depth_is_metric(config: Any) -> bool:
    """Whether a depth model's config says it predicts metres (ZoeDepth; Depth Anything ``metric``)."""
    return config.model_type == "zoedepth" or getattr(config, "depth_estimation_type", None) == "metric"


class MetricDepth(_LocalModel):
    """A depth model (``AutoModelForDepthEstimation``) whose prediction is metric z-depth.

    Args:
        path: folder of the saved model and its image processor.
        device: where the model runs.
        options: :attr:`HFPrior.options`, of which: ``batch_size``, images per call;
            ``assume_metric_depth``, accept a model whose config does not say it is metric (DPT,
            relative Depth Anything): the caller asserts this checkpoint predicts metres.
    """

    def __init__(self, path: Path, device: torch.device, options: Mapping[str, Any]) -> None:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.assume_metric_depth = options["assume_metric_depth"]
        super().__init__(path, device, options, "depth", AutoModelForDepthEstimation)
        self.processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)

    def _check_config(self, path: Path) -> None:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        if not depth_is_metric(config) and not self.assume_metric_depth:
            kind = getattr(config, "depth_estimation_type", "relative (inverse depth)")
            raise ValueError(
                f"{path}: the depth model ({config.model_type}, {kind}) is not metric: its output is relative "
                "depth up to scale and shift, not metres. Use a metric model (Depth Anything metric, ZoeDepth) "
                "or pass assume_metric_depth=True if this checkpoint does predict metres"
            )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``images: (N, 3, H, W)`` in [0, 1] -> ``(N, H, W)`` float32 metres (>= 0)."""
        N, _, H, W = images.shape
        cpu = images.detach().float().cpu()
        out = []
        for i in range(0, N, self.batch_size):
            inputs = self.processor(images=list(cpu[i : i + self.batch_size]), do_rescale=False, return_tensors="pt")
            pred = self.model(**inputs.to(self.device)).predicted_depth.float()  # (B, h, w)
            if self.model.config.model_type == "zoedepth" and getattr(self.processor, "do_pad", False):
                # ZoeDepth's processor pads by int(sqrt(size / 2) * 3) px each side: crop that share away
                ph, pw = int(math.sqrt(H / 2) * 3), int(math.sqrt(W / 2) * 3)
                h, w = pred.shape[-2:]
                ch, cw = round(h * ph / (H + 2 * ph)), round(w * pw / (W + 2 * pw))
                pred = pred[:, ch : h - ch, cw : w - cw]
            pred = F.interpolate(pred[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
            out.append(pred.clamp_min(0))
        return torch.cat(out).cpu()


# --------------------------------------------------------------------------------- CLIP
def maskclip_tokens(
    vision_model: Any, visual_projection: torch.nn.Module, pixel_values: torch.Tensor, residual: bool = True
) -> torch.Tensor:
    """Dense CLIP embeddings of the patches by the MaskCLIP trick.

    All blocks but the last run as usual. In the last block the query-key attention is skipped:
    each token's value (``v_proj`` of ``layer_norm1(x)``) goes through the output projection
    alone, ``x + out_proj(v)``, then the block's MLP with its residual; then CLIP's
    ``post_layernorm`` and ``visual_projection`` map every patch token into the joint text-image
    space (docs/methods.md §4). ``residual=False`` keeps only ``out_proj(v)`` (no residual, no MLP), the
    reading of the original MaskCLIP code.

    Args:
        vision_model: a ``CLIPVisionModel`` (``CLIPModel.vision_model``).
        visual_projection: ``CLIPModel.visual_projection``.
        pixel_values: ``(B, 3, h*p, w*p)`` normalised images, sides multiples of the patch size p
            (position embeddings are interpolated for other sizes than the training one).

    Returns:
        ``(B, D, h, w)`` patch embeddings (not normalised).
    """
    B, _, Hp, Wp = pixel_values.shape
    p = int(vision_model.config.patch_size)
    x = vision_model.embeddings(pixel_values, interpolate_pos_encoding=True)  # (B, 1 + h*w, C)
    x = vision_model.pre_layrnorm(x)
    layers = vision_model.encoder.layers
    for layer in layers[:-1]:
        x = layer(x, None)
    last = layers[-1]
    v = last.self_attn.out_proj(last.self_attn.v_proj(last.layer_norm1(x)))
    if residual:
        x = x + v
        x = x + last.mlp(last.layer_norm2(x))
    else:
        x = v
    tokens = visual_projection(vision_model.post_layernorm(x[:, 1:]))  # (B, h*w, D)
    return tokens.transpose(1, 2).reshape(B, -1, Hp // p, Wp // p)


class ClipText:
    """CLIP's text tower as a :class:`~occkit.priors.text.TextEncoder` (``clip:PATH``).

    Args:
        path: folder of a saved ``CLIPModel`` with its tokenizer (a ``CLIPProcessor`` folder).
        device: where the model runs (results are returned on the CPU).
        spec: the spec recorded in caches (default ``clip:PATH``).

    The whole ``CLIPModel`` is loaded (``model``), so that :class:`HFPrior` reads the image
    features from the same weights.
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu", spec: str | None = None) -> None:
        from transformers import AutoTokenizer, CLIPModel

        offline_hf()
        self.path = check_model_dir(Path(path), "CLIP (features and text encoder)", processor=False, tokenizer=True)
        self.spec = spec or f"clip:{path}"
        self.device = torch.device(device)
        self.model = _load(CLIPModel, self.path, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self._memo: dict[str, torch.Tensor] = {}

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """``(K, D)`` float32 on the CPU, each row L2-normalised."""
        return memo_encode(texts, self._memo, self.dim, self._encode_new)

    def _encode_new(self, new: list[str]) -> torch.Tensor:
        # one text per forward pass: in a padded batch a text's embedding moves by a few float ulps
        # with its batch mates, and a resumed cache must be bit-identical to an uninterrupted one
        rows = []
        for i in range(len(new)):
            chunk = new[i : i + 1]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():  # not inference_mode: callers may edit the outputs in place
                emb = self.model.get_text_features(**enc.to(self.device)).pooler_output.float()
            rows.append(F.normalize(emb, dim=-1).cpu())
        return torch.cat(rows)


class MaskClipFeatures:
    """Dense vision-language features of a ``CLIPModel`` by :func:`maskclip_tokens`.

    Args:
        text: the :class:`ClipText` of the same folder (its ``model`` is used).
        options: :attr:`HFPrior.options`, of which: ``batch_size``, images per call;
            ``clip_size``, shortest side of CLIP's input in pixels (``None`` = the model's
            training size); ``maskclip_residual``: see :func:`maskclip_tokens`.
    """

    def __init__(self, text: ClipText, options: Mapping[str, Any]) -> None:
        from transformers import AutoImageProcessor

        check_model_dir(text.path, "CLIP (features)")
        self.model, self.device = text.model, text.device
        ip = AutoImageProcessor.from_pretrained(str(text.path), local_files_only=True)
        self.mean, self.std = list(ip.image_mean), list(ip.image_std)
        vc = self.model.config.vision_config
        self.patch = int(vc.patch_size)
        self.clip_size = int(options["clip_size"] or vc.image_size)
        self.batch_size, self.residual = options["batch_size"], options["maskclip_residual"]

    def input_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of CLIP's input: shortest side ``clip_size``, aspect kept, multiples of the patch."""
        H, W = size
        s = self.clip_size / min(H, W)
        return (
            max(self.patch, round(H * s / self.patch) * self.patch),
            max(self.patch, round(W * s / self.patch) * self.patch),
        )

    def default_stride(self, size: tuple[int, int]) -> int:
        """The stride of the patch grid on the image, rounded: the natural feature stride."""
        return max(1, round(size[0] / (self.input_size(size)[0] // self.patch)))

    def __call__(self, images: torch.Tensor, stride: int) -> torch.Tensor:
        """``images: (N, 3, H, W)`` in [0, 1] -> ``(N, D, ceil(H/s), ceil(W/s))`` float32, unit norm over D."""
        N, _, H, W = images.shape
        h, w = -(-H // stride), -(-W // stride)
        x = _normalise(_resize(images.float(), self.input_size((H, W))), self.mean, self.std)
        # cell centres (i + 0.5) * s in pixels, as grid_sample coordinates of the token map (covers the image)
        gy = (((torch.arange(h, device=x.device) + 0.5) * stride).clamp(max=H) / H) * 2 - 1
        gx = (((torch.arange(w, device=x.device) + 0.5) * stride).clamp(max=W) / W) * 2 - 1
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None]  # (1, h, w, 2)
        out = []
        for i in range(0, N, self.batch_size):
            tok = maskclip_tokens(
                self.model.vision_model,
                self.model.visual_projection,
                x[i : i + self.batch_size],
                residual=self.residual,
            ).float()  # (B, D, h', w')
            f = F.grid_sample(
                tok, grid.expand(len(tok), -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=False
            )  # (B, D, h, w)
            out.append(F.normalize(f, dim=1))
        return torch.cat(out).cpu()


# --------------------------------------------------------------------------------- provider
class HFPrior:
    """Priors from real foundation models saved under ``root`` (see the module docstring).

    Args:
        root: the folder of model subfolders (``sam``, ``detector``, ``depth``, ``clip``).
        device: where the models run; outputs are on the CPU.
        feature_stride: stride of the features (``None`` = the CLIP patch grid's stride on the image).
        batch_size: camera images per model call.
        points_per_side, points_batch, pred_iou_thresh, stability_thresh, mask_nms_iou: SAM's
            automatic masks (:class:`SamMasks`; SAM's own defaults).
        box_threshold, text_threshold: the detector's thresholds (0.20 as Grounded-SAM for OccNeRF).
        clip_size: shortest side of CLIP's input (``None`` = its training size, e.g. 224).
        maskclip_residual: keep the residual and MLP of the last block (:func:`maskclip_tokens`).
        assume_metric_depth: accept a depth model not marked metric (:class:`MetricDepth`).

    Attributes:
        options: the options above from ``batch_size`` on, by name: what :meth:`describe` reports,
            and where each model (:class:`SamMasks`, :class:`BoxDetector`, :class:`MetricDepth`,
            :class:`MaskClipFeatures`) reads its settings from.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        device: str = "cpu",
        feature_stride: int | None = None,
        batch_size: int = 4,
        points_per_side: int = 32,
        points_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_thresh: float = 0.95,
        mask_nms_iou: float = 0.7,
        box_threshold: float = 0.2,
        text_threshold: float = 0.2,
        clip_size: int | None = None,
        maskclip_residual: bool = True,
        assume_metric_depth: bool = False,
    ) -> None:
        offline_hf()
        self.root = Path(root)
        self.spec = f"hf:{root}"
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"prior {self.spec!r}: {self.root} is not a folder "
                f"(expected subfolders {', '.join(s + '/' for s in SUBFOLDERS.values())} of saved models)"
            )
        if feature_stride is not None and feature_stride < 1:
            raise ValueError(f"HFPrior: feature_stride must be >= 1, got {feature_stride}")
        for name, v in (
            ("batch_size", batch_size),
            ("points_per_side", points_per_side),
            ("points_batch", points_batch),
        ):
            if v < 1:
                raise ValueError(f"HFPrior: {name} must be >= 1, got {v}")
        present = {k: self.root / s for k, s in SUBFOLDERS.items() if (self.root / s).exists()}
        if not present:
            raise FileNotFoundError(
                f"prior {self.spec!r}: {self.root} holds none of the model subfolders "
                f"{', '.join(s + '/' for s in SUBFOLDERS.values())}"
            )
        dev = torch.device(device)
        self.device, self.feature_stride, self.batch_size = dev, feature_stride, batch_size
        self.options = {
            "batch_size": batch_size,
            "points_per_side": points_per_side,
            "points_batch": points_batch,
            "pred_iou_thresh": pred_iou_thresh,
            "stability_thresh": stability_thresh,
            "mask_nms_iou": mask_nms_iou,
            "box_threshold": box_threshold,
            "text_threshold": text_threshold,
            "clip_size": clip_size,
            "maskclip_residual": maskclip_residual,
            "assume_metric_depth": assume_metric_depth,
        }
        opts = self.options
        self.sam = SamMasks(present["sam"], dev, opts) if "sam" in present else None
        self.detector = BoxDetector(present["detector"], dev, opts) if "detector" in present else None
        self.depth = MetricDepth(present["depth"], dev, opts) if "depth" in present else None
        self.text_encoder: ClipText | None = None
        self.clip: MaskClipFeatures | None = None
        if "clip" in present:
            self.text_encoder = ClipText(present["clip"], dev, spec=f"clip:{present['clip']}")
            self.clip = MaskClipFeatures(self.text_encoder, opts)
        given = {"semantics": self.detector, "segments": self.sam, "depth": self.depth, "features": self.clip}
        self.kinds = tuple(k for k in KINDS if given[k] is not None)

    def describe(self) -> dict[str, Any]:
        """The spec, options and, per model, its folder, type, architecture and weight files (name, bytes)."""
        models = {}
        for name, m in (("sam", self.sam), ("detector", self.detector), ("depth", self.depth), ("clip", self.clip)):
            if m is None:
                continue
            path = self.text_encoder.path if name == "clip" else m.path  # type: ignore[union-attr]
            cfg = m.model.config
            models[name] = {
                "path": str(path),
                "model_type": cfg.model_type,
                "architectures": list(cfg.architectures or []),
                "weights": {p.name: p.stat().st_size for p in sorted(path.glob("*.safetensors"))},
            }
        return {
            "spec": self.spec,
            "provider": "hf",
            "kinds": list(self.kinds),
            "feature_stride": self.feature_stride,
            "text_encoder": self.text_encoder.spec if self.text_encoder else None,
            "options": self.options,
            "models": models,
        }

    def __call__(self, frame: PriorFrame, kinds: Sequence[str]) -> Priors:
        """The priors of ``kinds`` for every camera of ``frame`` (see the module docstring)."""
        kinds = check_kinds(kinds, self.kinds, self.spec)
        images = frame.images.to(self.device, torch.float32)  # (N, 3, H, W)
        N, _, H, W = images.shape
        out = Priors()
        with torch.no_grad():  # not inference_mode: callers may edit the outputs in place
            emb = None
            if self.sam is not None and ("segments" in kinds or "semantics" in kinds):
                emb = self.sam.embed(images)  # (N, C, e, e)
            if "segments" in kinds:
                assert self.sam is not None and emb is not None
                out.segments = torch.stack([self.sam.segment_everything(emb[i], (H, W)) for i in range(N)])
            if "semantics" in kinds:
                out.semantics, out.confidence = self._semantics(images, emb, frame.classes)
            if "depth" in kinds:
                assert self.depth is not None
                out.depth = self.depth(images)
            if "features" in kinds:
                assert self.clip is not None
                s = self.feature_stride or self.clip.default_stride((H, W))
                out.features, out.feature_stride = self.clip(images, s), s
        return out

    def _semantics(
        self, images: torch.Tensor, emb: torch.Tensor | None, classes: PriorClasses = DEFAULT_PRIORS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, H, W)`` uint8 classes and float32 confidence: boxes -> masks, the best score wins per pixel."""
        assert self.detector is not None
        N, _, H, W = images.shape
        sem = torch.full((N, H, W), UNKNOWN, dtype=torch.uint8, device=self.device)
        conf = torch.zeros(N, H, W, dtype=torch.float32, device=self.device)
        for i, (boxes, scores, labels) in enumerate(self.detector.detect(images, classes)):
            order = torch.argsort(scores, stable=True)  # ascending: higher scores paint last and win
            boxes, scores, labels = boxes[order], scores[order], labels[order]
            step = self.sam.points_batch if self.sam is not None else 64
            for start in range(0, len(boxes), step):  # a chunk of masks at a time (K full-size masks may not fit)
                b = boxes[start : start + step]
                if emb is not None and self.sam is not None:
                    masks = self.sam.box_masks(emb[i], b, (H, W))  # (k, H, W)
                else:
                    ys = torch.arange(H, device=self.device, dtype=torch.float32)[None, :, None] + 0.5
                    xs = torch.arange(W, device=self.device, dtype=torch.float32)[None, None, :] + 0.5
                    c = b[:, :, None, None]
                    masks = (xs >= c[:, 0]) & (xs <= c[:, 2]) & (ys >= c[:, 1]) & (ys <= c[:, 3])  # (k, H, W)
                for k in range(len(b)):
                    sem[i][masks[k]] = labels[start + k].to(torch.uint8)
                    conf[i][masks[k]] = scores[start + k]
        return sem.cpu(), conf.cpu()
