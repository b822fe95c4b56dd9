"""Step time and peak memory of ``easyocc`` (3D pseudo-label losses) against ``render_sup``
(volume-rendering losses), side by side in one run (docs/methods.md, section 2: 3D pseudo-supervision removes
the rendering losses' cost).

Arms, each in its own process on the same frames of a pseudo-label dataset (with the prior cache
attached for render_sup's 2D targets):

- ``easyocc``: the ``easyocc`` preset (sampling lift, CE + Lovász on pseudo-labels);
- ``render_sup (same net)``: render_sup's rendering losses (2D targets from the priors) on the
  ``easyocc`` preset's network (``model.lift: sample``, no LSS depth loss): the losses' cost alone;
- ``render_sup (its preset)``: ``render-sup-cpu`` with ``render_sup.targets: priors``.

Per arm: seconds per training step (forward, backward, AdamW step; the median of ``--steps``
after one warm-up step) and peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the
process's peak resident set (``ru_maxrss``) and its growth over the steps (peak minus the resident
set after the warm-up's model and data were built).

    python benchmarks/bench_easyocc.py --data runs/easyocc_abl/labels-K13-filter/dataset \
        --priors runs/abl_world_priors_typical --steps 5 --json runs/easyocc_abl/bench_easyocc.json

The pseudo-label dataset and the prior cache are stages of configs/ablations/easyocc.yaml
(``labels_dense`` and ``priors``, under ``runs/abl/stages/`` after ``occkit ablate
configs/ablations/easyocc.yaml --out runs/abl/easyocc``); the folders above are the recorded run's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time

ARMS = {
    "easyocc": ("easyocc", []),
    "render_sup (same net)": (
        "easyocc",
        [
            "method=render_sup",
            "render_sup.targets=priors",
            "render_sup.lss_depth_weight=0",
            "render_sup.num_rays=2048",
            "render_sup.sample_step=0.4",
            "render_sup.free_prior=0.9",
        ],
    ),
    "render_sup (its preset)": (
        "render-sup-cpu",
        ["render_sup.targets=priors", "data.load_extras=false", "data.workers=0"],
    ),
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_arm(name: str, data: str, priors: str, steps: int, device: str, threads: int, q: mp.Queue) -> None:
    import torch

    torch.set_num_threads(threads)
    from occkit.data.sample import collate
    from occkit.experiment import build_dataset, build_method, load_experiment

    preset, sets = ARMS[name]
    cfg = load_experiment(preset, sets + [f"data.priors={priors}"])
    torch.manual_seed(0)
    ds = build_dataset(cfg, data, "train", train=True)
    batches = [collate([ds[i]]).to(device) for i in range(min(steps + 1, len(ds)))]
    method = build_method(cfg).to(device).train()
    opt = torch.optim.AdamW(method.parameters(), lr=1e-4)
    times = []
    base = 0.0
    for i in range(steps + 1):
        b = batches[i % len(batches)]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        losses = method.training_step(b)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i == 0:
            base = rss_mb()
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
        else:
            times.append(time.perf_counter() - t0)
    out = {
        "arm": name,
        "preset": preset,
        "overrides": sets,
        "step_s_median": statistics.median(times),
        "step_s": times,
        "losses": sorted(losses),
        "params_M": sum(p.numel() for p in method.parameters()) / 1e6,
    }
    if device.startswith("cuda"):
        out["peak_mem_MB"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_rss_MB"] = rss_mb()
        out["rss_growth_MB"] = rss_mb() - base
    q.put(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="pseudo-label dataset (occkit pseudolabel --out)")
    ap.add_argument("--priors", required=True, help="prior cache of the same frames (render_sup's 2D targets)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    priors = os.path.abspath(args.priors)
    rows = []
    ctx = mp.get_context("spawn")
    for name in ARMS:
        q = ctx.Queue()
        p = ctx.Process(target=run_arm, args=(name, args.data, priors, args.steps, args.device, args.threads, q))
        p.start()
        rows.append(q.get())
        p.join()
        r = rows[-1]
        mem = (
            f"peak {r['peak_mem_MB']:.0f} MB"
            if "peak_mem_MB" in r
            else f"peak RSS {r['peak_rss_MB']:.0f} MB (+{r['rss_growth_MB']:.0f} MB over the steps)"
        )
        print(
            f"{name:<26} {r['step_s_median']:.2f} s/step  {mem}  {r['params_M']:.1f} M params  losses "
            f"{', '.join(r['losses'])}",
            flush=True,
        )
    result = {
        "machine": platform.processor() or platform.machine(),
        "device": args.device,
        "threads": args.threads,
        "steps": args.steps,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arms": rows,
    }
    if args.json:
        from occkit.fileio import write_json_atomic

        write_json_atomic(args.json, result)


if __name__ == "__main__":
    main()
