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
            raise ValueError(f"unknown dlib tensor version {version}")
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
    try:
        return _parse_weights(Path(path).read_bytes(), path)
    except (ValueError, IndexError) as error:  # truncated file or unknown layout
        raise FaceModelUnavailable(f"{path} cannot be read as dlib's face recognition network: {error}") from error


def _parse_weights(data: bytes, path) -> ResNetWeights:
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


def _out_side(side: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (side + 2 * padding - kernel) // stride + 1


class _Graph:
    """Collects ONNX nodes and weights; every value is (name, (channels, side)), chips being square."""

    def __init__(self, weights: ResNetWeights):
        self.weights, self.nodes, self.initializers = weights, [], []

    def constant(self, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = f"const{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attributes) -> str:
        from onnx import helper

        name = f"{op.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [name], **attributes))
        return name

    def conv(self, x, index: int, relu: bool):
        """dlib's con layer followed by its affine layer, folded into one convolution."""
        (name, (_, side)), layer = x, self.weights.convs[index]
        scale, shift = self.weights.scales[index], self.weights.shifts[index]
        weight = self.constant((layer.weight * scale[:, None, None, None]).astype(np.float32))
        bias = self.constant((layer.bias * scale + shift).astype(np.float32))
        kernel = layer.weight.shape[2]
        out = self.node("Conv", [name, weight, bias], kernel_shape=[kernel, kernel],
                        strides=[layer.stride] * 2, pads=[layer.padding] * 4)
        if relu:
            out = self.node("Relu", [out])
        return out, (layer.weight.shape[0], _out_side(side, kernel, layer.stride, layer.padding))

    def pool(self, op: str, x, kernel: int, stride: int):
        name, (channels, side) = x
        out = self.node(op, [name], kernel_shape=[kernel, kernel], strides=[stride, stride])
        return out, (channels, _out_side(side, kernel, stride))

    def pad_to(self, x, shape):
        """dlib adds values of different shapes by zero-padding the smaller one (extra channels,
        bottom and right edges): this happens where a stride-2 block meets its pooled shortcut."""
        name, (channels, side) = x
        if (channels, side) == shape:
            return name
        pads = np.array([0, 0, 0, 0, 0, shape[0] - channels, shape[1] - side, shape[1] - side], np.int64)
        return self.node("Pad", [name, self.constant(pads)])

    def residual_block(self, x, first: int):
        """relu(conv-affine-relu-conv-affine(x) + x); on stride 2 the shortcut is 2x2-average-pooled."""
        residual = self.conv(self.conv(x, first, relu=True), first + 1, relu=False)
        shortcut = self.pool("AveragePool", x, 2, 2) if self.weights.convs[first].stride == 2 else x
        shape = tuple(max(a, b) for a, b in zip(residual[1], shortcut[1]))
        total = self.node("Add", [self.pad_to(residual, shape), self.pad_to(shortcut, shape)])
        return self.node("Relu", [total]), shape


def build_onnx(weights: ResNetWeights):
    """The network as an ONNX graph (opset 13) taking (N, 3, 150, 150) RGB values 0-255."""
    from onnx import TensorProto, helper

    graph = _Graph(weights)
    centred = graph.node("Sub", ["chips", graph.constant(weights.channel_means.reshape(1, 3, 1, 1))])
    x = graph.node("Mul", [centred, graph.constant(np.array(1 / 256, np.float32))]), (3, CHIP_SIZE)
    x = graph.pool("MaxPool", graph.conv(x, 0, relu=True), 3, 2)
    for first in range(1, len(weights.convs), 2):
        x = graph.residual_block(x, first)
    features = graph.node("Flatten", [graph.node("GlobalAveragePool", [x[0]])])
    graph.nodes.append(helper.make_node("MatMul", [features, graph.constant(weights.projection)], ["descriptors"]))
    model = helper.make_graph(
        graph.nodes, "dlib_face_recognition_resnet",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["N", 3, CHIP_SIZE, CHIP_SIZE])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", 128])],
        graph.initializers,
    )
    return helper.make_model(model, opset_imports=[helper.make_opsetid("", 13)])


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
