"""``jaxopt_keras.optimizers.schedules``: the same module as :mod:`jaxopt_keras.schedules`."""

from jaxopt_keras.schedules import *  # noqa: F401,F403
from jaxopt_keras.schedules import __all__  # noqa: F401
