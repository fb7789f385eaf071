"""Rewrites of an exported ONNX graph that make onnxruntime faster without changing its outputs
(the export's parity check against Keras runs after them).

* :func:`fold_prelu`: Keras' PReLU, ``relu(x) - alpha * relu(-x)``, reaches ONNX as five
  element-wise nodes (Relu, Neg, Relu, Mul, Add), each a full pass over the feature map; ONNX has
  it as one operator, ``PRelu(x, slope)``. On the SRGAN generator the five nodes were ~10% of
  onnxruntime's time at batch 64 (docs/serving.md).
* :func:`depthwise_single_output`: a convolution to ONE channel (the last layer of an image
  network, e.g. SRGAN's 9x9 one) as a depthwise convolution and a sum over the channels, the same
  arithmetic: ``y = sum_c (x_c * w_c) + b``. onnxruntime computes a one-output convolution as a
  matrix-vector product over an unfolded (im2col) copy of the input, or pads it to 16 outputs in
  its blocked layout; either way it was 53-66% of the SRGAN generator's time on one thread, and
  the rewrite made the whole generator 2.6x faster (47 → 18 ms for 32 images).
* :func:`subpixel_transposed`: a strided transposed convolution (DCGAN's and the U-Net's
  upsampling) as one ordinary convolution per output phase (an output pixel's position modulo
  the stride), each with exactly the kernel taps that reach it, concatenated and rearranged by
  ``DepthToSpace`` (the sub-pixel view of Shi et al. 2016, "Real-Time Single Image and Video
  Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", sec. 2.2).
  onnxruntime runs ``ConvTranspose`` as a matrix product and a col2im scatter, 73-83% of the
  DCGAN and pix2pix generators' time on one thread; whether the phases are faster depends on
  the shapes, so the exporter keeps them only when :func:`faster` measures it.

A constant is an initializer that is not also a graph input (an input may override it).
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


def depthwise_single_output(model) -> int:
    """Replace every ``Conv`` with one output channel, several input channels, a kernel larger
    than 1x1, ``group = 1`` and constant weights by ``Conv(group = C_in)`` (each channel with its
    own kernel; strides, pads and dilations unchanged) → ``ReduceSum`` over the channels (→
    ``Add`` of the bias). Returns how many were rewritten; ``model`` (an ``onnx.ModelProto`` of
    opset ≥ 13, where ReduceSum takes its axes as an input) is changed in place."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    if _opset(model) < 13:
        return 0
    constants = _constants(graph)
    nodes, replaced, rewritten = [], set(), 0
    for node in graph.node:
        weights = constants.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w = numpy_helper.to_array(weights) if weights is not None else None
        if (w is None or w.ndim != 4 or w.shape[0] != 1 or w.shape[1] < 2 or w.shape[2] * w.shape[3] < 2
                or attrs.get("group", 1) != 1):
            nodes.append(node)
            continue
        name, channels = node.name or node.output[0], w.shape[1]
        depthwise_w = numpy_helper.from_array(w.reshape(channels, 1, *w.shape[2:]), f"{name}/depthwise_w")
        axes = numpy_helper.from_array(np.array([1], np.int64), f"{name}/channel_axis")
        graph.initializer.extend([depthwise_w, axes])
        per_channel = f"{name}/per_channel"
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        summed = f"{name}/summed" if bias else node.output[0]
        nodes.append(helper.make_node("Conv", [node.input[0], depthwise_w.name], [per_channel],
                                      name=f"{name}/depthwise", **{**attrs, "group": int(channels)}))
        nodes.append(helper.make_node("ReduceSum", [per_channel, axes.name], [summed], name=f"{name}/sum",
                                      keepdims=1))
        if bias:
            nodes.append(helper.make_node("Add", [summed, bias], [node.output[0]], name=f"{name}/bias"))
        replaced.add(weights.name)
        rewritten += 1
    if rewritten:
        _swap_nodes(graph, nodes, replaced)
    return rewritten


def _constants(graph) -> dict:
    inputs = {i.name for i in graph.input}
    return {init.name: init for init in graph.initializer if init.name not in inputs}


