"""``occkit label --launcher ray`` on a two-node Ray cluster on one machine, against the local run.

A head node and a second node, each with its own raylet and one CPU (``ray.cluster_utils.Cluster``, on this
machine), as ``ray start --head`` then ``ray start --address=...`` make on two machines; the label run
finds the cluster through ``RAY_ADDRESS`` (docs/labels.md, "Scale"). Prints the alive nodes, the nodes the
scenes ran on, and whether every label file equals the local run's.

    python benchmarks/label_ray_cluster.py --data WORLD --out OUT
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.npz"))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        return _run(cluster, args)
    finally:
        cluster.shutdown()  # a cluster left running would be joined by every later ray.init() on the machine


def _run(cluster, args: argparse.Namespace) -> int:
    import ray

    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    alive = [n for n in ray.nodes() if n["Alive"]]
    ray.shutdown()
    cpus = sum(n["Resources"].get("CPU", 0) for n in alive)
    print(f"cluster at {cluster.address}: {len(alive)} alive nodes, {cpus:g} CPUs")
    occkit = str(Path(sys.executable).with_name("occkit"))
    ray_out, local_out = args.out / "ray", args.out / "local"
    env = dict(os.environ, RAY_ADDRESS=cluster.address)
    subprocess.run(
        [occkit, "label", "--data", str(args.data), "--out", str(ray_out), "--launcher", "ray"], check=True, env=env
    )
    subprocess.run([occkit, "label", "--data", str(args.data), "--out", str(local_out)], check=True)
    a, b = _digest(ray_out), _digest(local_out)
    print(f"{len(a)} label files; identical to the local run's: {a == b and len(a) > 0}")
    return 0 if a == b and a else 1


if __name__ == "__main__":
    raise SystemExit(main())
