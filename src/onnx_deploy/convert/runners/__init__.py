"""Runners that need the build side: PyTorch (the reference) and TensorRT engines.

They follow ``onnx_deploy.infer.runners.base.Runner``; import them from the package
(``from onnx_deploy import TorchRunner, TensorRTRunner``).
"""
