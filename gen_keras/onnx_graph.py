"""Rewrites of an exported ONNX graph that make onnxruntime faster without changing its outputs
(the export's parity check against Keras runs after them).

* :func:`fold_prelu`: Keras' PReLU, ``relu(x) - alpha * relu(-x)``, reaches ONNX as five
  element-wise nodes (Relu, Neg, Relu, Mul, Add), each a full pass over the feature map; ONNX has
  it as one operator, ``PRelu(x, slope)``. On the SRGAN generator the five nodes were ~10% of
  onnxruntime's time at batch 64 (docs/serving.md).
"""
from __future__ import annotations

from collections import Counter


def fold_prelu(model) -> int:
    """Replace every ``Add(Relu(x), Mul(Relu(Neg(x)), k))`` with ``PRelu(x, -k)`` when ``k`` is a
    constant (an initializer) and the intermediate results feed nothing else; returns how many
    were folded. ``model``: an ``onnx.ModelProto``, changed in place."""
    from onnx import numpy_helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    uses = Counter(name for node in graph.node for name in node.input)
    uses.update(o.name for o in graph.output)
    constants = {init.name: init for init in graph.initializer}
    remove, replaced, folded = set(), set(), 0
    for add in graph.node:
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        for positive, negative in (add.input, add.input[::-1]):
            match = _prelu_parts(positive, negative, producer, constants)
            if match is None:
                continue
            relu_x, mul, relu_neg, neg, slope_name = match
            inner = [relu_x.output[0], mul.output[0], relu_neg.output[0], neg.output[0]]
            if any(uses[name] != 1 for name in inner):
                continue
            slope = numpy_helper.to_array(constants[slope_name])
            new_slope = numpy_helper.from_array(-slope, f"{add.name or add.output[0]}/prelu_slope")
            graph.initializer.append(new_slope)
            add.op_type, add.domain = "PRelu", ""
            del add.input[:]
            add.input.extend([relu_x.input[0], new_slope.name])
            remove.update(id(n) for n in (relu_x, mul, relu_neg, neg))
            replaced.add(slope_name)
            folded += 1
            break
    if folded:
        kept = [n for n in graph.node if id(n) not in remove]
        del graph.node[:]
        graph.node.extend(kept)
        used = {name for node in graph.node for name in node.input} | {i.name for i in graph.input}
        unused = [init for init in graph.initializer if init.name in replaced and init.name not in used]
        for init in unused:
            graph.initializer.remove(init)
    return folded


def _prelu_parts(positive: str, negative: str, producer: dict, constants: dict):
    """``(Relu(x), Mul, Relu(Neg(x)), Neg, k)`` when ``positive`` is ``Relu(x)`` and ``negative``
    is ``Mul(Relu(Neg(x)), k)`` (either input order of the Mul) for the same ``x``; else None."""
    relu_x, mul = producer.get(positive), producer.get(negative)
    if relu_x is None or mul is None or relu_x.op_type != "Relu" or mul.op_type != "Mul":
        return None
    for value, slope in (mul.input, mul.input[::-1]):
        relu_neg = producer.get(value)
        if slope not in constants or relu_neg is None or relu_neg.op_type != "Relu":
            continue
        neg = producer.get(relu_neg.input[0])
        if neg is not None and neg.op_type == "Neg" and neg.input[0] == relu_x.input[0]:
            return relu_x, mul, relu_neg, neg, slope
    return None
