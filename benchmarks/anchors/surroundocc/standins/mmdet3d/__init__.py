"""Stand-in package for mmdet3d: only the (empty) ``mmdet3d.core.bbox.box_np_ops`` the SurroundOcc label
generator imports."""
