"""The vector field of one FFJORD block, forward and time-reversed, wrapping a backbone."""

from __future__ import annotations

import tensorflow as tf


class Dynamics:
    """f(t, x, condition) of one flow block; `training` is read when a function is traced."""

    def __init__(self, backbone: tf.Module):
        self.backbone = backbone
        self.training = False
        if hasattr(backbone, "value_and_jacobian"):
            self.value_and_jacobian = self._value_and_jacobian

    def __call__(self, t, x, condition=None):
        # A bfloat16 backbone (precision setting) returns bfloat16: the ODE state stays in
        # the state's dtype.
        return tf.cast(self.backbone(t, x, condition, training=self.training), x.dtype)

    def _value_and_jacobian(self, t, x, condition=None):
        return self.backbone.value_and_jacobian(t, x, condition)

    def reversed(self, final_time: float) -> ReversedDynamics:
        return ReversedDynamics(self, final_time)


class ReversedDynamics:
    """g(s, x) = -f(T - s, x): integrating g from 0 to T runs the flow backwards in time."""

    def __init__(self, forward: Dynamics, final_time: float):
        self.forward, self.final_time = forward, final_time
        if hasattr(forward, "value_and_jacobian"):
            self.value_and_jacobian = self._value_and_jacobian

    def __call__(self, s, x, condition=None):
        return -self.forward(self.final_time - s, x, condition)

    def _value_and_jacobian(self, s, x, condition=None):
        f, jac = self.forward.value_and_jacobian(self.final_time - s, x, condition)
        return -f, -jac
