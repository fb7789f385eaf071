"""ONNX graph rewrites (gen_keras/onnx_graph.py): PReLU's five element-wise nodes folded into one
``PRelu`` with the same outputs; left alone where an intermediate result is used elsewhere; and a
real export of the SRResNet generator ships the folded graph, within the export's parity."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from gen_keras.onnx_graph import fold_prelu

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
    from gen_keras.config import load_config
    from gen_keras.export import export_model
    from gen_keras.exported.manifest import verify_export
    from gen_keras.models import build_model

    cfg = load_config(ROOT / "pipelines" / "configs" / "sr_l1_sr4.yaml", ["model.g_filters=4", "model.residual_blocks=1"])
    export_dir = export_model(build_model(cfg.model), tmp_path / "export")
    ep = verify_export(export_dir).manifest["endpoints"]["translate"]
    ops = [n.op_type for n in onnx.load(str(export_dir / ep["onnx"])).graph.node]
    assert ops.count("PRelu") == 4 and "Neg" not in ops  # head, one residual block, two upsamplings
    assert ep["onnx_parity_max_abs_diff"] <= 1e-4
