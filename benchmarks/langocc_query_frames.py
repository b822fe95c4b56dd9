"""Pick, for each query text, the validation frame where its objects fill the most camera-visible
voxels (for `occkit query` pictures). Prints one line per query: ``TOKEN<TAB>TEXT``.

    python benchmarks/langocc_query_frames.py runs/abl_world "a tree" "city bus" "traffic cone"
"""

from __future__ import annotations

import sys

import numpy as np

from occkit.data.occ3d import Occ3DDataset
from occkit.metrics.retrieval import load_queries


def main(argv: list[str]) -> int:
    data, texts = argv[0], argv[1:]
    means = {q.text: set(q.means) for q in load_queries(None)}
    unknown = [t for t in texts if t not in means]
    if unknown:
        raise SystemExit(f"not in the query set (configs/queries/synth.yaml): {unknown}")
    ds = Occ3DDataset(data, "val", load_gt=True)
    best = {t: (-1, None) for t in texts}
    for f in ds.frames:
        inst = ds.read_instances(f.token)
        if inst is None:
            raise SystemExit(f"{ds.extras_dir(f.token)}: no instances.npz")
        cam = np.asarray(ds.read_labels(f.token)["mask_camera"]).astype(bool)  # the labels only, not the images
        names = ds.instance_names(f.token)
        for t in texts:
            ids = [k for k, n in names.items() if n in means[t]]
            n = int((np.isin(inst, ids) & cam).sum()) if ids else 0
            if n > best[t][0]:
                best[t] = (n, f.token)
    for t in texts:
        print(f"{best[t][1]}\t{t}\t{best[t][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
