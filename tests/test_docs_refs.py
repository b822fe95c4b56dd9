"""Every document the code cites is in the repository: ``docs/<name>.md`` exists, and each
``docs/<name>.md §N`` it cites has a section ``## N.``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_the_code_cites_exist_with_their_sections():
    cited = re.compile(r"docs/([\w-]+\.md)(?: §(\d+))?")
    bad = []
    for path in (
        sorted((ROOT / "src").rglob("*.py"))
        + sorted((ROOT / "src").rglob("*.yaml"))
        + sorted((ROOT / "tests").rglob("*.py"))
    ):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name, section in cited.findall(line):
                doc = ROOT / "docs" / name
                if not doc.is_file():
                    bad.append(f"{path.relative_to(ROOT)}:{n}: docs/{name} does not exist")
                elif section and not re.search(rf"^## {section}\. ", doc.read_text(encoding="utf-8"), re.M):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: docs/{name} has no section {section}")
    assert not bad, "\n".join(bad)


def _section_code(doc: Path, heading: str, lang: str = "python") -> str:
    """The first ``lang`` code block under the section ``heading`` of ``doc``."""
    text = doc.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    body = text[start : end if end > 0 else len(text)]
    m = re.search(rf"```{lang}\n(.*?)```", body, re.S)
    assert m, f"{doc}: no {lang} block under {heading!r}"
    return m.group(1)


def test_the_dataset_format_example_of_the_design_doc_is_complete(tmp_path):
    """docs/design.md §9's format module imports as it stands, and occkit reads, scores and predicts
    through it: the dataset format contract, checked where a reader learns it."""
    import importlib.util

    import numpy as np

    from occkit.data.stats import count_frame_classes
    from occkit.fileio import save_npz_atomic, write_json_atomic
    from occkit.formats import DatasetFormat
    from occkit.formats.evaluate import evaluate_predictions

    module = tmp_path / "flat_format.py"
    module.write_text(_section_code(ROOT / "docs" / "design.md", "## 9. Adding a dataset format"))
    spec = importlib.util.spec_from_file_location("flat_format", module)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fmt = mod.FORMAT
    assert isinstance(fmt, DatasetFormat) and fmt.name == "flat"

    data, pred = tmp_path / "data", tmp_path / "pred"
    rng = np.random.default_rng(0)
    tokens = ["a-0", "a-1", "b-0"]
    write_json_atomic(data / "flat.json", {"train": tokens[:2], "val": tokens[2:]})
    truth = {}
    for t in tokens:
        truth[t] = rng.integers(0, 4, (200, 200, 16), dtype=np.uint8)
        save_npz_atomic(
            data / f"{t}.npz",
            image=rng.integers(0, 255, (8, 16, 3), dtype=np.uint8),
            K=np.array([[8.0, 0, 8], [0, 8.0, 4], [0, 0, 1]]),
            T_ego_from_cam=np.eye(4),
            labels=truth[t],
        )
    assert fmt.detect(data) is not None and fmt.detect(tmp_path) is None
    ds = fmt.open_split(data, "train")
    assert ds.tokens == tokens[:2] and ds.format_name == "flat" and ds[1].images.shape == (1, 3, 8, 16)
    counts = count_frame_classes(ds, 4)
    assert counts.sum() == 2 * 200 * 200 * 16
    for t in tokens:
        fmt.predictions.write(pred, t, truth[t] if t != "b-0" else np.full_like(truth[t], 3))
    scores = evaluate_predictions(fmt, data, pred, "all", progress=False)
    assert scores["benchmark"] == "flat" and scores["frames"] == 3 and 0 < scores["miou"] < 100
    assert set(scores["iou"]) == {"ground", "object", "vegetation"}
