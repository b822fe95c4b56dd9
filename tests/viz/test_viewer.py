"""The viser side of the 3D viewer (occkit.viz.viewer) and the `occkit view` command: scene nodes,
controls, the static HTML, and one-line errors for bad input. No browser (see test_viewer_browser)."""

import socket

import numpy as np
import pytest

pytest.importorskip("viser")

from occkit.cli import main  # noqa: E402
from occkit.fileio import save_npz_atomic  # noqa: E402
from occkit.formats import get_format  # noqa: E402
from occkit.geometry.grid import Grid  # noqa: E402
from occkit.viz.viewer import Viewer, ViewState, check_port_free, start_server, stop_server, write_html  # noqa: E402
from occkit.viz.viewer_scene import ClassStyle, FrameData  # noqa: E402

GRID = Grid((0.0, 0.0, 0.0), (4.0, 4.0, 2.0), (0.4, 0.4, 0.4))  # 10 x 10 x 5
OCC3D = ClassStyle.of(get_format("nuscenes").classes)  # the frames below are of Occ3D's table


def frame(i: int) -> FrameData:
    gt = np.full((10, 10, 5), 17, np.uint8)
    gt[:, :, 0] = 11
    gt[2:5, 2 + i : 5 + i, 1:3] = 4
    pred = gt.copy()
    pred[2, 2 + i, 1] = 10
    K = np.array([[[20.0, 0, 16], [0, 20, 12], [0, 0, 1]]])
    T = np.eye(4)[None].copy()
    T[0, :3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    return FrameData(
        token=f"t{i}",
        scene="s",
        gt=gt,
        pred=pred,
        mask_camera=np.ones_like(gt, bool),
        mask_lidar=np.ones_like(gt, bool),
        cam_names=("CAM_FRONT",),
        images=np.zeros((1, 24, 32, 3), np.uint8),
        intrinsics=K,
        T_ego_from_cam=T,
        lidar=np.array([[1.0, 1, 0.5, 1]], np.float32),
        lidar_labels=np.array([4]),
    )


def node_names(server) -> set:
    return set(server.scene._handle_from_node_name)


@pytest.fixture
def server():
    s = start_server("127.0.0.1", 0)
    yield s
    stop_server(s)


def test_viewer_draws_classes_cameras_lidar_and_follows_the_controls(server):
    v = Viewer(server, [frame(0), frame(1)], GRID, has_pred=True, state=ViewState(style=OCC3D))
    names = node_names(server)
    assert {"/voxels/car", "/voxels/driveable_surface", "/cameras/CAM_FRONT", "/lidar"} <= names
    car = v._handles[4]
    v.toggles[4].value = False  # a class toggle: one visibility change, nothing rebuilt
    assert v._handles[4] is car and not car.visible and 4 in v.state.hidden
    v.slider.value = 1  # next frame: redrawn, the hidden class stays hidden
    assert "t1" in v.info.content and not v._handles[4].visible
    v.view.value = "errors"
    assert v.state.view == "errors" and "wrong class: 1" in v.errors.content
    assert "/voxels/truck" not in node_names(server)  # the wrong-class voxel is toggled as its ground-truth class (car)
    v.view.value = "side by side"
    assert "/titles/prediction" in node_names(server)
    v.cameras.value = False
    assert not server.scene._handle_from_node_name["/cameras/CAM_FRONT"].visible


def test_a_bad_frame_is_reported_in_the_panel_not_raised(server):
    bad = frame(1)
    bad.pred = bad.pred[:, :, :3]
    v = Viewer(server, [frame(0), bad], GRID, has_pred=True, state=ViewState(view="prediction", style=OCC3D))
    v.slider.value = 1
    assert "error" in v.status.content and "expected (10, 10, 5)" in v.status.content


def test_text_query_colours_matching_voxels(server):
    centres = np.array([[0.2, 0.2, 0.2], [0.6, 0.2, 0.2], [1.0, 0.2, 0.2]], np.float32)
    v = Viewer(
        server,
        [frame(0)],
        GRID,
        has_pred=True,
        query=lambda i, text: (centres, np.array([0.1, 0.2, 0.9])),
        state=ViewState(style=OCC3D),
    )
    v.query_text.value = "a car"
    assert "/query/matches" in node_names(server) and "/voxels/car" not in node_names(server)
    assert "1 of 3 occupied voxels match" in v.query_info.content
    v.query_text.value = ""
    assert "/voxels/car" in node_names(server) and "/query/matches" not in node_names(server)


def test_write_html_is_self_contained(tmp_path):
    out = tmp_path / "v.html"
    size = write_html(out, [frame(0), frame(1)], GRID, ViewState(view="errors", style=OCC3D))
    text = out.read_text()
    assert (
        size == out.stat().st_size
        and "__VISER_EMBED_DATA__" in text
        and "ws://" not in text.split("__VISER_EMBED_DATA__")[0][-200:]
    )


def test_port_in_use_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ValueError, match=f"--port {port}: 127.0.0.1:{port} is in use"):
            check_port_free("127.0.0.1", port)


