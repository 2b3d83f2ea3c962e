"""The algorithms layer: each optimizer's math, one module per algorithm.

:mod:`~jaxopt_keras.algorithms.spec` says what a module declares per
numerics family (with the parts of :mod:`~jaxopt_keras.algorithms.parts`),
and :mod:`~jaxopt_keras.algorithms.driver` runs a declaration over a
parameter tree.  The registry (:mod:`jaxopt_keras.registry`) lists the
modules.
"""
