"""facelens explain: Grad-CAM, occlusion and filter visualisation, and the float-vs-INT8 check.

Every method takes BGR pixel images at the model's input size (float32, 0..255) and
returns numpy arrays; figures live in :mod:`explain.figures`.
"""

import os

# TensorFlow's C++ start-up chatter hides the tools' own output (set before it loads).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "3")
