"""Export of trained camera networks to other runtimes: :mod:`occkit.export.onnx` (ONNX, checked
against onnxruntime). Nothing is imported here; ``onnx``, ``onnxscript`` and ``onnxruntime`` are
the optional extra ``occkit[export]``."""
