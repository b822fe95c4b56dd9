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


def test_the_dataset_format_example_of_the_design_doc_is_complete(tmp_path, tiny_occ3d_root):
    """docs/design.md §9's format module imports as it stands, and occkit reads, scores, restricts to a
    region and predicts through it: a labels-only format that reuses an Occ3D folder's cameras, its
    free class first, its own metric (which knows nothing of regions)."""
    import importlib.util
    import os

    import numpy as np

    from occkit.data.stats import count_frame_classes
    from occkit.fileio import save_npz_atomic, write_json_atomic
    from occkit.formats import DatasetFormat, get_format
    from occkit.scoring.folder import evaluate_predictions

    module = tmp_path / "relabel_format.py"
    module.write_text(_section_code(ROOT / "docs" / "design.md", "## 9. Adding a dataset format"))
    spec = importlib.util.spec_from_file_location("relabel_format", module)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fmt = mod.FORMAT
    assert isinstance(fmt, DatasetFormat) and fmt.name == "relabel" and fmt.classes.free == 0

    data, pred = tmp_path / "data", tmp_path / "pred"
    rng = np.random.default_rng(0)
    tokens = get_format("occ3d").open_split(tiny_occ3d_root, "all", load_images=False, load_gt=False).tokens
    cameras_from = os.path.relpath(tiny_occ3d_root, data)
    write_json_atomic(
        data / "relabel.json", {"cameras_from": cameras_from, "splits": {"train": tokens[:2], "val": tokens[2:]}}
    )
    truth = {}
    for t in tokens:
        truth[t] = rng.integers(0, 4, (200, 200, 16), dtype=np.uint8)
        truth[t][rng.random((200, 200, 16)) < 0.1] = 255
        save_npz_atomic(data / "labels" / f"{t}.npz", labels=truth[t])
    assert fmt.detection.detect(data) is not None and fmt.detection.detect(tmp_path) is None
    ds = fmt.open_split(data, "train", cameras=("CAM_FRONT", "CAM_BACK"))
    assert ds.tokens == tokens[:2] and ds.format_name == "relabel" and ds[1].images.shape == (2, 3, 24, 64)
    counts = count_frame_classes(ds, 4)
    assert counts.sum() == sum(int((truth[t] != 255).sum()) for t in tokens[:2])
    for t in tokens:
        right = np.where(truth[t] == 255, 0, truth[t]).astype(np.uint8)
        fmt.predictions.write(pred, t, right if t != tokens[-1] else np.zeros_like(right))
    scores = evaluate_predictions(fmt, data, pred, "all", progress=False)
    assert scores["benchmark"] == "relabel" and 0 < scores["miou"] < 100
    assert set(scores["iou"]) == {"ground", "object", "vegetation"}

    class NotTheLastFrame:  # a region: every voxel of the frames but the last, which is all wrong
        def __call__(self, token):
            return np.full((200, 200, 16), token != tokens[-1])

    inside = evaluate_predictions(fmt, data, pred, "all", progress=False, region=NotTheLastFrame())
    assert inside["miou"] == 100.0 and inside["geometry_iou"] == 100.0  # occkit applied the region


def test_the_test_count_has_one_source_the_readme():
    """How many tests pass is stated once, in README's "What to expect"; the documentation's pages link there
    rather than repeat a figure that the next run makes stale."""
    counted = re.compile(r"\b\d+ passed\b")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(counted.findall(readme)) == 1 and "What to expect" in readme
    bad = [
        f"{p.relative_to(ROOT)}:{n}: {m.group(0)}"
        for p in sorted((ROOT / "docs").rglob("*.md"))
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        for m in counted.finditer(line)
    ]
    assert not bad, "a test count outside README.md (link to its 'What to expect' instead):\n" + "\n".join(bad)
    assert "../README.md#install-and-first-run" in (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")


def test_the_commands_page_gives_the_demo_s_starts_as_its_help_does():
    """docs/commands.md's row of ``occkit demo`` names every ``--start`` and the default one its --help gives."""
    from occkit.commands import COMMANDS, build_parser

    parser = build_parser(tuple(c for c in COMMANDS if c[0] == "demo"))
    demo = next(a for a in parser._actions if a.dest == "command").choices["demo"]
    start = next(a for a in demo._actions if "--start" in a.option_strings)
    row = next(line for line in (ROOT / "docs" / "commands.md").read_text().splitlines() if "`occkit demo" in line)
    assert "[--start " + "\\|".join(start.choices) + "]" in row
    default = start.default or re.search(r"Default (\w+)", start.help).group(1)  # None: resolved by the command
    assert f"by default (`--start {default}`)" in row
    assert all(f"`--start {c}`" in row for c in start.choices if c != default)
