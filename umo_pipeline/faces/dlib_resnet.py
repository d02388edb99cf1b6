"""dlib's 128-d face recognition ResNet run by onnxruntime, from the weights file dlib itself loads.

dlib-bin is built without BLAS: its own forward pass takes about 75 ms a face on the project's
2-core machines, the same arithmetic as an ONNX graph about 5-7 ms, and faces go in one batch.
The .dat file is read directly: a stream of dlib-serialised layers in forward order, whose
tensors are little-endian float32. tests/test_faces.py checks the result against dlib's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from umo_pipeline.errors import FaceModelUnavailable

CHIP_SIZE = 150
# dlib's compute_face_descriptor aligns faces with this much room around the landmarks.
CHIP_PADDING = 0.25
# Markers that open a layer with weights: the name, prefixed by its serialised length.
CONV_MARK = b"\x01\x05con_4"
AFFINE_MARK = b"\x01\x07affine_"
DENSE_MARK = b"\x01\x04fc_2"
INPUT_MARK = b"\x01\x15input_rgb_image_sized"


@dataclass
class Conv:
    weight: np.ndarray  # (out, in, kh, kw)
    bias: np.ndarray
    stride: int
    padding: int


@dataclass
class ResNetWeights:
    channel_means: np.ndarray  # RGB means dlib subtracts before dividing by 256
    convs: list[Conv]
    scales: list[np.ndarray]  # per-channel affine layers (batch norm folded at training end)
    shifts: list[np.ndarray]
    projection: np.ndarray  # (256, 128), no bias


class _Stream:
    """dlib's serialisation: integers as a control byte (low nibble = byte count, bit 7 = sign)
    followed by little-endian bytes; floats as mantissa * 2**exponent; tensors as raw float32."""

    def __init__(self, data: bytes, position: int = 0):
        self.data, self.position = data, position

    def integer(self) -> int:
        control = self.data[self.position]
        count = control & 0x0F
        value = int.from_bytes(self.data[self.position + 1 : self.position + 1 + count], "little")
        self.position += 1 + count
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        return float(mantissa) * 2.0 ** self.integer()

    def tensor(self) -> np.ndarray:
        version, *shape = (self.integer() for _ in range(5))
        if version != 2:
            raise ValueError(f"unknown tensor version {version}")
        size = int(np.prod(shape))
        values = np.frombuffer(self.data, dtype="<f4", count=size, offset=self.position)
        self.position += 4 * size
        return values.astype(np.float32).reshape(shape)

    def seek(self, marker: bytes) -> bool:
        found = self.data.find(marker, self.position)
        if found >= 0:
            self.position = found + len(marker)
        return found >= 0


def read_weights(path: str | Path) -> ResNetWeights:
    data = Path(path).read_bytes()
    stream = _Stream(data)
    if not stream.seek(INPUT_MARK):
        raise FaceModelUnavailable(f"{path} is not dlib's face recognition network (no RGB input layer)")
    means = np.array([stream.real() for _ in range(3)], dtype=np.float32)
    convs, scales, shifts, projection = [], [], [], None
    for position, marker in _layer_marks(data):
        if position < stream.position:
            continue  # the bytes happened to occur inside a tensor just read
        stream.position = position + len(marker)
        if marker == CONV_MARK:
            convs.append(_read_conv(stream))
        elif marker == AFFINE_MARK:
            params = stream.tensor().reshape(-1)
            scales.append(params[: params.size // 2])
            shifts.append(params[params.size // 2 :])
        else:
            outputs, inputs = stream.integer(), stream.integer()
            projection = stream.tensor().reshape(inputs, outputs)
            break
    if projection is None:
        raise FaceModelUnavailable(f"{path} is not dlib's face recognition network (no output layer)")
    weights = ResNetWeights(means, convs, scales, shifts, projection)
    _check_layout(weights, path)
    return weights


def _layer_marks(data: bytes) -> list[tuple[int, bytes]]:
    marks = []
    for marker in (CONV_MARK, AFFINE_MARK, DENSE_MARK):
        position = data.find(marker)
        while position >= 0:
            marks.append((position, marker))
            position = data.find(marker, position + 1)
    return sorted(marks)


def _read_conv(stream: _Stream) -> Conv:
    params = stream.tensor().reshape(-1)
    filters, rows, cols, stride, _, padding, _ = (stream.integer() for _ in range(7))
    inputs = (params.size - filters) // (filters * rows * cols)
    weight = params[: filters * inputs * rows * cols].reshape(filters, inputs, rows, cols)
    return Conv(weight, params[filters * inputs * rows * cols :], stride, padding)


def _check_layout(weights: ResNetWeights, path) -> None:
    """The forward pass below assumes dlib's face network: a 7x7 stem, then residual blocks of
    two 3x3 convolutions each, and a 256 -> 128 projection. Anything else is refused."""
    convs = weights.convs
    ok = (
        len(convs) % 2 == 1
        and len(weights.scales) == len(convs)
        and convs[0].weight.shape[1:] == (3, 7, 7)
        and all(c.weight.shape[2:] == (3, 3) for c in convs[1:])
        and all(s.size == c.weight.shape[0] for s, c in zip(weights.scales, convs))
        and weights.projection.shape == (convs[-1].weight.shape[0], 128)
    )
    if not ok:
        raise FaceModelUnavailable(f"{path} does not have the layout of dlib's face recognition ResNet")


def build_onnx(weights: ResNetWeights):
    """The network as an ONNX graph (opset 13), each affine folded into the convolution before it.

    Shapes are fixed (150x150 chips), so where dlib adds a block's output to a shortcut of a
    different shape, the zero padding it applies is written into the graph as Pad nodes."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(value, name))
        return name

    def conv(x: str, index: int, relu: bool) -> str:
        layer, scale, shift = weights.convs[index], weights.scales[index], weights.shifts[index]
        weight = constant(f"w{index}", (layer.weight * scale[:, None, None, None]).astype(np.float32))
        bias = constant(f"b{index}", (layer.bias * scale + shift).astype(np.float32))
        out = f"conv{index}"
        nodes.append(helper.make_node("Conv", [x, weight, bias], [out], strides=[layer.stride] * 2,
                                      pads=[layer.padding] * 4, kernel_shape=list(layer.weight.shape[2:])))
        if relu:
            nodes.append(helper.make_node("Relu", [out], [out + "_relu"]))
            out += "_relu"
        return out

    def padded(x: str, shape, target, name: str) -> str:
        extra = [t - s for s, t in zip(shape, target)]
        if not any(extra):
            return x
        pads = constant(name + "_pads", np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64))
        nodes.append(helper.make_node("Pad", [x, pads], [name]))
        return name

    def conv_shape(shape, index: int):
        layer = weights.convs[index]
        side = (shape[1] + 2 * layer.padding - layer.weight.shape[2]) // layer.stride + 1
        return (layer.weight.shape[0], side, side)

    means = constant("means", weights.channel_means.reshape(1, 3, 1, 1))
    nodes.append(helper.make_node("Sub", ["chips", means], ["centred"]))
    nodes.append(helper.make_node("Mul", ["centred", constant("inv256", np.array(1 / 256, np.float32))], ["x"]))
    x, shape = conv("x", 0, relu=True), conv_shape((3, CHIP_SIZE, CHIP_SIZE), 0)
    nodes.append(helper.make_node("MaxPool", [x], ["pooled"], kernel_shape=[3, 3], strides=[2, 2]))
    x, shape = "pooled", (shape[0], (shape[1] - 3) // 2 + 1, (shape[2] - 3) // 2 + 1)
    for first in range(1, len(weights.convs), 2):
        middle, residual_shape = conv(x, first, relu=True), conv_shape(shape, first)
        residual, residual_shape = conv(middle, first + 1, relu=False), conv_shape(residual_shape, first + 1)
        shortcut, shortcut_shape = x, shape
        if weights.convs[first].stride == 2:
            shortcut = f"shortcut{first}"
            nodes.append(helper.make_node("AveragePool", [x], [shortcut], kernel_shape=[2, 2], strides=[2, 2]))
            shortcut_shape = (shape[0], (shape[1] - 2) // 2 + 1, (shape[2] - 2) // 2 + 1)
        shape = tuple(max(a, b) for a, b in zip(residual_shape, shortcut_shape))
        total = f"sum{first}"
        nodes.append(helper.make_node("Add", [padded(residual, residual_shape, shape, f"padr{first}"),
                                              padded(shortcut, shortcut_shape, shape, f"pads{first}")], [total]))
        nodes.append(helper.make_node("Relu", [total], [f"block{first}"]))
        x = f"block{first}"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["averaged"]))
    nodes.append(helper.make_node("Flatten", ["averaged"], ["features"]))
    nodes.append(helper.make_node("MatMul", ["features", constant("projection", weights.projection)], ["descriptors"]))
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["N", 3, CHIP_SIZE, CHIP_SIZE])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", 128])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


class DlibResNet:
    """Embeds 150x150 RGB face chips (dlib's aligned crops) into dlib's 128-d face space."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Small convolutions: extra threads mostly spin and wait, and steal cores from the rest
        # of a busy process (generation, the web server), so one thread unless asked otherwise.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = build_onnx(read_weights(path)).SerializeToString()
        self._session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def __call__(self, chips: list[np.ndarray]) -> np.ndarray:
        """(N, 150, 150, 3) uint8 chips -> (N, 128) float32 descriptors, as dlib computes them."""
        if not chips:
            return np.zeros((0, 128), np.float32)
        batch = np.ascontiguousarray(np.stack(chips).transpose(0, 3, 1, 2), dtype=np.float32)
        return self._session.run(None, {"chips": batch})[0]
