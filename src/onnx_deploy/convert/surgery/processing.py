"""Pre- and postprocessing as ONNX graphs: uint8 pixels in, softmax and top-k labels out."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper

from onnx_deploy.convert.surgery.graph import SurgeryError
from onnx_deploy.convert.surgery.graph import did_you_mean
from onnx_deploy.convert.surgery.graph import fix_ir_version
from onnx_deploy.convert.surgery.graph import inferred_types
from onnx_deploy.convert.surgery.graph import merge
from onnx_deploy.convert.surgery.graph import tensor_names
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import describe_all
from onnx_deploy.infer.modelinfo import default_opset
from onnx_deploy.infer.modelinfo import graph_io

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --- pre- and post-processing ----------------------------------------------------------


def const_node(name: str, values: Sequence[float] | np.ndarray, dtype: Any = np.float32) -> Any:
    arr = np.asarray(values, dtype=dtype)
    return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(arr, name))


def _pick(specs: tuple[TensorSpec, ...], name: str | None, kind: str, role: str) -> TensorSpec:
    """The input or output called ``name``, or the only one when ``name`` is None."""
    if name is None:
        if len(specs) != 1:
            raise SurgeryError(
                f"the model has {len(specs)} {kind}s ({describe_all(specs)}); name {role}"
            )
        return specs[0]
    for s in specs:
        if s.name == name:
            return s
    names = [s.name for s in specs]
    raise SurgeryError(
        f"{name!r} is not an {kind} of the model{did_you_mean(name, names)}; {kind}s: {describe_all(specs)}"
    )


def image_spec(model: onnx.ModelProto, input_name: str | None) -> TensorSpec:
    spec = _pick(graph_io(model)[0], input_name, "input", "the image input")
    channels = spec.shape[1] if len(spec.shape) == 4 else None
    if spec.dtype != "float32" or len(spec.shape) != 4 or channels not in (1, 3):
        raise SurgeryError(
            f"{spec} is not an image input: preprocessing needs float32 (batch, 1 or 3, "
            "height, width) with the channel count fixed"
        )
    return spec


def preprocessing_graph(
    image: TensorSpec,
    *,
    pixels_name: str = "pixels",
    layout: str = "NHWC",
    resize: int | None = None,
    crop: tuple[int, int] | None = None,
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    scale: float = 1 / 255,
    antialias: bool = True,
    opset: int = 18,
) -> onnx.ModelProto:
    """A standalone graph: uint8 pixels in (``NHWC`` as images decode, or ``NCHW``),
    ``image`` (float32 NCHW) out. Steps, each optional: resize so the shorter side is
    ``resize`` (bilinear, torchvision's ``Resize(int)`` sizes), center-crop to ``crop``
    (default: the image input's fixed height and width, when resizing), then
    ``(pixels * scale - mean) / std`` per channel."""
    if layout not in ("NHWC", "NCHW"):
        raise SurgeryError(f"layout must be NHWC or NCHW, got {layout!r}")
    channels = int(image.shape[1])  # type: ignore[arg-type]
    height, width = image.shape[2], image.shape[3]
    if resize is not None and crop is None:
        if not (isinstance(height, int) and isinstance(width, int)):
            raise SurgeryError(
                f"{image} has a symbolic height or width: give the crop size with resize"
            )
        crop = (height, width)
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise SurgeryError(f"{name} has {len(values)} values for {channels} channels")
    if any(s == 0 for s in std):
        raise SurgeryError("std must not contain 0")
    batch = image.shape[0] if image.shape[0] is not None else "batch"
    if resize is not None or crop is not None:
        hw: tuple[Any, Any] = ("height", "width")
    else:
        hw = (height, width)
    pix_shape = (batch, *hw, channels) if layout == "NHWC" else (batch, channels, *hw)
    nodes = [helper.make_node("Cast", [pixels_name], ["pre/float"], to=TensorProto.FLOAT)]
    x = "pre/float"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["pre/nchw"], perm=[0, 3, 1, 2]))
        x = "pre/nchw"
    if resize is not None:
        # torchvision's Resize(S): the shorter side becomes S, the longer floor(S*long/short)
        nodes += [
            helper.make_node("Shape", [x], ["pre/shape"]),
            const_node("pre/i2", [2], np.int64),
            const_node("pre/i3", [3], np.int64),
            const_node("pre/i4", [4], np.int64),
            const_node("pre/i0", [0], np.int64),
            const_node("pre/S", [resize], np.int64),
            helper.make_node("Slice", ["pre/shape", "pre/i0", "pre/i2"], ["pre/nc"]),
            helper.make_node("Slice", ["pre/shape", "pre/i2", "pre/i3"], ["pre/h"]),
            helper.make_node("Slice", ["pre/shape", "pre/i3", "pre/i4"], ["pre/w"]),
            helper.make_node("LessOrEqual", ["pre/w", "pre/h"], ["pre/portrait"]),
            helper.make_node("Mul", ["pre/S", "pre/h"], ["pre/Sh"]),
            helper.make_node("Mul", ["pre/S", "pre/w"], ["pre/Sw"]),
            helper.make_node("Div", ["pre/Sh", "pre/w"], ["pre/h_long"]),
            helper.make_node("Div", ["pre/Sw", "pre/h"], ["pre/w_long"]),
            helper.make_node("Where", ["pre/portrait", "pre/h_long", "pre/S"], ["pre/new_h"]),
            helper.make_node("Where", ["pre/portrait", "pre/S", "pre/w_long"], ["pre/new_w"]),
            helper.make_node("Concat", ["pre/nc", "pre/new_h", "pre/new_w"], ["pre/sizes"], axis=0),
            helper.make_node(
                "Resize",
                [x, "", "", "pre/sizes"],
                ["pre/resized"],
                mode="linear",
                antialias=int(antialias),
            ),
        ]
        x = "pre/resized"
    if crop is not None:
        nodes += [
            const_node("pre/crop", list(crop), np.int64),
            helper.make_node("CenterCropPad", [x, "pre/crop"], ["pre/cropped"], axes=[2, 3]),
        ]
        x = "pre/cropped"
    m = np.broadcast_to(np.asarray(mean, np.float64), (channels,))
    s = np.broadcast_to(np.asarray(std, np.float64), (channels,))
    nodes += [
        const_node("pre/mul", (scale / s).reshape(1, channels, 1, 1)),
        const_node("pre/add", (-m / s).reshape(1, channels, 1, 1)),
        helper.make_node("Mul", [x, "pre/mul"], ["pre/scaled"]),
        helper.make_node("Add", ["pre/scaled", "pre/add"], [image.name]),
    ]
    out_hw = crop if crop is not None else hw
    graph = helper.make_graph(
        nodes,
        "preprocess",
        [helper.make_tensor_value_info(pixels_name, TensorProto.UINT8, list(pix_shape))],
        [helper.make_tensor_value_info(image.name, TensorProto.FLOAT, [batch, channels, *out_hw])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.producer_name = "onnx-deploy"
    return fix_ir_version(model)


def reference_preprocess(
    pixels: np.ndarray,
    *,
    layout: str = "NHWC",
    crop: tuple[int, int] | None = None,
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    scale: float = 1 / 255,
) -> np.ndarray:
    """The same preprocessing in numpy (no resize): the check ``add_preprocessing`` is
    held to, and what a client does when the graph has none."""
    x = pixels.astype(np.float32)
    if layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if crop is not None:
        h, w = x.shape[2:]
        top, left = (h - crop[0]) // 2, (w - crop[1]) // 2
        x = x[:, :, top : top + crop[0], left : left + crop[1]]
    c = x.shape[1]
    m = np.broadcast_to(np.asarray(mean, np.float32), (c,)).reshape(1, c, 1, 1)
    s = np.broadcast_to(np.asarray(std, np.float32), (c,)).reshape(1, c, 1, 1)
    return ((x * np.float32(scale) - m) / s).astype(np.float32)


def preprocessing_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``preprocessing_graph``'s options with its defaults for those not given (its
    signature is where they are declared)."""
    params = inspect.signature(preprocessing_graph).parameters.values()
    return {
        p.name: options.get(p.name, p.default)
        for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "opset"
    }


def add_preprocessing(
    model: onnx.ModelProto, input_name: str | None = None, **options: Any
) -> onnx.ModelProto:
    """Embed image preprocessing: the model then takes uint8 pixels (``pixels``, NHWC by
    default) instead of a normalised float tensor. ``options``: see
    ``preprocessing_graph`` (``resize``, ``crop``, ``mean``, ``std``, ``scale``,
    ``layout``, ``pixels_name``). Refused for an input that is not an image."""
    image = image_spec(model, input_name)
    pixels_name = options.get("pixels_name", "pixels")
    if pixels_name in tensor_names(model):
        raise SurgeryError(
            f"the model already has a tensor named {pixels_name!r}; pick another pixels_name"
        )
    pre = preprocessing_graph(image, opset=max(18, default_opset(model)), **options)
    return merge(pre, model, [(image.name, image.name)], prefix="pre/")


def postprocessing_graph(
    logits: TensorSpec, *, softmax: bool = True, top_k: int | None = None, opset: int = 18
) -> onnx.ModelProto:
    """A standalone graph on a (batch, classes) output: ``probabilities`` (softmax) and,
    with ``top_k``, ``scores`` (float32) and ``labels`` (int64, best first)."""
    if len(logits.shape) != 2 or logits.dtype not in ("float32", "float16"):
        raise SurgeryError(
            f"{logits} is not (batch, classes) float scores: softmax/top-k postprocessing "
            "needs a 2-D float output"
        )
    classes = logits.shape[1]
    if top_k is not None and (top_k < 1 or (isinstance(classes, int) and top_k > classes)):
        raise SurgeryError(f"top_k must be between 1 and {classes}, got {top_k}")
    if not softmax and top_k is None:
        raise SurgeryError("nothing to add: ask for softmax, top_k or both")
    nodes, outputs = [], []
    elem = TensorProto.FLOAT if logits.dtype == "float32" else TensorProto.FLOAT16
    batch = logits.shape[0] if logits.shape[0] is not None else "batch"
    x = logits.name
    if softmax:
        nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=-1))
        outputs.append(helper.make_tensor_value_info("probabilities", elem, [batch, classes]))
        x = "probabilities"
    if top_k is not None:
        nodes += [
            const_node("post/k", [top_k], np.int64),
            helper.make_node("TopK", [x, "post/k"], ["scores", "labels"], axis=-1),
        ]
        outputs += [
            helper.make_tensor_value_info("scores", elem, [batch, top_k]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [batch, top_k]),
        ]
    graph = helper.make_graph(
        nodes,
        "postprocess",
        [helper.make_tensor_value_info(logits.name, elem, [batch, classes])],
        outputs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return fix_ir_version(model)


def add_postprocessing(
    model: onnx.ModelProto,
    output_name: str | None = None,
    *,
    softmax: bool = True,
    top_k: int | None = None,
    keep_logits: bool = False,
) -> onnx.ModelProto:
    """Append softmax and/or top-k to a classifier output; ``keep_logits`` keeps the
    original output as well."""
    spec = _pick(graph_io(model)[1], output_name, "output", "the scores output")
    post = postprocessing_graph(
        spec, softmax=softmax, top_k=top_k, opset=max(18, default_opset(model))
    )
    merged = merge(model, post, [(spec.name, spec.name)], prefix="post/")
    if keep_logits:
        merged.graph.output.insert(0, copy.deepcopy(inferred_types(model)[spec.name]))
    return merged
