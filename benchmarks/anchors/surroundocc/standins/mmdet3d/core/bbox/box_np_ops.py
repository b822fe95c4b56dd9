"""Stand-in for ``mmdet3d.core.bbox.box_np_ops``: the SurroundOcc label generator imports it and never
uses it, so it is empty."""
