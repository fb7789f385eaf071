"""ONNX graph rewrites (gen_keras/onnx_graph.py): PReLU's five element-wise nodes folded into one
``PRelu`` with the same outputs; left alone where an intermediate result is used elsewhere; and a
real export of the SRResNet generator ships the folded graph, within the export's parity."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from gen_keras.onnx_graph import depthwise_single_output, faster, fold_prelu, subpixel_transposed

from conftest import ROOT


def _prelu_graph(slope: np.ndarray, extra_use: bool = False) -> onnx.ModelProto:
    """y = relu(x) + k * relu(-x), k = -slope (Keras' PReLU as tf2onnx writes it); with
    ``extra_use`` the Neg result is also an output (so it must not be folded away)."""
    nodes = [helper.make_node("Relu", ["x"], ["pos"]), helper.make_node("Neg", ["x"], ["negx"]),
             helper.make_node("Relu", ["negx"], ["rneg"]), helper.make_node("Mul", ["rneg", "k"], ["scaled"]),
             helper.make_node("Add", ["pos", "scaled"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3, 2, 2])]
    if extra_use:
        outputs.append(helper.make_tensor_value_info("negx", TensorProto.FLOAT, [None, 3, 2, 2]))
    graph = helper.make_graph(nodes, "prelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 2, 2])],
                              outputs, [numpy_helper.from_array(-slope, "k")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_prelu_is_folded_into_one_operator_with_the_same_outputs():
    slope = np.array([0.1, 0.25, 2.0], np.float32).reshape(3, 1, 1)  # one per channel (shared H, W)
    model = _prelu_graph(slope)
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)
    want = np.where(x > 0, x, slope * x)  # PReLU by hand
    np.testing.assert_allclose(_run(model, x)[0], want, atol=1e-6)
    assert fold_prelu(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["PRelu"]
    assert [i.name for i in model.graph.initializer] != ["k"]  # the old constant is gone
    np.testing.assert_allclose(_run(model, x)[0], want, atol=1e-6)


def test_prelu_is_not_folded_when_a_part_is_used_elsewhere():
    model = _prelu_graph(np.full((3, 1, 1), 0.2, np.float32), extra_use=True)
    assert fold_prelu(model) == 0 and len(model.graph.node) == 5


def test_an_srresnet_export_ships_the_folded_graph(tmp_path):
    from gen_keras.config_loader import load_config
    from gen_keras.export import export_model
    from gen_keras.exported.manifest import verify_export
    from gen_keras.models import build_model

    cfg = load_config(ROOT / "pipelines" / "configs" / "sr_l1_sr4.yaml", ["model.g_filters=4", "model.residual_blocks=1"])
    export_dir = export_model(build_model(cfg.model), tmp_path / "export")
    ep = verify_export(export_dir).manifest["endpoints"]["translate"]
    ops = [n.op_type for n in onnx.load(str(export_dir / ep["onnx"])).graph.node]
    assert ops.count("PRelu") == 4 and "Neg" not in ops  # head, one residual block, two upsamplings
    assert ops.count("ReduceSum") == 1  # the 9x9 convolution to the one-channel image
    assert ep["onnx_parity_max_abs_diff"] <= 1e-4


def _conv_graph(w: np.ndarray, bias: bool, **attrs) -> onnx.ModelProto:
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    inits = [numpy_helper.from_array(w, "w")] + ([numpy_helper.from_array(np.array([0.5] * w.shape[0], np.float32), "b")]
                                                 if bias else [])
    graph = helper.make_graph([helper.make_node("Conv", inputs, ["y"], **attrs)], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w.shape[1], 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, w.shape[0], None, None])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)


def test_a_one_channel_convolution_becomes_depthwise_plus_sum_with_the_same_outputs():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 9, 9)).astype(np.float32)
    for bias, attrs in ((True, {"pads": [2, 2, 2, 2], "strides": [2, 2]}), (False, {"dilations": [2, 2]})):
        w = rng.standard_normal((1, 5, 3, 3)).astype(np.float32)
        model = _conv_graph(w, bias, **attrs)
        want = _run(model, x)[0]
        if not bias and not attrs.get("pads"):  # by hand: 3x3 taps 2 apart, no padding → 5x5
            hand = sum(w[0, c, i, j] * x[:, c, 2 * i:2 * i + 5, 2 * j:2 * j + 5]
                       for c in range(5) for i in range(3) for j in range(3))
            np.testing.assert_allclose(want[:, 0], hand, atol=1e-5)
        assert depthwise_single_output(model) == 1
        onnx.checker.check_model(model)
        assert [n.op_type for n in model.graph.node] == ["Conv", "ReduceSum"] + (["Add"] if bias else [])
        assert "w" not in {i.name for i in model.graph.initializer}  # the old weights are gone
        np.testing.assert_allclose(_run(model, x)[0], want, atol=1e-5)
    # An empty bias name (ONNX's "no bias") adds no Add; weights that a graph input overrides
    # are not constants and are left alone.
    w = rng.standard_normal((1, 5, 3, 3)).astype(np.float32)
    model = _conv_graph(w, False)
    model.graph.node[0].input.append("")
    want = _run(model, x)[0]
    assert depthwise_single_output(model) == 1 and [n.op_type for n in model.graph.node] == ["Conv", "ReduceSum"]
    np.testing.assert_allclose(_run(model, x)[0], want, atol=1e-5)
    overridable = _conv_graph(w, False)
    overridable.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape)))
    assert depthwise_single_output(overridable) == 0
    # Left alone: two output channels, a 1x1 kernel.
    for w, attrs in ((rng.standard_normal((2, 5, 3, 3)), {}), (rng.standard_normal((1, 5, 1, 1)), {})):
        assert depthwise_single_output(_conv_graph(w.astype(np.float32), True, **attrs)) == 0



def _conv_transpose_graph(w: np.ndarray, b: np.ndarray | None, **attrs) -> onnx.ModelProto:
    inputs = ["x", "w"] + (["b"] if b is not None else [])
    inits = [numpy_helper.from_array(w, "w")] + ([numpy_helper.from_array(b, "b")] if b is not None else [])
    graph = helper.make_graph([helper.make_node("ConvTranspose", inputs, ["y"], **attrs)], "convT",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w.shape[0], 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, w.shape[1], None, None])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)


def _conv_transpose_by_hand(x, w, b, stride, pad_begin, out_hw):
    """ONNX's definition: x[i] * w[t] lands at output s*i + t - pad_begin (per axis)."""
    n, _, h, wd = x.shape
    y = np.zeros((n, w.shape[1], *out_hw), np.float64)
    for i in range(h):
        for j in range(wd):
            for ty in range(w.shape[2]):
                for tx in range(w.shape[3]):
                    oy, ox = stride * i + ty - pad_begin[0], stride * j + tx - pad_begin[1]
                    if 0 <= oy < out_hw[0] and 0 <= ox < out_hw[1]:
                        y[:, :, oy, ox] += x[:, :, i, j] @ w[:, :, ty, tx]
    return y + (0 if b is None else b[None, :, None, None])


def test_a_strided_transposed_convolution_becomes_phase_convolutions_with_the_same_outputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    cases = [((3, 4, 4, 4), True, {"strides": [2, 2], "pads": [1, 1, 1, 1]}),   # Keras' 4x4 "same"
             ((3, 2, 3, 3), False, {"strides": [2, 2], "pads": [1, 1, 0, 0]}),  # odd kernel, uneven pads
             ((3, 2, 3, 3), False, {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]})]
    for shape, bias, attrs in cases:
        w = rng.standard_normal(shape).astype(np.float32)
        b = rng.standard_normal(shape[1]).astype(np.float32) if bias else None
        model = _conv_transpose_graph(w, b, **attrs)
        want = _run(model, x)[0]
        assert want.shape[2:] == (10, 12)  # twice the input
        hand = _conv_transpose_by_hand(x, w, b, 2, attrs["pads"][:2], (10, 12))
        np.testing.assert_allclose(want, hand, atol=1e-4)
        assert subpixel_transposed(model) == 1
        onnx.checker.check_model(model)
        ops = [n.op_type for n in model.graph.node]
        assert ops == ["Conv"] * 4 + ["Concat", "DepthToSpace"] and "w" not in {i.name for i in model.graph.initializer}
        np.testing.assert_allclose(_run(model, x)[0], want, atol=1e-5)
        assert isinstance(faster(model, _conv_transpose_graph(w, b, **attrs), batch=2), bool)
    # Left alone: "valid" padding (the output is not twice the input), stride 1.
    w = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    assert subpixel_transposed(_conv_transpose_graph(w, None, strides=[2, 2], pads=[0, 0, 0, 0])) == 0
    assert subpixel_transposed(_conv_transpose_graph(w, None, strides=[1, 1], pads=[1, 1, 2, 2])) == 0