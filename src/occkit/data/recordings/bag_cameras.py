"""The cameras of a ROS bag (docs/labels.md, "ROS bags", "Cameras"): found, calibrated, matched to the
keyframes and written beside the labels.

A camera is a ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` topic with a
``sensor_msgs/CameraInfo`` topic in its namespace (``/ns/image_raw``, ``/ns/image_raw/compressed``,
``/ns/image_rect_color`` ... beside ``/ns/camera_info``), named after the namespace (``/ns`` -> ``ns``;
``/a/b`` -> ``a_b``), found by itself or chosen with ``--cameras TOPIC,...``.

- Intrinsics: CameraInfo's K (a rectified topic, ``image_rect*``: P's left 3 x 3, and R's rotation
  applied to the extrinsic). Distorted images (``plumb_bob``, ``rational_polynomial``, ``equidistant``
  with a distortion that is not all zeros) are undistorted to a pinhole with OpenCV as they are written,
  the new K (OpenCV's optimal one, alpha 0: every pixel seen) recorded instead.
- Extrinsics: tf from the ego frame to the image header's frame at the image's stamp. An optical frame
  (REP 103: z forward, x right, y down; OpenCV's axes, occkit's) is taken as it is; a camera body frame
  (x forward, y left, z up) is turned to optical axes. ``--camera-axes auto`` (the default) tells them
  by the frame's name: ``*_optical_frame`` or ``*_optical`` is optical, any other a body frame.
- Each keyframe takes each camera's image nearest its cloud's stamp within ``--camera-tolerance``
  seconds (default: half that camera's period); a camera without one there is missing at that keyframe.

One pass over the bag's camera topics (CameraInfo, the images' headers, tf) checks everything a
label run needs before any folder is made (:func:`plan_cameras`); a second pass writes the keyframes'
images as they come (:func:`write_images`): compressed ones byte for byte, raw ones as PNG.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from occkit.data.recordings._shared import library, require_topic, stamp_ns

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)

#: Raw image encodings read, and their channels (sensor_msgs/image_encodings).
ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
#: Compressed formats read, and the written file's extension.
FORMATS = {"jpeg": ".jpg", "png": ".png"}
#: CameraInfo distortion models undistorted, and the number of coefficients each takes.
MODELS = {"plumb_bob": (4, 5), "rational_polynomial": (8,), "equidistant": (4,)}
#: Frame name suffixes of optical frames (REP 103).
OPTICAL_SUFFIXES = ("_optical_frame", "_optical")
#: ``--camera-axes``'s values.
AXES = ("auto", "optical", "body")
#: A body frame (x forward, y left, z up) from the optical frame (z forward, x right, y down): the columns
#: are the optical axes in body coordinates.
R_BODY_FROM_OPTICAL = ((0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0))
#: JPEG quality of an undistorted JPEG written again.
JPEG_QUALITY = 95


@dataclass(frozen=True)
class CameraTopic:
    """A camera of a bag: its name (a folder name), image topic, CameraInfo topic, and kind."""

    name: str
    topic: str
    info: str
    compressed: bool
    rectified: bool


def namespace(topic: str) -> str:
    """An image topic's namespace: ``/ns/image_raw`` and ``/ns/image_raw/compressed`` -> ``/ns``."""
    return topic.removesuffix("/compressed").rsplit("/", 1)[0]


def camera_name(ns: str) -> str:
    """A namespace as a camera's folder name: ``/ns`` -> ``ns``, ``/a/b`` -> ``a_b``, other characters ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", ns.strip("/").replace("/", "_"))
    return name if name.strip(".") else "camera"


def _base(topic: str) -> str:
    """An image topic's last name: ``/ns/image_raw/compressed`` -> ``image_raw``."""
    return topic.removesuffix("/compressed").rsplit("/", 1)[-1]


def _rank(topic: str, compressed: bool) -> tuple[int, int, str]:
    """Which of a namespace's image topics is taken: rectified colour first, then rectified, colour, raw,
    any other; a compressed one before the raw one of the same image."""
    order = ("image_rect_color", "image_rect", "image_color", "image_raw")
    b = _base(topic)
    return (order.index(b) if b in order else len(order), 0 if compressed else 1, topic)


