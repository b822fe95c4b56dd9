"""The 3D viewer as a person sees it: headless Chromium opens the live viewer and the static HTML
export, and the screenshot must show the scene (not blank, the Occ3D palette's colours).

Skips when Chromium is absent (Debian: ``apt-get install chromium``) or viser is not installed.
Chromium is driven through its DevTools protocol (``websockets``, a viser dependency), so the
screenshot is taken once the scene has arrived, not at a fixed moment after the page loads.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("viser")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")

from PIL import Image  # noqa: E402

from occkit.formats import get_format  # noqa: E402
from occkit.geometry.grid import occ3d_grid  # noqa: E402
from occkit.labels import OCC3D_PALETTE  # noqa: E402
from occkit.viz.viewer import Viewer, ViewState, start_server, stop_server, write_html  # noqa: E402
from occkit.viz.viewer_scene import ClassStyle, FrameData  # noqa: E402

OCC3D = ClassStyle.of(get_format("nuscenes").classes)  # scene_frame() is of Occ3D's table

#: Classes of the test scene whose colours the screenshot must hold.
SHOWN = {11: "driveable_surface", 16: "vegetation", 4: "car"}


def scene_frame() -> FrameData:
    """A road slab with a car, a hedge and a block of buildings on the Occ3D grid."""
    gt = np.full((200, 200, 16), 17, np.uint8)
    gt[:, 70:130, 2] = 11  # road, 24 m wide
    gt[:, :70, 2] = 14  # terrain
    gt[:, 130:, 2] = 13  # sidewalk
    gt[100:125, 88:102, 3:8] = 4  # a (large) car ahead
    gt[60:160, 50:62, 3:10] = 16  # a hedge on the left
    gt[40:90, 140:170, 3:14] = 15  # buildings on the right
    pred = gt.copy()
    pred[100:125, 88:102, 7] = 17
    return FrameData(token="tok", scene="scene", gt=gt, pred=pred)


def palette_hits(img: np.ndarray, classes=SHOWN, tol: float = 70.0) -> dict[int, int]:
    """Pixels whose nearest colour among the palette and the background is class ``c``'s, within
    ``tol`` (RGB distance: lighting shades faces, the renderer's tone mapping shifts colours a
    little), for each class of ``classes``."""
    from occkit.viz.draw import BACKGROUND

    ref = np.asarray(list(OCC3D_PALETTE) + [BACKGROUND], np.float32)  # (C + 1, 3)
    px = img[::2, ::2, :3].reshape(-1, 1, 3).astype(np.float32)
    d = np.linalg.norm(px - ref[None], axis=-1)  # (P, C + 1)
    near, dist = d.argmin(-1), d.min(-1)
    return {c: int(((near == c) & (dist <= tol)).sum()) for c in classes}


class Chromium:
    """Headless Chromium with its DevTools protocol on a free local port."""

    def __init__(self, size=(1280, 800)) -> None:
        from websockets.sync.client import connect

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.profile = tempfile.mkdtemp(prefix="occkit-chromium-")
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",
                "--no-first-run",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={self.profile}",
                f"--window-size={size[0]},{size[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                    tabs = json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    pytest.fail("Chromium did not start its DevTools endpoint within 60 s")
                time.sleep(0.3)
        page = next(t for t in tabs if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=2**28, open_timeout=30)
        self.n = 0

    def call(self, method: str, timeout: float = 120.0, **params):
        """Send one DevTools command and return its result; :class:`TimeoutError` (naming the
        command) where no answer comes within ``timeout`` s. A late answer to an abandoned command
        is skipped by its id."""
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                m = json.loads(self.ws.recv(timeout=max(left, 0.01)))
            except TimeoutError:
                raise TimeoutError(f"DevTools {method}: no answer within {timeout:.0f} s") from None
            if m.get("id") == self.n:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    def screenshot(self, timeout: float = 120.0) -> np.ndarray:
        data = base64.b64decode(self.call("Page.captureScreenshot", timeout=timeout, format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def open_and_wait(self, url: str, timeout: float = 240.0, settle: float = 2.0) -> np.ndarray:
        """Open ``url`` and return the first screenshot holding every class of :data:`SHOWN`
        (the last one taken when ``timeout`` passes). A screenshot that gets no answer (the
        software WebGL renderer can stall a cold browser for minutes on a loaded machine) is
        abandoned and asked again until ``timeout``."""
        deadline = time.monotonic() + timeout
        self.call("Page.navigate", timeout=timeout, url=url)
        img, stalled = None, None
        while time.monotonic() < deadline:
            time.sleep(settle)
            try:
                img = self.screenshot(timeout=max(min(60.0, deadline - time.monotonic()), 1.0))
            except TimeoutError as e:
                stalled = e
                continue
            if min(palette_hits(img).values()) > 20:
                break
        if img is None:
            pytest.fail(f"no screenshot of {url} within {timeout:.0f} s ({stalled})")
        return img

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium():
    c = Chromium()
    yield c
    c.close()


def check_scene(img: np.ndarray, where: Path) -> None:
    Image.fromarray(img).save(where)
    assert img.std() > 10, f"blank screenshot ({where})"
    hits = palette_hits(img)
    assert all(n > 20 for n in hits.values()), f"palette colours missing in {where}: " + ", ".join(
        f"{SHOWN[c]} {n} px" for c, n in hits.items()
    )


def test_static_html_opens_without_a_server(chromium, tmp_path):
    out = tmp_path / "scene.html"
    write_html(out, [scene_frame()], occ3d_grid(), ViewState(view="ground truth", style=OCC3D))
    check_scene(chromium.open_and_wait(out.resolve().as_uri()), tmp_path / "html.png")


def test_live_viewer_shows_the_scene(chromium, tmp_path):
    server = start_server("127.0.0.1", 0)
    try:
        Viewer(server, [scene_frame()], occ3d_grid(), has_pred=True, state=ViewState(view="side by side", style=OCC3D))
        check_scene(chromium.open_and_wait(f"http://127.0.0.1:{server.get_port()}"), tmp_path / "live.png")
    finally:
        stop_server(server)
