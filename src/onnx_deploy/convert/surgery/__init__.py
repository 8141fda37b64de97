"""Graph surgery: edit an exported ONNX graph, and prove every edit changed nothing else.

The raw tools this builds on, from onnx itself::

    onnx.compose.merge_models(pre, model, io_map=[("pixels_nchw", "input")])
    onnx.utils.Extractor(model).extract_model(["stem"], ["features"])
    onnx.version_converter.convert_version(model, 21)
    onnx.save_model(model, "m.onnx", save_as_external_data=True, location="m.onnx.data")

Each edit here (``rename``, ``set_dims``, ``expose``, ``extract``, ``convert_opset``,
``add_preprocessing``, ``add_postprocessing``, ``add_nms``, ``add_letterbox``, ``merge``) takes and returns an
``onnx.ModelProto`` (the input is never modified) and leaves an IR version that the
installed onnxruntime loads: onnx 1.23's ``helper.make_model`` writes IR 14, which
onnxruntime 1.31 refuses ("max supported IR version: 13"). ``edit_file`` runs one edit
on a file: full ``onnx.checker`` check, a numeric check against the model before the edit
(the same inputs through both, outputs compared), then an atomic write. Bad input gets a
``SurgeryError`` that names the tensor or dim and lists what exists.
"""

from __future__ import annotations

from onnx_deploy.convert.surgery.checks import EditCheck
from onnx_deploy.convert.surgery.checks import check_extract
from onnx_deploy.convert.surgery.checks import check_merge
from onnx_deploy.convert.surgery.checks import check_postprocessing
from onnx_deploy.convert.surgery.checks import check_preprocessing
from onnx_deploy.convert.surgery.checks import check_same_outputs
from onnx_deploy.convert.surgery.detection import add_letterbox
from onnx_deploy.convert.surgery.detection import add_nms
from onnx_deploy.convert.surgery.detection import efficient_nms
from onnx_deploy.convert.surgery.files import EDITS
from onnx_deploy.convert.surgery.files import EditResult
from onnx_deploy.convert.surgery.files import edit_file
from onnx_deploy.convert.surgery.graph import SurgeryError
from onnx_deploy.convert.surgery.graph import convert_opset
from onnx_deploy.convert.surgery.graph import dim_symbols
from onnx_deploy.convert.surgery.graph import expose
from onnx_deploy.convert.surgery.graph import extract
from onnx_deploy.convert.surgery.graph import fix_ir_version
from onnx_deploy.convert.surgery.graph import io_pairs
from onnx_deploy.convert.surgery.graph import list_tensors
from onnx_deploy.convert.surgery.graph import loadable_ir_version
from onnx_deploy.convert.surgery.graph import merge
from onnx_deploy.convert.surgery.graph import ort_max_ir_version
from onnx_deploy.convert.surgery.graph import parse_dim_edit
from onnx_deploy.convert.surgery.graph import rename
from onnx_deploy.convert.surgery.graph import set_dims
from onnx_deploy.convert.surgery.graph import tensor_names
from onnx_deploy.convert.surgery.processing import IMAGENET_MEAN
from onnx_deploy.convert.surgery.processing import IMAGENET_STD
from onnx_deploy.convert.surgery.processing import add_postprocessing
from onnx_deploy.convert.surgery.processing import add_preprocessing
from onnx_deploy.convert.surgery.processing import postprocessing_graph
from onnx_deploy.convert.surgery.processing import preprocessing_graph
from onnx_deploy.convert.surgery.processing import reference_preprocess

__all__ = [
    "EDITS", "IMAGENET_MEAN", "IMAGENET_STD", "EditCheck", "EditResult", "SurgeryError",
    "add_letterbox", "add_nms", "add_postprocessing", "add_preprocessing", "check_extract", "check_merge",
    "check_postprocessing", "check_preprocessing", "check_same_outputs", "convert_opset",
    "dim_symbols", "edit_file", "efficient_nms", "expose", "extract", "fix_ir_version", "io_pairs", "list_tensors",
    "loadable_ir_version", "merge", "ort_max_ir_version", "parse_dim_edit",
    "postprocessing_graph", "preprocessing_graph", "reference_preprocess", "rename",
    "set_dims", "tensor_names",
]  # fmt: skip
