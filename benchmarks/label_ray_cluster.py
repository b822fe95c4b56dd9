"""``occkit label --launcher ray`` on a two-node Ray cluster on one machine, against the local run.

A head node and a second node, each with its own raylet and one CPU (``ray.cluster_utils.Cluster``, on this
machine), as ``ray start --head`` then ``ray start --address=...`` make on two machines; the label run
finds the cluster through ``RAY_ADDRESS`` (docs/labels.md, "Scale"). Prints the alive nodes, the nodes the
scenes ran on, and whether every label file equals the local run's.

With ``--lose-node``, a third run loses the second node under its task (the task that lands there kills that
node's raylet, then itself, as a machine going down): the run must end with status 1, saying the node and its
scene, with the head's scenes kept; a rerun (local) labels the rest, and the files must equal the local run's.

    python benchmarks/label_ray_cluster.py --data WORLD --out OUT [--lose-node]
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
    p.add_argument("--lose-node", action="store_true", help="a third run that loses the second node under its task")
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
    if not (a == b and a):
        return 1
    return _lose_node(args, env, [n["NodeID"] for n in alive if n["Resources"].get("node:__internal_head__")], b)


#: ``occkit label`` whose task on any node but the head (``argv[1]``) kills that node's raylet, then itself
_LOSE_NODE = """
import os, sys
import occkit.labelgen.run as run
from occkit.cli import main

HEAD = sys.argv[1]


def dies_off_the_head(job):
    import os, signal
    import ray
    from occkit.labelgen.run import label_one_scene

    if ray.get_runtime_context().get_node_id() != HEAD:
        os.kill(os.getppid(), signal.SIGKILL)  # a Ray worker's parent: its node's raylet
        os._exit(1)
    return label_one_scene(job)


run.label_one_scene = dies_off_the_head
sys.exit(main(sys.argv[2:]))
"""


def _lose_node(args: argparse.Namespace, env: dict[str, str], head: list[str], local: dict[str, str]) -> int:
    """The run that loses the second node (``--lose-node``), then its rerun on this machine."""
    if not args.lose_node:
        return 0
    out = args.out / "lost"
    label = ["label", "--data", str(args.data), "--out", str(out)]
    run = subprocess.run([sys.executable, "-c", _LOSE_NODE, head[0], *label, "--launcher", "ray"], env=env, check=False)
    print(f"the run that lost a node ended with status {run.returncode} (1 expected)")
    subprocess.run([str(Path(sys.executable).with_name("occkit")), *label], check=True)
    c = _digest(out)
    print(f"after the rerun, {len(c)} label files; identical to the local run's: {c == local}")
    return 0 if run.returncode == 1 and c == local else 1


if __name__ == "__main__":
    raise SystemExit(main())