def _topic_of(topics: Mapping[str, str], t: str) -> CameraTopic | None:
    ns = namespace(t)
    info = f"{ns}/camera_info"
    if topics.get(info) != INFO:
        return None
    return CameraTopic(camera_name(ns), t, info, topics[t] == COMPRESSED, _base(t).startswith("image_rect"))


def find_cameras(bag: Path, topics: Mapping[str, str], wanted: str | None) -> tuple[list[CameraTopic], list[str]]:
    """The cameras of ``bag`` (``topics``: each topic's message type): the image topics ``wanted``
    names (``--cameras``; ``''``: none), else every image topic with a CameraInfo in its namespace
    (one a namespace, :func:`_rank`); and notes on image topics left out. Bad input: one line naming
    the bag, the topic and the cause."""
    notes: list[str] = []
    if wanted is not None:
        named = list(dict.fromkeys(t.strip() for t in wanted.split(",") if t.strip()))
        cams = []
        for t in named:
            require_topic(bag, topics, t, "--cameras", IMAGE_TYPES)
            cam = _topic_of(topics, t)
            if cam is None:
                raise ValueError(
                    f"{bag}: image topic {t} has no {INFO} topic {namespace(t)}/camera_info in its namespace "
                    "(--cameras): its intrinsics are unknown"
                )
            cams.append(cam)
    else:
        by_ns: dict[str, list[CameraTopic]] = {}
        for t in sorted(t for t, m in topics.items() if m in IMAGE_TYPES):
            cam = _topic_of(topics, t)
            if cam is None:
                notes.append(f"image topic {t} left out: no {INFO} topic {namespace(t)}/camera_info beside it")
                continue
            by_ns.setdefault(namespace(t), []).append(cam)
        cams = []
        for ns, several in by_ns.items():
            several.sort(key=lambda c: _rank(c.topic, c.compressed))
            cams.append(several[0])
            if len(several) > 1:
                others = ", ".join(c.topic for c in several[1:])
                notes.append(f"camera {several[0].name}: {several[0].topic} taken, not {others} (--cameras chooses)")
    seen: dict[str, str] = {}
    for c in cams:
        if c.name in seen:
            raise ValueError(
                f"{bag}: image topics {seen[c.name]} and {c.topic} are both camera {c.name!r} (one camera a "
                "namespace): name one with --cameras"
            )
        seen[c.name] = c.topic
    return cams, notes


# ---- calibration -------------------------------------------------------------------------------------


def _field(msg: Any, name: str) -> Any:
    """A CameraInfo field by its ROS 2 name (``k``) or its ROS 1 one (``K``)."""
    return getattr(msg, name) if hasattr(msg, name) else getattr(msg, name.upper())


@dataclass
class Calibration:
    """A camera's pinhole calibration as written: ``K`` (3, 3) of the written images, ``size`` (H, W);
    ``R_cam_from_image`` (3, 3): the rectified image's axes in the header frame's (a rectified topic's R
    transposed; else the identity); and what undistorts a raw image (``K_raw``, ``D``, ``model``; ``D``
    None: none needed)."""

    K: Any
    size: tuple[int, int]
    R_cam_from_image: Any
    K_raw: Any = None
    D: Any = None
    model: str = ""


