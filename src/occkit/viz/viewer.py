"""The live 3D viewer of ``occkit view``: a ``viser`` server showing frames of occupancy.

What is drawn is decided by the pure functions of :mod:`occkit.viz.viewer_scene`; this module
only sends their arrays to the browser and wires the controls:

- voxels: one instanced-box node per class (``/voxels/<class>``, only surface voxels, per-voxel
  colours), so a class toggle is one visibility message;
- cameras: a frustum per camera with its image; LiDAR points coloured by class;
- controls: frame slider (and previous / next), view (ground truth, prediction, side by side,
  errors), visibility mask and what happens outside it, class toggles, cameras and LiDAR on/off;
  with a text query (a ``langocc`` run), a text box whose matches are coloured by similarity.

:func:`write_html` records every frame (one second each) into one self-contained HTML file that
viser's own client plays without a Python server: a time slider steps through the frames and the
scene tree toggles classes, cameras and LiDAR.

``viser`` is an optional dependency (``pip install 'occkit[view]'``); importing this module
without it raises ``ImportError`` naming the extra.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occkit.fileio import atomic_write
from occkit.geometry.grid import Grid
from occkit.viz.draw import BACKGROUND
from occkit.viz.viewer_scene import (
    CORRECT,
    ERROR_COLORS,
    ERROR_NAMES,
    MASK_MODES,
    VIEWS,
    ClassStyle,
    FrameData,
    VoxelLayer,
    box_mesh,
    camera_frustums,
    compare_grids,
    error_counts,
    images_small,
    lidar_colors,
    side_offset,
    similarity_colors,
    voxel_layer,
)

try:
    import viser
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"occkit view needs viser ({e}): pip install 'occkit[view]'") from e

#: A text query: ``(frame index, text) -> (centres (M, 3) float32, similarity (M,) float)`` of the
#: frame's occupied voxels.
QueryFn = Callable[[int, str], tuple[np.ndarray, np.ndarray]]


@dataclass
class ViewState:
    """What the controls ask for (the same fields drive :func:`write_html`)."""

    view: str = "ground truth"
    mask: str = "none"
    mask_mode: str = "show"
    cameras: bool = True
    lidar: bool = True
    hidden: frozenset[int] = frozenset()
    style: ClassStyle = field(kw_only=True)
    """The class table drawn (names, colours, free): the dataset format's (:meth:`ClassStyle.of`)."""


class FrameCache:
    """Frames by index through ``load(i) -> FrameData``, the last ``size`` kept in memory."""

    def __init__(self, load: Callable[[int], FrameData], count: int, size: int = 4) -> None:
        self.load, self.count, self.size = load, count, size
        self._frames: OrderedDict[int, FrameData] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> FrameData:
        with self._lock:
            if i in self._frames:
                self._frames.move_to_end(i)
                return self._frames[i]
        f = self.load(i)
        with self._lock:
            self._frames[i] = f
            while len(self._frames) > self.size:
                self._frames.popitem(last=False)
        return f


def check_port_free(host: str, port: int) -> None:
    """Raise ``ValueError`` naming ``host:port`` when something already listens there (viser
    itself would silently move to the next port)."""
    if not 0 <= port <= 65535:
        raise ValueError(f"--port {port}: not a port number (0-65535)")
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise ValueError(
                f"--port {port}: {host}:{port} is in use or not available ({e.strerror or e}); "
                "choose another with --port"
            ) from e


def start_server(host: str, port: int) -> viser.ViserServer:
    """A viser server on exactly ``host:port`` (port 0: any free one); ``ValueError`` when that
    port is taken."""
    check_port_free(host, port)
    with contextlib.redirect_stdout(io.StringIO()):  # viser prints its own URL box; the command prints the URL
        server = viser.ViserServer(host=host, port=port, verbose=False)
    if port and server.get_port() != port:  # taken between the check and the start
        stop_server(server)
        raise ValueError(f"--port {port}: {host}:{port} is in use; choose another with --port")
    setup_scene(server)
    return server


