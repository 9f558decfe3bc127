"""facelens explain: Grad-CAM, occlusion and filter visualisation, and the float-vs-INT8 check.

Every method takes BGR pixel images at the model's input size (float32, 0..255) and
returns numpy arrays; figures live in :mod:`explain.figures`.
"""

# convert loads TensorFlow with its native start-up banner silenced; importing it
# first keeps that banner off explain's output too.
import convert  # noqa: F401