def calibration(cam: CameraTopic, msg: Any, where: str) -> Calibration:
    """A camera's :class:`Calibration` from its first CameraInfo ``msg``; bad input: one line naming ``where``."""
    import numpy as np

    H, W = int(msg.height), int(msg.width)
    if H <= 0 or W <= 0:
        raise ValueError(f"{where}: image size {W} x {H} (width x height): not an image's")
    K = np.array(_field(msg, "k"), np.float64).reshape(3, 3)
    P = np.array(_field(msg, "p"), np.float64).reshape(3, 4)
    R = np.array(_field(msg, "r"), np.float64).reshape(3, 3)
    model = str(msg.distortion_model or "")
    D = np.array(_field(msg, "d"), np.float64).reshape(-1)
    if cam.rectified:
        Kr = _pinhole(P[:, :3], where, "P", f"a rectified topic ({cam.topic}) takes its intrinsics from P")
        rot = R if np.isfinite(R).all() and abs(np.linalg.det(R) - 1) < 1e-3 else np.eye(3)  # unset R: none
        return Calibration(K=Kr.copy(), size=(H, W), R_cam_from_image=rot.T.copy())
    _pinhole(K, where, "K", "an uncalibrated camera (its intrinsics are unknown)")
    if not np.isfinite(D).all():
        raise ValueError(f"{where}: the distortion D holds NaN or infinity")
    if not D.any():  # no distortion (of any model): the images are a pinhole's as they are
        return Calibration(K=K, size=(H, W), R_cam_from_image=np.eye(3))
    if len(D) not in MODELS.get(model, ()):
        takes = ", ".join(f"{m} with {' or '.join(map(str, n))}" for m, n in MODELS.items())
        raise ValueError(f"{where}: distortion model {model!r} with {len(D)} coefficients: occkit undistorts {takes}")
    cv2 = library("cv2", f"{where}: undistorting {model} images", "OpenCV")
    if model == "equidistant":
        newK = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            K, D.reshape(4, 1), (W, H), np.eye(3), balance=0.0
        )
    else:
        newK, _ = cv2.getOptimalNewCameraMatrix(K, D, (W, H), 0.0, (W, H))
    newK = np.asarray(newK, np.float64)
    if not np.isfinite(newK).all() or newK[0, 0] <= 0 or newK[1, 1] <= 0:
        raise ValueError(f"{where}: {model} distortion {D.tolist()} leaves no pinhole image (OpenCV finds none)")
    return Calibration(K=newK, size=(H, W), R_cam_from_image=np.eye(3), K_raw=K, D=D, model=model)