def setup_scene(server: viser.ViserServer) -> None:
    """z up; a dark background (occkit's panels', so the near-white classes stay visible); plain
    lights instead of viser's environment map (which the client would fetch from the internet):
    a top face is lit to about its palette colour, side faces darker. (three.js divides diffuse
    light by pi: ambient + sun * cos(sun, up) = pi gives a top face its albedo.)"""
    server.scene.set_up_direction("+z")
    server.scene.world_axes.visible = False
    server.scene.configure_environment_map(hdri=None)
    server.scene.configure_default_lights(enabled=False)
    server.scene.add_light_ambient("/lights/ambient", intensity=1.3)
    server.scene.add_light_directional("/lights/sun", intensity=2.0, position=(-15.0, 10.0, 40.0))  # cos 0.91
    server.scene.set_background_image(np.full((2, 2, 3), BACKGROUND, np.uint8), format="png")


def stop_server(server: viser.ViserServer) -> None:
    """Stop ``server`` without viser's own message."""
    with contextlib.redirect_stdout(io.StringIO()):
        server.stop()


def _view_from_above(server: viser.ViserServer, grid: Grid, side_by_side: bool) -> None:
    """Behind (-x) and above the grid's centre, at a distance in proportion to its size (an Occ3D
    grid, 80 m wide: 38 m behind, 42 m up; a NYUv2 room, 4.8 m: 2.3 m and 2.5 m)."""
    s = (grid.range_max[0] - grid.range_min[0]) / 80.0
    cx = (grid.range_min[0] + grid.range_max[0]) / 2
    cy = (grid.range_min[1] + grid.range_max[1]) / 2 - (side_offset(grid) / 2 if side_by_side else 0.0)
    server.initial_camera.look_at = (cx, cy, 0.0)
    server.initial_camera.position = (
        cx - 38.0 * s,
        cy + (30.0 if not side_by_side else 50.0) * s,
        (42.0 if not side_by_side else 60.0) * s,
    )
    server.initial_camera.up = (0.0, 0.0, 1.0)


def draw_voxels(
    scene,
    layer: VoxelLayer,
    grid: Grid,
    hidden: frozenset[int] = frozenset(),
    prefix: str = "/voxels",
    *,
    name_of: Callable[[int], str],
) -> dict:
    """One instanced-box node per class under ``prefix`` (``prefix/<name_of(class)>``); returns the
    handles by class id. Classes in ``hidden`` are sent invisible."""
    vertices, faces = box_mesh(tuple(s * 0.98 for s in grid.voxel_size))
    handles = {}
    for c, part in layer.by_class().items():
        wxyz = np.zeros((len(part), 4), np.float32)
        wxyz[:, 0] = 1.0
        handles[c] = scene.add_batched_meshes_simple(
            f"{prefix}/{name_of(c)}",
            vertices,
            faces,
            batched_wxyzs=wxyz,
            batched_positions=part.centres,
            batched_colors=part.colors,
            lod="off",
            cast_shadow=False,
            receive_shadow=False,
            visible=c not in hidden,
        )
    return handles


def draw_sensors(scene, frame: FrameData, state: ViewState, frustum_scale: float = 1.5) -> None:
    """Camera frustums with their images (``/cameras/<name>``, ``frustum_scale`` metres deep) and
    LiDAR points (``/lidar``)."""
    if frame.images is not None and frame.intrinsics is not None and frame.T_ego_from_cam is not None:
        hw = frame.images.shape[1:3]
        small = images_small(frame.images)
        for name, fr, img in zip(frame.cam_names, camera_frustums(frame.intrinsics, frame.T_ego_from_cam, hw), small):
            scene.add_camera_frustum(
                f"/cameras/{name}",
                fov=fr["fov"],
                aspect=fr["aspect"],
                scale=frustum_scale,
                image=img,
                format="jpeg",
                wxyz=fr["wxyz"],
                position=fr["position"],
                color=(240, 240, 240),
                visible=state.cameras,
            )
    if frame.lidar is not None and len(frame.lidar):
        pts = np.ascontiguousarray(frame.lidar[:, :3], dtype=np.float32)
        scene.add_point_cloud(
            "/lidar",
            pts,
            lidar_colors(pts, frame.lidar_labels, palette=state.style.palette),
            point_size=0.08,
            visible=state.lidar,
        )


