"""dlib's face-recognition ResNet rebuilt in Keras, from the ops ``edge`` reads out of its file.

The file is read by :mod:`edge.model.dlib_file` and walked into folded ops by
:func:`edge.model.dlib_graph.face_resnet` (both TensorFlow-free, so a device can build
the same network: ``edge models install``); :func:`build_keras` turns those ops into
named Keras layers, so Grad-CAM and the convert formats see the same network.
"""

from __future__ import annotations

from pathlib import Path

from edge.model.dlib_file import DlibNet
from edge.model.dlib_graph import INPUT_NAME, Op, face_resnet


def _layer(op: Op, inputs: list):
    """The Keras layer(s) for one op, applied to ``inputs``."""
    import keras

    if op.kind == "conv":
        (kh, kw), (sy, sx), (py, px) = (op.config[k] for k in ("size", "stride", "padding"))
        x = inputs[0]
        if op.same_padding:
            padding = "same"
        else:
            padding = "valid"  # dlib pads symmetrically (stride 2: not at all), Keras "same" not
            if py or px:
                x = keras.layers.ZeroPadding2D((py, px), name=f"{op.name}_pad")(x)
        layer = keras.layers.Conv2D(op.shape[-1], (kh, kw), strides=(sy, sx), padding=padding,
                                    name=op.name)  # fmt: skip
    elif op.kind == "dense":
        layer = keras.layers.Dense(op.shape[-1], use_bias="bias" in op.weights, name=op.name)
        x = inputs[0]
    elif op.kind == "add":
        return keras.layers.Add(name=op.name)([_pad_to(t, op.shape) for t in inputs])
    else:
        cls = {
            "relu": keras.layers.ReLU,
            "global_avg_pool": keras.layers.GlobalAveragePooling2D,
        }.get(op.kind)
        if cls is not None:
            return cls(name=op.name)(inputs[0])
        pool = keras.layers.AveragePooling2D if op.kind == "avg_pool" else keras.layers.MaxPooling2D
        return pool(op.config["size"], strides=op.config["stride"], name=op.name)(inputs[0])
    out = layer(x)
    layer.set_weights(list(op.weights.values()))
    return out


def _pad_to(t, shape: tuple[int, ...]):
    """dlib's add_prev_ zero-pads the smaller input at the end (bottom, right, last channels):
    how residual-down blocks add a 64-channel block to a 32-channel shortcut."""
    import keras

    gaps = [goal - have for goal, have in zip(shape, t.shape[1:], strict=True)]
    return keras.ops.pad(t, [[0, 0]] + [[0, g] for g in gaps]) if any(gaps) else t


def build_keras(net: DlibNet, path: Path | str = "dlib network", name: str = "dlib_resnet"):
    """The Keras equivalent of a dlib face ResNet: a normalised (N, H, W, 3) RGB batch,
    ``(pixel - mean) / 256`` as dlib's input layer does, to the (N, 128) descriptor."""
    import keras

    graph = face_resnet(net, path)
    tensors = {INPUT_NAME: keras.Input(graph.input_shape, name=INPUT_NAME)}
    for op in graph.ops:
        tensors[op.name] = _layer(op, [tensors[i] for i in op.inputs])
    return keras.Model(tensors[INPUT_NAME], tensors[graph.output], name=name)
