"""The exponential moving average of the parameters (``transforms/ema.py``).

Keras's EMA inside the pipeline is checked against TF-Keras in
``tests/oracle/test_current_extras_oracle.py``; ``finalize_variable_values``
in ``tests/optimizers/test_families.py``.
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import jaxopt_keras as jk


def test_ema_params_needs_a_moving_average():
    params = {"w": jnp.ones(3), "b": jnp.ones(3)}
    t = jk.chain(jk.sgd(learning_rate=0.5), jk.decoupled_weight_decay(0.1, learning_rate=0.5, mask={"w": True, "b": False}))
    with pytest.raises(ValueError, match="holds no moving average"):
        jk.ema_params(t.init(params))
