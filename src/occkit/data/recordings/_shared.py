"""What the ROS bag and point-file readers share (docs/labels.md, "ROS bags", "A folder of point files"):
the files their shared options (:class:`~occkit.data.recordings.spec.PointLabelOptions`,
:class:`~occkit.data.recordings.spec.EgoBoxOptions`) name, each read with a one-line error naming the
file and the line; and what a bag's clouds and cameras share (a message's stamp, a topic an option names).

Nothing heavy is imported at module level: ``occkit label --help`` lists these options without torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class Named(str):
    """A label field the user named (``--label-field``): a cloud or file that lacks it is refused, where the
    default ``label`` is read only where present."""


def check_label_field(field: str | None, sweeps: Sequence[Any], where: str) -> None:
    """A :class:`Named` ``--label-field`` that no sweep of a scene had is refused (one line naming ``where``);
    sweeps without it beside ones with it are a recording's unlabelled sweeps (its keyframes labelled)."""
    loaded = [s for s in sweeps if len(s.points)]
    if isinstance(field, Named) and loaded and all(s.labels is None for s in loaded):
        raise ValueError(f"{where}: no point has the field {str(field)!r} (--label-field): no point labels to read")


def label_field_option(field: str | None) -> str | None:
    """``--label-field``: :class:`Named` when given, ``'label'`` (read where present) when not, None for
    ``--label-field ''`` (no point labels)."""
    if field is None:
        return "label"
    return Named(field) if field else None


#: The ego box of a recording that names none (rig.json's default, nuScenes' car).
DEFAULT_EGO = ((4.1, 1.9, 1.8), (0.9, 0.0, 0.9))


def _first_line(e: BaseException) -> str:
    """An error's first line (a library's message may run to many: it is quoted in one-line errors)."""
    return (str(e).strip().splitlines() or [""])[0]


def library(module: str, why: str, name: str = "", extra: str = "rosbag") -> Any:
    """The optional library ``module`` (``name`` in words), or an ``ImportError`` line saying that ``why``
    needs it and how to install it."""
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f"{why} needs {name or module} ({e}): pip install 'occkit[{extra}]'") from None


def stamp_ns(stamp: Any) -> int:
    """A ``builtin_interfaces/Time`` (ROS 2: sec, nanosec) or ROS 1 time (sec, nanosec in rosbags) in nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def listing(topics: Mapping[str, str]) -> str:
    """A bag's topics and their types, for a message."""
    return ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"


def require_topic(bag: Path, topics: Mapping[str, str], topic: str, flag: str, types: tuple[str, ...]) -> None:
    """Refuse a topic an option names (``flag``) that the bag lacks or that holds none of ``types``."""
    if topic not in topics:
        raise ValueError(f"{bag}: no topic {topic} ({flag}); its topics: {listing(topics)}")
    if topics[topic] not in types:
        raise ValueError(f"{bag}: topic {topic} holds {topics[topic]}, not {' or '.join(types)} ({flag})")


def read_lines(path: str | Path, what: str) -> list[tuple[int, str]]:
    """The non-blank lines of a text file that are not ``#`` comments, with their line numbers."""
    f = Path(path)
    if not f.is_file():
        raise FileNotFoundError(f"{what} {f}: no such file")
    from occkit.fileio import read_utf8_text

    text = read_utf8_text(f, what, ValueError)
    return [(i, s.strip()) for i, s in enumerate(text.splitlines(), 1) if s.strip() and not s.strip().startswith("#")]


def read_stamps(path: str | Path, what: str = "--keyframes") -> list[int]:
    """A file of integer stamps (nanoseconds), one a line."""
    out = []
    for i, s in read_lines(path, what):
        try:
            out.append(int(s))
        except ValueError:
            raise ValueError(f"{what} {path}: line {i}: {s!r} is not a stamp in nanoseconds (an integer)") from None
    if not out:
        raise ValueError(f"{what} {path}: holds no stamp (one integer in nanoseconds a line)")
    return out


def read_yaml(path: Path, where: str, what: str) -> Any:
    """What the YAML (or JSON, which YAML reads) file ``path``, a ``what`` (``"cameras.yaml"``), holds; a file
    that is missing, not UTF-8 or not YAML refused in one line (naming ``where``: the option and the file)."""
    import yaml

    from occkit.fileio import read_utf8_text

    try:
        return yaml.safe_load(read_utf8_text(path, what, ValueError))
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not YAML or JSON ({str(e).splitlines()[0]})") from None


def read_classes(f: str | None) -> tuple[str, ...]:
    """The class table of the point labels: ``--classes FILE`` (a YAML or JSON list of names, or a
    mapping ``{0: name, 1: name, ...}``), else Occ3D's 17 classes (the rig's default table)."""
    if not f:
        from occkit.labels import OCC3D_CLASSES, OCC3D_FREE

        return tuple(OCC3D_CLASSES[:OCC3D_FREE])
    path = Path(f)
    if not path.is_file():
        raise FileNotFoundError(f"--classes {path}: no such file")
    data = read_yaml(path, f"--classes {path}", "--classes")
    if isinstance(data, dict):  # {id: name}, the ids 0..n-1 (JSON's keys are strings: "0")
        ids = {int(k) if isinstance(k, int) or (isinstance(k, str) and k.isdigit()) else -1: v for k, v in data.items()}
        data = [ids[i] for i in range(len(ids))] if set(ids) == set(range(len(data))) else None
    if not isinstance(data, list) or not data or not all(isinstance(c, str) and c for c in data):
        raise ValueError(f"--classes {path}: want a list of class names (id 0 first), or {{0: name, 1: name, ...}}")
    if len(set(data)) != len(data):
        raise ValueError(f"--classes {path}: a class name is given twice")
    return tuple(data)


def read_ego_box(s: str | None) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``--ego-box 'L W H X Y Z'``: the vehicle's size and centre (the default, nuScenes' car, when not given)."""
    if not s:
        return DEFAULT_EGO
    try:
        v = [float(x) for x in str(s).replace(",", " ").split()]
    except ValueError:
        v = []
    if len(v) != 6 or min(v[:3]) <= 0 or not all(abs(x) < 1e3 for x in v):
        raise ValueError(f"--ego-box {s!r}: want 'L W H X Y Z' (a positive size, then the centre; metres)")
    return (v[0], v[1], v[2]), (v[3], v[4], v[5])


def matrix(translation: Sequence[float], rotation_wxyz: Sequence[float], kind: str, where: str):
    """A ``(4, 4)`` float64 numpy transform from a translation and a unit quaternion (w, x, y, z), read as a
    rig folder's poses are (:class:`~occkit.data.rig_schema.Pose`'s rules, :mod:`occkit.data.rig`'s
    arithmetic: the same bits); bad input: one line starting with ``where``."""
    from occkit.data.rig_schema import EgoPose, Pose
    from occkit.geometry.transforms import checked_pose
    from occkit.schema import validate

    pose = {"translation": list(translation), "rotation": list(rotation_wxyz)}
    validate(EgoPose if kind == "ego_pose" else Pose, pose, where)
    return checked_pose(translation, rotation_wxyz, kind, where).numpy()
