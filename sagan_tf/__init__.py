"""sagan_tf: a TensorFlow 2 / Keras 3 port of SAGAN (Zhang et al., ICML 2019).

Tracks the official brain-research/self-attention-gan code (commit ad9612e). Every
module lists its own deliberate deviations from that code in its docstring.
"""
import os

# The library is written against the TensorFlow backend of Keras 3.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