def draw_frame(scene, frame: FrameData, grid: Grid, state: ViewState) -> tuple[VoxelLayer, dict]:
    """Everything of one frame under the current ``state``; returns the voxel layer drawn and
    its nodes by class id."""
    st = state.style
    layer = voxel_layer(
        frame, state.view, grid, mask=state.mask, mask_mode=state.mask_mode, palette=st.palette, free=st.free
    )
    scene.remove_by_name("/voxels")
    scene.remove_by_name("/query")
    handles = draw_voxels(scene, layer, grid, state.hidden, name_of=st.node_name)
    if state.view == "side by side":
        off = side_offset(grid)
        top = grid.range_max[2] + 1.0
        scene.add_label("/titles/ground truth", "ground truth", position=(0.0, 0.0, top))
        scene.add_label("/titles/prediction", "prediction", position=(0.0, -off, top))
    else:
        scene.remove_by_name("/titles")
    # 1.5 m deep, less in a grid narrower than 20 m (a room)
    draw_sensors(scene, frame, state, 1.5 * min(1.0, (grid.range_max[0] - grid.range_min[0]) / 20.0))
    return layer, handles


class Viewer:
    """The controls and the scene of ``occkit view`` on a running server.

    Args:
        server: from :func:`start_server`.
        frames: the frames (``FrameCache`` or any sequence of :class:`FrameData`).
        grid: the voxel grid.
        has_pred: whether frames carry a prediction (enables the prediction views).
        has_gt: whether frames carry ground truth.
        query: a text query (a langocc run), or None.
        state: the initial view.
        start: the first frame shown.
    """

    def __init__(
        self,
        server: viser.ViserServer,
        frames: Sequence[FrameData],
        grid: Grid,
        *,
        has_pred: bool,
        has_gt: bool = True,
        query: QueryFn | None = None,
        state: ViewState,
        start: int = 0,
    ) -> None:
        self.server, self.frames, self.grid, self.query = server, frames, grid, query
        self.state = state
        self._lock = threading.RLock()
        self._handles: dict = {}
        self.index = start
        gui = server.gui
        views = [v for v in VIEWS if (has_gt or v == "prediction") and (has_pred or v == "ground truth")]
        if self.state.view not in views:
            raise ValueError(f"view {self.state.view!r}: not available here (available: {', '.join(views)})")
        with gui.add_folder("Frame"):
            n = len(frames)
            self.slider = gui.add_slider("frame", min=0, max=max(n - 1, 1), step=1, initial_value=start, disabled=n < 2)
            self.prevnext = gui.add_button_group("step", ("previous", "next"))
            self.info = gui.add_markdown("")
        with gui.add_folder("View"):
            self.view = gui.add_dropdown("show", tuple(views), initial_value=self.state.view)
            masks = ("none", "camera", "lidar") if has_gt else ("none",)
            self.mask = gui.add_dropdown("mask", masks, initial_value=self.state.mask)
            self.mask_mode = gui.add_dropdown("outside the mask", MASK_MODES, initial_value=self.state.mask_mode)
            self.cameras = gui.add_checkbox("cameras", self.state.cameras)
            self.lidar = gui.add_checkbox("LiDAR points", self.state.lidar)
            self.errors = gui.add_markdown("")
        self.query_text = None
        if query is not None:
            with gui.add_folder("Text query (langocc)"):
                self.query_text = gui.add_text("text", "", hint="free text, e.g. 'a tree'; Enter to search")
                self.query_top = gui.add_slider("top fraction", min=0.005, max=0.2, step=0.005, initial_value=0.02)
                self.query_clear = gui.add_button("clear")
                self.query_info = gui.add_markdown("")
        with gui.add_folder("Classes"):
            self.all_none = gui.add_button_group("all", ("all", "none"))
            st = self.state.style
            self.toggles = {c: gui.add_checkbox(st.names[c], c not in self.state.hidden) for c in st.drawn}
        self.status = gui.add_markdown("")
        self._wire()
        _view_from_above(server, grid, self.state.view == "side by side")
        self.redraw()

    # ------------------------------------------------------------------ controls
    def _wire(self) -> None:
        self.slider.on_update(lambda _: self.show(int(self.slider.value)))

        @self.prevnext.on_click
        def _(event) -> None:
            step = 1 if self.prevnext.value == "next" else -1
            self.slider.value = int(np.clip(self.index + step, 0, len(self.frames) - 1))

        for h in (self.view, self.mask, self.mask_mode, self.cameras, self.lidar):
            h.on_update(lambda _: self._from_controls())
        for c, box in self.toggles.items():
            box.on_update(lambda _, c=c: self._toggle(c))

        @self.all_none.on_click
        def _(event) -> None:
            on = self.all_none.value == "all"
            for box in self.toggles.values():
                box.value = on

        if self.query_text is not None:
            self.query_text.on_update(lambda _: self.run_query() if self.query_text.value.strip() else self.redraw())
            self.query_top.on_update(lambda _: self.run_query())
            self.query_clear.on_click(lambda _: self._clear_query())

    def _from_controls(self) -> None:
        side_before = self.state.view == "side by side"
        self.state.view, self.state.mask, self.state.mask_mode = self.view.value, self.mask.value, self.mask_mode.value
        self.state.cameras, self.state.lidar = bool(self.cameras.value), bool(self.lidar.value)
        self.redraw()
        if side_before != (self.state.view == "side by side"):
            _view_from_above(self.server, self.grid, self.state.view == "side by side")

    def _toggle(self, c: int) -> None:
        on = bool(self.toggles[c].value)
        self.state.hidden = self.state.hidden - {c} if on else self.state.hidden | {c}
        node = self._handles.get(c)
        if node is not None:
            node.visible = on

    def show(self, i: int) -> None:
        """Go to frame ``i``."""
        self.index = int(i)
        self.redraw()

    def redraw(self) -> None:
        """Draw the current frame under the current state; a bad frame (a prediction file of
        another grid, say) is reported in the panel, the viewer keeps running."""
        with self._lock:
            try:
                frame = self.frames[self.index]
                with self.server.atomic():
                    layer, self._handles = draw_frame(self.server.scene, frame, self.grid, self.state)
                self.status.content = ""
            except (ValueError, KeyError, FileNotFoundError) as e:
                self.status.content = f"**error:** {e}"
                return
            self.info.content = (
                f"{self.index + 1} / {len(self.frames)}: scene `{frame.scene}`, token `{frame.token}`  \n"
                f"{len(layer)} surface voxels drawn"
            )
            self.errors.content = ""
            if frame.gt is not None and frame.pred is not None and self.state.view in ("errors", "side by side"):
                vis = getattr(frame, f"mask_{self.state.mask}") if self.state.mask != "none" else None
                kind = compare_grids(frame.gt, frame.pred, free=self.state.style.free)
                counts = error_counts(kind, None if vis is None else vis.astype(bool))
                where = f" (inside the {self.state.mask} mask)" if vis is not None else ""
                self.errors.content = (
                    f"voxels{where}:  \n"
                    + "  \n".join(f"{k}: {v}" for k, v in counts.items())
                    + "  \ncolours: wrong class red, missed blue, false occupied orange, correct faded"
                )
            if self.query_text is not None and self.query_text.value.strip():
                self.run_query()

    def _clear_query(self) -> None:
        self.query_text.value = ""  # its update redraws the classes
        self.query_info.content = ""

    def run_query(self) -> None:
        """Colour the frame's occupied voxels by their similarity to the typed text: the top
        fraction in the similarity colours (red low .. violet high), the rest pale grey."""
        text = self.query_text.value.strip()
        if not text:
            self.redraw()
            return
        try:
            centres, sim = self.query(self.index, text)
        except (ValueError, KeyError, FileNotFoundError) as e:
            self.query_info.content = f"**error:** {e}"
            return
        if len(sim) == 0:
            self.query_info.content = "no voxel is occupied in this frame"
            return
        thr = float(np.quantile(sim, 1 - float(self.query_top.value)))
        match = sim >= thr
        colors = np.full((len(sim), 3), 215, np.uint8)
        colors[match], lo, hi = similarity_colors(sim[match], float(sim[match].min()), float(sim.max()))
        layer = VoxelLayer(centres.astype(np.float32), colors, np.where(match, 1, 0).astype(np.uint8))
        with self.server.atomic():
            self.server.scene.remove_by_name("/voxels")
            draw_voxels(
                self.server.scene,
                layer,
                self.grid,
                prefix="/query",
                name_of=lambda key: "matches" if key else "other occupied",
            )
        self.query_info.content = (
            f'"{text}": {int(match.sum())} of {len(sim)} occupied voxels match (cosine >= {thr:.3f}; '
            f"range {float(sim.min()):.3f} .. {hi:.3f}); red low, violet high"
        )


