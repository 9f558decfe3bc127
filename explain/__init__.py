"""facelens explain: Grad-CAM, occlusion and filter visualisation, and the float-vs-INT8 check.

Every method takes BGR pixel images at the model's input size (float32, 0..255) and
returns numpy arrays; figures live in :mod:`explain.figures`. Importing this package
loads nothing heavy: TensorFlow comes with the modules that need it.
"""
