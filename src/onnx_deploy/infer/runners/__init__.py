"""Torch-free runners: the one way to execute a model, whatever the backend.

A runner has a name, input and output specs (``onnx_deploy.core.specs.TensorSpec``),
``infer(feeds) -> {output_name: array}``, and a context manager for its resources (a
session, a process). The comparison (``onnx_deploy.compare``) and the benchmark
(``onnx_deploy.benchmark``) take runners and never ask which backend made the outputs, as
Polygraphy's runners and Comparator do. A new torch-free backend is one new module here with
one ``Runner`` subclass (``base.py`` says what to implement); a backend that needs torch or
builds engines goes in ``onnx_deploy/convert/runners/``. Import runners from the package::

    from onnx_deploy import OnnxRuntimeRunner

    with OnnxRuntimeRunner("model.onnx") as ort_runner:
        outputs = ort_runner.infer({"input": x})
"""
