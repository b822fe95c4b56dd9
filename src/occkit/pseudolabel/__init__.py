"""EasyOcc's 3D pseudo-labels from 2D priors (docs/methods.md §2).

- :mod:`occkit.pseudolabel.lift`: pixels with a prior class and a metric depth -> labelled 3D
  points (``p = T_global_from_cam [D K^-1 (u, v, 1); 1]``), with their camera centres;
- :mod:`occkit.pseudolabel.voxelise`: points -> a label grid by a per-voxel vote, and free space
  carved along the camera rays up to each point;
- :mod:`occkit.pseudolabel.dataset`: a whole dataset of pseudo-labels in the Occ3D layout
  (``occkit pseudolabel``), densified over past/future frames through the ego poses;
- :mod:`occkit.pseudolabel.quality`: how good the labels are against the real ground truth.
"""
