"""Official metrics: Occ3D-nuScenes mIoU (:mod:`.occ3d`), SparseOcc RayIoU (:mod:`.rayiou`),
SemanticKITTI semantic scene completion (:mod:`.ssc`), each as pure functions over confusion
counts and as streaming accumulators mergeable across processes."""

from occkit.metrics.occ3d import Occ3DMetric
from occkit.metrics.rayiou import RayIoUMetric, rayiou_origins
from occkit.metrics.ssc import SSCMetric

__all__ = ["Occ3DMetric", "RayIoUMetric", "rayiou_origins", "SSCMetric"]