def _swap_nodes(graph, nodes: list, replaced: set) -> None:
    """``graph``'s nodes become ``nodes``; the initializers named in ``replaced`` go when no node,
    graph input or graph output uses them any more."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = ({name for node in graph.node for name in node.input} | {i.name for i in graph.input}
            | {o.name for o in graph.output})
    for init in [i for i in graph.initializer if i.name in replaced and i.name not in used]:
        graph.initializer.remove(init)


def _opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def subpixel_transposed(model) -> int:
    """Replace every 2-D ``ConvTranspose`` with constant weights (and bias), ``group = 1``, no
    dilation, explicit pads, no ``output_shape`` and an output exactly ``stride`` times its input
    (Keras' ``padding="same"``) by one ``Conv`` per output phase (exactly the taps that reach it,
    no zeros) → ``Concat`` → ``DepthToSpace(stride)``. Returns how many were rewritten; ``model``
    changes in place. Whether it pays depends on the shapes (a large speed-up for the U-Net's
    many-channel small maps, none for DCGAN's), so the exporter keeps it only when measured
    faster: :func:`faster`."""
    from onnx import helper, numpy_helper

    graph = model.graph
    if _opset(model) < 11:  # DepthToSpace's mode attribute
        return 0
    constants = _constants(graph)
    nodes, replaced, rewritten = [], set(), 0
    for node in graph.node:
        weights = constants.get(node.input[1]) if node.op_type == "ConvTranspose" and len(node.input) > 1 else None
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        plan = _subpixel_plan(node, numpy_helper.to_array(weights)) if weights is not None else None
        if plan is None or (bias is not None and bias not in constants):
            nodes.append(node)
            continue
        phases, stride = plan
        name = node.name or node.output[0]
        outputs = []
        for k, (kernel, pads) in enumerate(phases):
            w = numpy_helper.from_array(kernel, f"{name}/phase{k}_w")
            graph.initializer.append(w)
            outputs.append(f"{name}/phase{k}")
            nodes.append(helper.make_node("Conv", [node.input[0], w.name] + ([bias] if bias else []), [outputs[-1]],
                                          name=f"{name}/phase{k}", kernel_shape=list(kernel.shape[2:]), pads=pads))
        nodes.append(helper.make_node("Concat", outputs, [f"{name}/phases"], name=f"{name}/phases", axis=1))
        nodes.append(helper.make_node("DepthToSpace", [f"{name}/phases"], [node.output[0]], name=f"{name}/subpixel",
                                      blocksize=stride, mode="DCR"))
        replaced.add(weights.name)
        rewritten += 1
    if rewritten:
        _swap_nodes(graph, nodes, replaced)
    return rewritten


def _subpixel_plan(node, w):
    """``([(kernel [C_out, C_in, kh, kw], conv pads) per phase, row-major], s)`` for a
    ConvTranspose that :func:`subpixel_transposed` can rewrite, else None.

    Per axis, ONNX's ConvTranspose puts ``x[i] * w[t]`` at output ``o = s*i + t - pad_begin``.
    Output ``o = s*j + phase`` therefore takes input ``j + d`` with tap ``t = phase + pad_begin -
    s*d``: for each phase, the taps' offsets ``d`` are consecutive, and a convolution padded by
    ``-min d`` before and ``max d`` after puts them at output ``j``."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if (w.ndim != 4 or attrs.get("group", 1) != 1 or "output_shape" in attrs
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or any(d != 1 for d in attrs.get("dilations", [1, 1]))):
        return None
    strides = list(attrs.get("strides", [1, 1]))
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    extra = list(attrs.get("output_padding", [0, 0]))
    if len(set(strides)) != 1 or strides[0] < 2 or kernel != list(w.shape[2:]):
        return None
    s = strides[0]
    per_axis = []
    for a in range(2):  # output = s*(H-1) + k - pads + output_padding must be s*H for every H
        if kernel[a] - pads[a] - pads[a + 2] + extra[a] != s:
            return None
        phases = []
        for phase in range(s):
            taps = sorted(((phase + pads[a] - t) // s, t) for t in range(kernel[a]) if (phase + pads[a] - t) % s == 0)
            if not taps or taps[0][0] > 0 or taps[-1][0] < 0:
                return None
            phases.append(taps)
        per_axis.append(phases)
    out = []
    for taps_y in per_axis[0]:
        for taps_x in per_axis[1]:
            k = w[:, :, [t for _, t in taps_y]][:, :, :, [t for _, t in taps_x]].transpose(1, 0, 2, 3)
            out.append((k.copy(), [-taps_y[0][0], -taps_x[0][0], taps_y[-1][0], taps_x[-1][0]]))
    return out, s


def faster(candidate, model, batch: int = 32, calls: int = 20, margin: float = 0.9) -> bool:
    """True when onnxruntime (one thread, on ``batch`` random inputs) runs ``candidate`` in at most
    ``margin`` of ``model``'s time: the fastest of ``calls`` calls each, the two alternating so
    that a busy moment hits both. False when an input has a free dimension besides the batch."""
    import time

    import numpy as np
    import onnxruntime as ort

    feeds = {}
    rng = np.random.default_rng(0)
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:  # an overridable default: not fed
            continue
        dtype = {1: np.float32, 6: np.int32, 7: np.int64}.get(value.type.tensor_type.elem_type)
        shape = value.type.tensor_type.shape
        dims = [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]
        if dtype is None or not dims or any(d is None for d in dims[1:]):
            return False  # not a batch of fixed-size float images or integer labels
        dims[0] = dims[0] or batch
        feeds[value.name] = (np.zeros(dims, dtype) if dtype is not np.float32  # labels: class 0
                             else rng.uniform(-1, 1, dims).astype(np.float32))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = [ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                for m in (candidate, model)]
    best = [float("inf"), float("inf")]
    for _ in range(calls + 1):  # the first round warms up and counts like the others
        for k, session in enumerate(sessions):
            started = time.perf_counter()
            session.run(None, feeds)
            best[k] = min(best[k], time.perf_counter() - started)
    return best[0] <= margin * best[1]