def one_error_line(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("occkit view: error:"), err
    return err[0]


def test_cli_bad_input_one_line_each(tmp_path, tiny_occ3d_root, capsys):
    assert "dataset folder not found" in one_error_line(capsys, ["view", str(tmp_path / "nope")])
    preds = tmp_path / "pred"
    preds.mkdir()
    tokens = ["0000" + "ab" * 14, "0001" + "ab" * 14]
    save_npz_atomic(preds / f"{tokens[0]}.npz", semantics=np.full((100, 100, 8), 17, np.uint8))
    line = one_error_line(
        capsys, ["view", str(tiny_occ3d_root), "--pred", str(preds), "--scene", "scene-0000", "--frames", "1"]
    )
    assert "has shape (100, 100, 8), expected (200, 200, 16)" in line
    line = one_error_line(capsys, ["view", str(tiny_occ3d_root), "--pred", str(preds), "--scene", "scene-0000"])
    assert "no prediction for 1 of the 2 frames" in line and tokens[1] in line
    line = one_error_line(capsys, ["view", str(tiny_occ3d_root), "--ckpt", str(tmp_path)])
    assert "not a checkpoint" in line
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert "is in use" in one_error_line(capsys, ["view", str(tiny_occ3d_root), "--port", str(port)])


def test_cli_serves_and_writes_html(tmp_path, tiny_occ3d_root, capsys):
    out = tmp_path / "scene.html"
    assert (
        main(
            [
                "view",
                str(tiny_occ3d_root),
                "--frames",
                "1",
                "--mask",
                "camera",
                "--mask-mode",
                "hide",
                "--html",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file() and "wrote" in capsys.readouterr().out
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert (
        main(["view", str(tiny_occ3d_root), "--scene", "scene-0001", "--port", str(port), "--exit-after", "0.1"]) == 0
    )
    assert f"http://localhost:{port}" in capsys.readouterr().out


def test_cli_views_a_semantickitti_folder_in_its_own_classes(tmp_path, capsys, server):
    """The viewer reads any dataset format: the frames, the predictions and the class table (names,
    palette, free class 0) come from the format of the folder."""
    from PIL import Image

    from occkit.data.semantickitti import SSC_SHAPE, write_bitpacked, write_calib, write_label, write_ssc_prediction
    from occkit.formats import get_format

    seq = tmp_path / "kitti" / "sequences" / "08"
    write_calib(seq / "calib.txt", np.array([[20.0, 0, 16, 0], [0, 20, 12, 0], [0, 0, 1, 0]]), np.eye(4))
    learn = np.zeros(SSC_SHAPE, np.uint8)
    learn[10:20, 100:120, 5:9] = 1  # car
    raw = np.array([0, 10], np.uint16)[np.minimum(learn, 1)]
    write_label(seq / "voxels" / "000000.label", raw)
    write_bitpacked(seq / "voxels" / "000000.invalid", np.zeros(SSC_SHAPE, bool))
    (seq / "image_2").mkdir()
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(seq / "image_2" / "000000.png")
    write_ssc_prediction(tmp_path / "pred" / "sequences" / "08" / "predictions" / "000000.label", learn)
    style = ClassStyle.of(get_format("semantickitti").classes)
    assert style.free == 0 and style.names[1] == "car" and 0 not in style.drawn and len(style.palette) == 20
    out = tmp_path / "k.html"
    argv = ["view", str(tmp_path / "kitti"), "--split", "val", "--pred", str(tmp_path / "pred"), "--html", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert out.is_file() and "1 frame(s)" in capsys.readouterr().out
    kitti = frame(0)  # in SemanticKITTI's classes: 0 free, 1 car
    kitti.gt = np.where(kitti.gt == 4, 1, 0).astype(np.uint8)
    kitti.pred = kitti.gt.copy()
    v = Viewer(server, [kitti], GRID, has_pred=True, state=ViewState(style=style))
    assert "/voxels/car" in node_names(server) and "/voxels/empty" not in node_names(server)
    assert set(v.toggles) == set(range(1, 20)) and v._handles.keys() == {1}
    assert "not a dataset of any known format" in one_error_line(capsys, ["view", str(tmp_path / "pred" / "sequences")])


def test_the_recorded_page_has_a_class_legend(tmp_path):
    """``view --html`` (issue 73, item 8: no legend): the classes present, in the format's colours,
    the error view's colours in its view, the dimmed mask when dimmed."""

    style = OCC3D
    frames = [frame(0), frame(1)]
    present = sorted({int(c) for f in frames for c in np.unique(f.gt)} - {style.free})
    out = tmp_path / "v.html"
    write_html(out, frames, GRID, ViewState(view="ground truth", mask="camera", mask_mode="dim", style=style))
    text = out.read_text()
    legend = text[text.index('<div id="occkit-legend"') :]
    assert legend.index("</div>") < legend.index("</body>") or "</body>" not in text
    for c in range(len(style.names)):
        r, g, b = style.palette[c]
        swatch = f'background:rgb({r},{g},{b})"></span>{style.names[c]}</div>'
        assert (swatch in legend) == (c in present), style.names[c]
    assert "outside the camera mask: its class colour, greyed" in legend
    write_html(out, frames, GRID, ViewState(view="errors", style=OCC3D))
    legend = out.read_text()[out.read_text().index('<div id="occkit-legend"') :]
    assert "<b>errors</b>" in legend and "wrong class" in legend and "missed (predicted free)" in legend
    assert "outside the" not in legend
