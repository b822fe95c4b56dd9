"""Loaded at interpreter start (``standins/`` is on PYTHONPATH only for the SurroundOcc label
generator's run): on a machine without a CUDA device, ``torch.Tensor.cuda`` returns the tensor itself,
so the generator's ``torch.from_numpy(...).cuda()`` stays on the CPU and the chamfer stand-in takes it."""

try:
    import torch
except ImportError:  # not the anchor environment
    torch = None

if torch is not None and not torch.cuda.is_available():

    def _cuda_noop(self, *args, **kwargs):
        return self

    torch.Tensor.cuda = _cuda_noop
