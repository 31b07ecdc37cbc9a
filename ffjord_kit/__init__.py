"""ffjord_kit: continuous (FFJORD) and spline normalizing flows for particle physics.

TensorFlow Probability picks tf_keras (the Keras 2 API) by itself when tf.keras is Keras 3;
the project imports `tf_keras` explicitly and never sets TF_USE_LEGACY_KERAS (that breaks TFP 0.25).
TensorFlow's start-up lines are hidden unless FFJORD_KIT_VERBOSE=1 or a script's --verbose
(quiet.py).
"""

from . import quiet

quiet.install()

__version__ = "0.1.0"