def _pinhole(K: Any, where: str, name: str, unset: str) -> Any:
    """Refuse a camera matrix (``name``: K, or a rectified topic's P) that is unset (all zeros: ``unset`` says
    what that means) or not a pinhole's; return it."""
    import numpy as np

    if not np.isfinite(K).all() or not K.any():
        raise ValueError(f"{where}: {name} is all zeros: {unset}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1:
        what = "P's left 3 x 3" if name == "P" else name
        raise ValueError(f"{where}: {what} {K.tolist()} is not a camera's (fx, fy > 0 and a last row 0 0 1)")
    return K


def undistort_maps(cal: Calibration) -> Any:
    """OpenCV's remap tables from the raw image to the pinhole one (None: no undistortion)."""
    if cal.D is None:
        return None
    import numpy as np

    cv2 = library("cv2", "undistorting camera images", "OpenCV")
    H, W = cal.size
    if cal.model == "equidistant":
        D = cal.D.reshape(4, 1)
        return cv2.fisheye.initUndistortRectifyMap(cal.K_raw, D, np.eye(3), cal.K, (W, H), cv2.CV_16SC2)
    return cv2.initUndistortRectifyMap(cal.K_raw, cal.D, None, cal.K, (W, H), cv2.CV_16SC2)


def camera_axes(frame: str, axes: str) -> str:
    """``optical`` or ``body``: the frame's axes by ``--camera-axes`` (``auto``: by the frame's name)."""
    if axes in ("optical", "body"):
        return axes
    return "optical" if frame.endswith(OPTICAL_SUFFIXES) else "body"


# ---- images ------------------------------------------------------------------------------------------


@dataclass
class _Meta:
    """What the check pass keeps of one image message: its order on the topic, stamp, frame, kind
    (an encoding or a compressed format), size (H, W; None: not read) and what is wrong with it."""

    ordinal: int
    stamp: int
    frame: str
    kind: str
    size: tuple[int, int] | None
    problem: str = ""


def _compressed_format(fmt: str, data: bytes) -> str | None:
    """``jpeg`` or ``png`` from a CompressedImage's format (``jpeg``, ``bgr8; jpeg compressed bgr8`` ...), else
    from its bytes; None: another format."""
    f = fmt.lower()
    if "compresseddepth" in f.replace(" ", ""):
        return None
    for name, words in (("jpeg", ("jpeg", "jpg")), ("png", ("png",))):
        if any(w in f for w in words):
            return name
    if not f.strip():
        if data[:3] == b"\xff\xd8\xff":
            return "jpeg"
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return "png"
    return None


def _meta(cam: CameraTopic, ordinal: int, msg: Any) -> _Meta:
    """An image message's :class:`_Meta` (a compressed image's size read from its header, not decoded)."""
    stamp, frame = stamp_ns(msg.header.stamp), str(msg.header.frame_id).lstrip("/")
    if not cam.compressed:
        enc = str(msg.encoding)
        H, W, step = int(msg.height), int(msg.width), int(msg.step)
        problem = ""
        if enc in ENCODINGS and (step < W * ENCODINGS[enc] or len(msg.data) < step * H):
            problem = f"its data holds {len(msg.data)} bytes, less than {H} rows of {step} bytes ({W} x {H} {enc})"
        return _Meta(ordinal, stamp, frame, enc, (H, W), problem)
    data = bytes(msg.data)
    kind = _compressed_format(str(msg.format), data[:16])
    if kind is None:
        return _Meta(ordinal, stamp, frame, str(msg.format) or "?", None)
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            W, H = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        return _Meta(ordinal, stamp, frame, kind, None, f"does not decode as {kind} ({type(e).__name__}: {e})")
    return _Meta(ordinal, stamp, frame, kind, (H, W))


@dataclass
class ScenePlan:
    """A bag's cameras for one scene: the scene record's :class:`~occkit.data.scene_record.Camera` by
    name, each camera's calibration and topic, and the images the keyframes take: ``chosen[camera]
    [ordinal on its topic] = [keyframe tokens]``; ``missing[camera]``: keyframes without an image."""

    cameras: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, CameraTopic] = field(default_factory=dict)
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    chosen: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)

    def notes(self) -> dict[str, Any]:
        """What ``report.json`` says of each camera: its topic, the tolerance used, the keyframes without an
        image, whether its images are undistorted, and the K recorded."""
        return {
            name: {
                "topic": self.topics[name].topic,
                "tolerance_s": round(self.tolerance[name], 6),
                "keyframes_missing": self.missing[name],
                "undistorted": self.calibrations[name].model or None,
                "K": [[round(float(v), 6) for v in row] for row in self.calibrations[name].K],
            }
            for name in self.topics
        }


def plan_cameras(
    bag: Path,
    cams: list[CameraTopic],
    keyframes: list[tuple[int, str]],
    ego: str,
    tolerance: float | None,
    axes: str,
    messages: Iterable[tuple[str, Any]],
    tf: Any,
) -> ScenePlan:
    """The cameras ``cams`` of ``bag`` for a scene whose keyframes are ``(stamp ns, token)``, from one pass
    over ``messages`` (``(topic, message)`` of their image and CameraInfo topics in the bag's order, each
    topic holding one or more, while the bag's tf fills ``tf``, the reader's tf tree: ``lookup(a, b, stamp,
    what)``): images' headers read, nothing decoded, every check a label run needs made (one line naming the
    bag, the topic and the cause)."""
    import numpy as np

    from occkit.data.scene_record import Camera

    plan = ScenePlan()
    if not cams:
        return plan
    infos: dict[str, Any] = {}
    metas: dict[str, list[_Meta]] = {c.name: [] for c in cams}
    by_topic = {c.topic: c for c in cams}
    info_topics = {c.info for c in cams}
    for t, msg in messages:
        if t in by_topic:
            cam = by_topic[t]
            metas[cam.name].append(_meta(cam, len(metas[cam.name]), msg))
        elif t in info_topics and t not in infos:
            infos[t] = msg
    for cam in cams:
        cal = calibration(cam, infos[cam.info], f"{bag}: {cam.info}")
        rows = metas[cam.name]
        chosen, missing, tol = _choose(bag, cam, rows, keyframes, tolerance)
        first = None
        for ordinal in chosen:
            m = rows[ordinal]
            _check_image(bag, cam, cal, m)
            what = f"camera {cam.name}: its image on {cam.topic} at stamp {m.stamp} ns, frame {m.frame!r}"
            T = tf.lookup(ego, m.frame, m.stamp, what)
            if first is None:
                first = (T, m.frame)
        T, frame = first
        R = np.eye(4)
        if camera_axes(frame, axes) == "body":
            R[:3, :3] = np.asarray(R_BODY_FROM_OPTICAL)
        Rimg = np.eye(4)
        Rimg[:3, :3] = cal.R_cam_from_image
        plan.cameras[cam.name] = Camera(
            name=cam.name, K=cal.K, T_ego_from_cam=np.asarray(T, np.float64) @ R @ Rimg, image_size=cal.size
        )
        plan.topics[cam.name] = cam
        plan.calibrations[cam.name] = cal
        plan.chosen[cam.name] = chosen
        plan.missing[cam.name] = missing
        plan.tolerance[cam.name] = tol
    return plan


