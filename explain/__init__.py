"""facelens explain: Grad-CAM, occlusion and filter visualisation, and the float-vs-INT8 check.

Every method takes BGR pixel images at the model's input size (float32, 0..255) and
returns numpy arrays; figures live in :mod:`explain.figures`.
"""

from convert._quiet import load_tensorflow

# TensorFlow first, with its native start-up banner silenced, before explain's modules
# import Keras. (Making this lazy is issue 15's.)
load_tensorflow()
