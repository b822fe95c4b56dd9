"""Stand-in for mmcv (mmcv-full 1.4.0, the version SurroundOcc installs) in the SurroundOcc label
generator's environment: the script does ``import mmcv`` and uses only
:func:`mmcv.ops.points_in_boxes.points_in_boxes_cpu`."""

__version__ = "1.4.0+occkit-standin"