def _choose(
    bag: Path, cam: CameraTopic, rows: list[_Meta], keyframes: list[tuple[int, str]], tolerance: float | None
) -> tuple[dict[int, list[str]], int, float]:
    """Each keyframe's image: the one nearest its stamp within the tolerance (``--camera-tolerance``, else
    half the camera's period: the median step between its stamps); ``(chosen, missing keyframes, tolerance)``."""
    import numpy as np

    order = sorted(range(len(rows)), key=lambda i: rows[i].stamp)
    stamps = [rows[i].stamp for i in order]
    if tolerance is None:
        steps = np.diff(np.unique(stamps))
        if not len(steps):  # one image: half the keyframes' step, or any keyframe
            kf = np.diff([k for k, _ in keyframes])
            tol_ns = float(np.median(kf)) / 2 if len(kf) else float("inf")
        else:
            tol_ns = float(np.median(steps)) / 2
    else:
        tol_ns = tolerance * 1e9
    chosen: dict[int, list[str]] = {}
    missing = 0
    for k, token in keyframes:
        j = bisect.bisect_left(stamps, k)
        near = [i for i in (j - 1, j) if 0 <= i < len(stamps)]
        best = min(near, key=lambda i: (abs(stamps[i] - k), i))
        if abs(stamps[best] - k) <= tol_ns:
            chosen.setdefault(order[best], []).append(token)
        else:
            missing += 1
    if not chosen:
        said = "--camera-tolerance" if tolerance is not None else "half its period; --camera-tolerance S"
        raise ValueError(
            f"{bag}: camera {cam.name} ({cam.topic}): no image within {tol_ns / 1e9:.3g} s ({said}) of any keyframe "
            f"(its images: {stamps[0]}..{stamps[-1]} ns; the keyframes: {keyframes[0][0]}..{keyframes[-1][0]} ns)"
        )
    return chosen, missing, tol_ns / 1e9


def _check_image(bag: Path, cam: CameraTopic, cal: Calibration, m: _Meta) -> None:
    at = f"{bag}: {cam.topic}: the image at stamp {m.stamp} ns"
    if m.problem:
        raise ValueError(f"{at}: {m.problem}")
    kinds, kind = (FORMATS, "format") if cam.compressed else (ENCODINGS, "encoding")
    if m.kind not in kinds:
        raise ValueError(f"{at}: {kind} {m.kind!r} is not one occkit reads ({', '.join(kinds)})")
    if m.size != cal.size:
        (h, w), (H, W) = m.size, cal.size
        raise ValueError(f"{at}: {w} x {h} pixels, but its CameraInfo {cam.info} says {W} x {H} (width x height)")


# ---- writing -----------------------------------------------------------------------------------------


