"""End to end on a tiny world: occscene trains (all three stages), occkit generate writes a
dataset that the reader, occkit stats and occkit eval-gen read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from occkit.cli import main
from occkit.data.occ3d import Occ3DDataset

TINY = {
    "method": "occscene",
    "model": {
        "backbone": "test_resnet",
        "neck_channels": 16,
        "context_channels": 8,
        "depth_min": 1.0,
        "depth_max": 41.0,
        "depth_step": 4.0,
        "lift_downsample": [8, 8, 4],
        "encoder_widths": [8],
        "feature_stride": 16,
    },
    "occscene": {
        "generator": {
            "autoencoder": {"channels": [8, 8, 16, 16], "norm_groups": 8},
            "denoiser": {
                "channels": [16, 32],
                "cross_attention": [False, True],
                "attention_head_dim": 8,
                "norm_groups": 8,
            },
            "mda": {
                "grid": [8, 8, 2],
                "channels": 8,
                "patch": [2, 2, 1],
                "token_dim": 16,
                "mamba_state": 4,
                "ray_samples": 4,
                "out_channels": 16,
            },
            "max_tokens": 16,
        },
        "schedule": {"num_train_timesteps": 100, "sample_steps": 2},
        "vae_steps": 1,
        "diffusion_steps": 1,
        "occ_warmup_steps": 0,
        "occ_max_timestep": 100,
    },
    "data": {"cameras": ["CAM_FRONT"], "image_aug": {"out_hw": [32, 96]}, "load_extras": False},
    "optim": {"max_steps": 3, "warmup_steps": 0, "lr": 0.001},
    "train": {"log_every": 1, "val_every": 0, "ckpt_every": 0, "threads": 1},
}


@pytest.fixture(scope="module")
def run_dir(synth_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("occscene_run")
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert (
        main(
            [
                "train",
                str(tmp / "tiny.yaml"),
                "--data",
                str(synth_root),
                "--out",
                str(tmp / "run"),
                "--no-val",
                "--no-progress",
            ]
        )
        == 0
    )
    return tmp / "run"


def _generate_val(run_dir, synth_root, out, *more) -> int:
    """``occkit generate``: 3 frames on the val layouts, in batches of 2 (the default seed)."""
    argv = ["generate", "--ckpt", str(run_dir), "--data", str(synth_root), "--occupancy", "val", "--n", "3"]
    return main([*argv, "--batch-size", "2", "--out", str(out), "--no-progress", "--device", "cpu", *more])


@pytest.fixture(scope="module")
def generated(run_dir, synth_root, tmp_path_factory):
    """One uninterrupted generation, read (never written) by the tests below: the dataset they check,
    and the bytes an interrupted one must resume to."""
    out = tmp_path_factory.mktemp("generated") / "gen"
    assert _generate_val(run_dir, synth_root, out) == 0
    return out


def test_train_generate_stats_eval_gen(run_dir, generated, synth_root, tmp_path, capsys):
    rows = [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]
    assert [sorted(k for k in r if k.startswith("loss_")) for r in rows] == [
        ["loss_occ_real", "loss_vae_kl", "loss_vae_rec"],
        ["loss_diff"],
        ["loss_diff", "loss_occ_gen", "loss_occ_real"],
    ]
    out = generated
    ds = Occ3DDataset(out, "all", cameras=("CAM_FRONT",))
    assert len(ds) == 3 and (out / "preview.png").is_file()
    s = ds[0]
    assert s.images.shape == (1, 3, 32, 96) and s.description
    src = json.loads((out / "annotations.json").read_text())
    tok = ds.frames[0].token
    source = src["scene_infos"][ds.frames[0].scene][tok]["source_token"]
    real = Occ3DDataset(synth_root, "all", cameras=("CAM_FRONT",), load_images=False)
    assert torch.equal(s.occupancy, real[real.index_of(source)].occupancy)  # the conditioning layout
    assert (
        s.mask_camera.sum() > 0 and s.mask_camera.sum() < real[real.index_of(source)].mask_camera.sum()
    )  # front frustum only
    assert main(["stats", str(out), "--split", "all", "--no-progress"]) == 0
    # same seed, same images
    out2 = tmp_path / "gen2"
    assert _generate_val(run_dir, synth_root, out2) == 0
    a = np.asarray(Occ3DDataset(out2, "all", cameras=("CAM_FRONT",))[0].images)
    assert np.array_equal(a, np.asarray(s.images))
    # perception feedback: labels are the perception model's prediction
    out3 = tmp_path / "gen3"
    assert (
        main(
            [
                "generate",
                "--ckpt",
                str(run_dir),
                "--data",
                str(synth_root),
                "--from-perception",
                "--text",
                "a quiet road",
                "--n",
                "2",
                "--out",
                str(out3),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    s3 = Occ3DDataset(out3, "all", cameras=("CAM_FRONT",))[0]
    assert s3.description == "a quiet road"
    capsys.readouterr()
    assert (
        main(
            [
                "eval-gen",
                "--gen",
                str(out),
                "--real",
                str(synth_root),
                "--judge",
                str(run_dir),
                "--split",
                "all",
                "--out",
                str(tmp_path / "scores.json"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    scores = json.loads((tmp_path / "scores.json").read_text())
    for k in ("fid", "kid", "layout_miou", "judge_real_miou"):
        assert np.isfinite(scores[k]), k
    assert scores["n_gen"] == 3 and scores["n_real"] == 4
    # the floor the figures are read against needs another real split of 3 frames: this world has 2 per split
    assert scores["floor"] is None and "no floor (no other real split than --split" in capsys.readouterr().out
    assert (
        main(
            [
                "generate",
                "--ckpt",
                str(run_dir),
                "--data",
                str(synth_root),
                "--n",
                "1",
                "--out",
                str(out),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 1
    )  # refuses to write over a dataset
    assert (
        main(
            [
                "generate",
                "--ckpt",
                str(run_dir),
                "--data",
                str(synth_root),
                "--occupancy",
                "nope",
                "--n",
                "1",
                "--out",
                str(tmp_path / "gen4"),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 1
    )


def _tree(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _occkit_lines(text: str) -> list[str]:
    """The command's own lines (not a progress bar's) of what it printed."""
    return [line for line in text.replace("\r", "\n").splitlines() if line.startswith("occkit generate")]


def _stop_sampler(monkeypatch, at: int, error: BaseException, calls: list):
    """Make the ``at``-th call (1-based) of the sampler raise ``error``; count the calls in ``calls``."""
    import occkit.generation.generate as g

    real = g.sample

    def sample(*a, **k):
        calls.append(k["seed"])
        if len(calls) == at:
            raise error
        return real(*a, **k)

    monkeypatch.setattr(g, "sample", sample)


def test_an_interrupted_generate_resumes_to_the_same_bytes(
    run_dir, generated, synth_root, tmp_path, capsys, monkeypatch
):
    from occkit.fileio import sha256_file
    from occkit.generation.generate import partial_folder

    def gen(out, *more):
        return _generate_val(run_dir, synth_root, out, *more)

    ref = _tree(generated)  # the same command, uninterrupted
    assert not partial_folder(generated).exists()
    # files.json: the size and checksum of every file written (all but itself and occkit's records of the folder)
    sums = json.loads(ref["files.json"])
    assert set(sums) == set(ref) - {"files.json", ".occkit-output.json", ".occkit-files.json"}
    assert set(json.loads(ref[".occkit-files.json"])) == set(ref) - {".occkit-output.json", ".occkit-files.json"}
    assert {"preview.png", "annotations.json", "generation.json"} <= set(sums) and sum(
        k.endswith(".png") for k in sums
    ) == 4
    for rel, want in sums.items():
        assert want == {"size": len(ref[rel]), "sha256": sha256_file(generated / rel)}, rel

    out = tmp_path / "gen"
    work = partial_folder(out)
    calls: list = []
    _stop_sampler(monkeypatch, 2, KeyboardInterrupt(), calls)
    capsys.readouterr()
    assert gen(out) == 130  # Ctrl-C during the second batch
    err = _occkit_lines(capsys.readouterr().err)
    assert len(err) == 1 and "stopped" in err[0] and "2 of 3 frames kept" in err[0]
    assert str(work) in err[0] and "same command" in err[0]
    assert not out.exists() and sorted(p.name for p in work.iterdir()) == ["batch_000000", "settings.json"]
    monkeypatch.undo()

    saved = _tree(work)
    assert gen(out, "--seed", "1") == 1  # other settings: refused in one line, the work folder untouched
    err = _occkit_lines(capsys.readouterr().err)
    assert len(err) == 1 and str(work) in err[0] and "seed differ" in err[0] and "delete" in err[0]
    assert _tree(work) == saved and not out.exists()

    calls.clear()
    _stop_sampler(monkeypatch, 0, KeyboardInterrupt(), calls)
    assert gen(out) == 0
    assert calls == [2]  # only the missing batch was sampled (seeded seed + start)
    assert "2 of 3 frames kept" in capsys.readouterr().out
    assert _tree(out) == ref  # every file byte-identical to the uninterrupted run's
    assert not work.exists()


def test_a_broken_saved_batch_is_redone(run_dir, synth_root, tmp_path, capsys, monkeypatch):
    from occkit.generation.generate import partial_folder

    def gen(out):
        return main(
            [
                "generate",
                "--ckpt",
                str(run_dir),
                "--data",
                str(synth_root),
                "--from-perception",
                "--n",
                "3",
                "--batch-size",
                "1",
                "--out",
                str(out),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )

    assert gen(tmp_path / "ref") == 0
    out = tmp_path / "gen"
    work = partial_folder(out)
    calls: list = []
    _stop_sampler(monkeypatch, 3, ValueError("a failure"), calls)
    assert gen(out) == 1  # an error in the third batch: the first two are kept
    assert "a failure" in capsys.readouterr().err
    assert sorted(p.name for p in work.glob("batch_*")) == ["batch_000000", "batch_000001"]
    npz = work / "batch_000001" / "frames.npz"
    npz.write_bytes(npz.read_bytes()[:100])  # truncated
    calls.clear()
    monkeypatch.undo()
    _stop_sampler(monkeypatch, 0, KeyboardInterrupt(), calls)
    assert gen(out) == 0
    assert calls == [1, 2]  # the broken batch and the one never sampled
    assert "1 of 3 frames kept" in capsys.readouterr().out
    assert _tree(out) == _tree(tmp_path / "ref") and not work.exists()


def test_validation_records_the_generators_own_figures(synth_root, tmp_path):
    """A validating run writes the VAE's reconstruction PSNR and the held-out denoising loss beside
    the perception's mIoU (what the ablation's generator stage shows for its plateau); the same
    weights give the same figures (fixed noise)."""
    from occkit.engine.data import eval_batches
    from occkit.engine.train import method_figures
    from occkit.experiment import build_dataset, load_checkpoint_method

    cfg = {
        **TINY,
        "train": {**TINY["train"], "val_every": 2, "ckpt_every": 2, "val_max_frames": 2},
        "optim": {**TINY["optim"], "max_steps": 2},
    }
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(cfg))
    assert (
        main(
            [
                "train",
                str(tmp_path / "v.yaml"),
                "--data",
                str(synth_root),
                "--out",
                str(tmp_path / "run"),
                "--no-progress",
            ]
        )
        == 0
    )
    rec = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert rec["step"] == 2 and 0 < rec["vae_psnr"] < 100 and rec["diffusion_loss"] > 0 and "miou" in rec
    method, c, _, device = load_checkpoint_method(tmp_path / "run", "cpu", ema=False)
    ds = build_dataset(c, synth_root, "val", load_gt=True)
    again = method_figures(method, eval_batches(ds, 2, max_frames=2), device, "none")
    assert again["diffusion_loss"] == pytest.approx(
        method_figures(method, eval_batches(ds, 2, max_frames=2), device, "none")["diffusion_loss"]
    )


def test_perception_trains_on_real_plus_generated_frames_and_the_blank_control(run_dir, synth_root, tmp_path):
    """OccScene's real + generated arm: a generated dataset joins the training frames
    (data.extra_train), as it is or with its images flattened (data.extra_images: mean_colour)."""
    from occkit.experiment import build_train_set, load_experiment

    gen = tmp_path / "gen"
    assert (
        main(
            [
                "generate",
                "--ckpt",
                str(run_dir),
                "--data",
                str(synth_root),
                "--occupancy",
                "train",
                "--split",
                "train",
                "--n",
                "2",
                "--out",
                str(gen),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    preset = run_dir.parent / "tiny.yaml"
    for how in ("as_is", "mean_colour"):
        sets = [
            "occscene.train_generator=false",
            "data.train_scene_fraction=0.5",
            f"data.extra_train=[{gen}]",
            f"data.extra_images={how}",
            "optim.max_steps=1",  # a step on the joined frames
        ]
        cfg = load_experiment(preset, sets)
        frames = build_train_set(cfg, synth_root)
        assert len(frames) == 2 + 2  # the one training scene's 2 frames, then the 2 generated ones
        img = frames[3].images
        assert torch.allclose(img, img[..., :1, :1].expand_as(img)) is (how == "mean_colour")
        out = tmp_path / f"perc_{how}"
        assert (
            main(
                [
                    "train",
                    str(preset),
                    "--data",
                    str(synth_root),
                    "--out",
                    str(out),
                    "--no-val",
                    "--no-progress",
                    "--set",
                    *sets,
                ]
            )
            == 0
        )
        assert json.loads((out / "config.json").read_text())["data"]["extra_train"] == [str(gen)]


def test_the_floor_is_as_many_real_frames_of_another_split(monkeypatch):
    import torch

    from occkit.generation import evaluate as ev

    class Frames(list):
        pass

    seen = []

    def fake_score_frames(judge, batches, device, frustum=True, fmt=None):
        frames = [i for b in batches for i in b]
        seen.append(frames)
        return torch.arange(len(frames) * 4, dtype=torch.float64).reshape(len(frames), 4) / 7, {"miou": 0.0}

    monkeypatch.setattr(ev, "score_frames", fake_score_frames)
    monkeypatch.setattr("occkit.engine.data.eval_batches", lambda ds, bs: [[ds[i] for i in range(len(ds))]])
    fmt = type("F", (), {"splits": ("train", "val")})()
    sizes = {"train": 10, "val": 4}
    make = lambda root, split: Frames(range(sizes[split]))  # noqa: E731
    f_real = torch.randn(4, 4, dtype=torch.float64)
    floor = ev.real_floor(None, make, "root", "val", fmt, 3, f_real, torch.device("cpu"), 2)
    assert floor["split"] == "train" and floor["n"] == 3 and seen[-1] == [0, 4, 9]  # evenly over the split
    assert ev.real_floor(None, make, "root", "val", fmt, 11, f_real, torch.device("cpu"), 2) is None