def html_legend(frames: Sequence[FrameData], state: ViewState) -> str:
    """The class legend of a recorded page (the live viewer has its class toggles): a fixed box of
    a swatch and a name for each class present in the frames drawn (the others left out), in the
    dataset format's colours; the error view's colours in its view; what the mask dims, when it
    does. Plain HTML, no script."""
    import html as _html

    st = state.style
    sides = {
        "ground truth": ("gt",),
        "prediction": ("pred",),
        "side by side": ("gt", "pred"),
        "errors": ("gt", "pred"),
    }[state.view]
    present: set[int] = set()
    for f in frames:
        for side in sides:
            g = getattr(f, side)
            if g is not None:
                present.update(int(c) for c in np.unique(g))
    rows = [(st.names[c], st.palette[c]) for c in st.drawn if c in present]
    if state.view == "errors":
        rows = [(ERROR_NAMES[code], rgb) for code, rgb in ERROR_COLORS.items()] + [
            (f"{ERROR_NAMES[CORRECT]}: its class colour, faded", (200, 200, 200))
        ]
    if state.mask != "none" and state.mask_mode == "dim":
        rows.append((f"outside the {state.mask} mask: its class colour, greyed", (150, 150, 150)))
    items = "".join(
        f'<div style="display:flex;align-items:center;gap:6px;margin:1px 0">'
        f'<span style="display:inline-block;width:12px;height:12px;border:1px solid #0003;'
        f'background:rgb({r},{g},{b})"></span>{_html.escape(name)}</div>'
        for name, (r, g, b) in rows
    )
    title = "errors" if state.view == "errors" else "classes"
    return (
        '<div id="occkit-legend" style="position:fixed;left:10px;bottom:10px;z-index:1000;max-height:70vh;'
        "overflow:auto;background:#ffffffe6;border-radius:6px;padding:6px 10px;font:12px sans-serif;"
        f'color:#222;box-shadow:0 1px 4px #0004"><b>{title}</b>{items}</div>'
    )


def write_html(
    path: Path, frames: Sequence[FrameData], grid: Grid, state: ViewState, seconds_per_frame: float = 1.0
) -> int:
    """Record ``frames`` under ``state`` into one self-contained HTML file (viser's client with
    the scene embedded): it opens from disk, with no server; for more than one frame, a time
    slider steps through them (``seconds_per_frame`` each); a class legend (:func:`html_legend`) in
    its corner. Returns the file's size in bytes."""
    with contextlib.redirect_stdout(io.StringIO()):  # a private port: the recording needs a server object
        server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        setup_scene(server)
        _view_from_above(server, grid, state.view == "side by side")
        serializer = server.get_scene_serializer()
        for i in range(len(frames)):
            draw_frame(server.scene, frames[i], grid, state)
            if len(frames) > 1:
                serializer.insert_sleep(seconds_per_frame)
        html = serializer.as_html()
    finally:
        stop_server(server)
    legend = html_legend(frames, state)
    at = html.rfind("</body>")
    html = html[:at] + legend + html[at:] if at >= 0 else html + legend
    data = html.encode("utf-8")
    atomic_write(Path(path), lambda f: f.write(data))
    return len(data)