def write_images(
    bag: Path, plan: ScenePlan, out: Path, messages: Callable[[set[str]], Iterable[tuple[str, Any]]]
) -> dict[str, dict[str, str]]:
    """The keyframes' images of ``plan`` written under ``out`` as ``samples/<camera>/<token>.<ext>`` as they
    come (compressed ones byte for byte, or undistorted and encoded again; raw ones as PNG), read from
    ``messages(topics)`` (``(topic, message)`` of those topics in the bag's order, as :func:`plan_cameras`
    read them); returns ``{token: {camera: path relative to out}}``. A compressed image that does not
    decode: one line."""
    from occkit.fileio import write_bytes_atomic

    if not plan.chosen:
        return {}
    maps = {name: undistort_maps(cal) for name, cal in plan.calibrations.items()}
    by_topic = {plan.topics[n].topic: n for n in plan.chosen}
    left = {n: set(c) for n, c in plan.chosen.items()}
    seen = dict.fromkeys(plan.chosen, 0)
    paths: dict[str, dict[str, str]] = {}
    stream = iter(messages(set(by_topic)))
    try:
        for t, msg in stream:
            name = by_topic[t]
            ordinal = seen[name]
            seen[name] += 1
            if ordinal not in left[name]:
                continue
            left[name].discard(ordinal)
            data, ext = _encoded(bag, plan.topics[name], msg, maps[name])
            for token in plan.chosen[name][ordinal]:
                rel = f"samples/{name}/{token}{ext}"
                write_bytes_atomic(out / rel, data)
                paths.setdefault(token, {})[name] = rel
            if not any(left.values()):
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # the bag closed at once, the rest of it unread
    return paths


def _encoded(bag: Path, cam: CameraTopic, msg: Any, maps: Any) -> tuple[bytes, str]:
    """An image message as the bytes of the file written and its extension: a compressed image as it is
    (checked to decode), or undistorted and encoded again in its format; a raw one as PNG."""
    import io

    import numpy as np
    from PIL import Image

    at = f"{bag}: {cam.topic}: the image at stamp {stamp_ns(msg.header.stamp)} ns"
    if cam.compressed:
        data = bytes(msg.data)
        kind = _compressed_format(str(msg.format), data[:16]) or "jpeg"
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                pixels = np.asarray(im) if maps is not None else None
        except Exception as e:  # noqa: BLE001 - whatever PIL raises of a broken image is named
            raise ValueError(f"{at}: does not decode as {kind} ({type(e).__name__}: {e})") from None
        if maps is None:
            return data, FORMATS[kind]
        return _encode(_remap(pixels, maps), FORMATS[kind]), FORMATS[kind]
    enc = str(msg.encoding)
    H, W, step, ch = int(msg.height), int(msg.width), int(msg.step), ENCODINGS[enc]
    rows = np.asarray(msg.data, np.uint8)[: step * H].reshape(H, step)[:, : W * ch]
    pixels = rows.reshape(H, W, ch) if ch > 1 else rows.reshape(H, W)
    if enc.startswith("bgr"):  # written red, green, blue
        pixels = pixels[..., [2, 1, 0, 3][:ch]]
    if maps is not None:
        pixels = _remap(pixels, maps)
    return _encode(pixels, ".png"), ".png"


def _remap(pixels: Any, maps: Any) -> Any:
    """An image undistorted by OpenCV's remap tables (bilinear; outside the raw image: black)."""
    import numpy as np

    cv2 = library("cv2", "undistorting camera images", "OpenCV")
    return cv2.remap(np.ascontiguousarray(pixels), maps[0], maps[1], cv2.INTER_LINEAR)


def _encode(pixels: Any, ext: str) -> bytes:
    """Pixels (H, W) grey or (H, W, 3 or 4) RGB[A] as a PNG or JPEG file's bytes (PIL)."""
    import io

    import numpy as np
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(pixels))
    buf = io.BytesIO()
    if ext == ".jpg":
        im.convert("RGB" if im.mode in ("RGBA", "P") else im.mode).save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        im.save(buf, format="PNG")
    return buf.getvalue()
