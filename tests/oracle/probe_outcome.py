"""Runs a probe and reduces its outcome to JSON: the value it returns, or the
exception it raises (type and message), and the warnings it emits."""

from __future__ import annotations

import textwrap
import warnings
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np


def plain(x: Any) -> Any:
    """JSON-able: NumPy/JAX scalars as Python numbers, tuples as lists."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, (np.generic, np.ndarray)) or hasattr(x, "__jax_array__") or type(x).__module__.startswith("jax"):
        return np.asarray(x).tolist()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(type(x).__name__)


def run_probes(probes: dict, module: Any, var: Callable, reset_names: Callable) -> dict:
    out = {}
    for name, body in probes.items():
        source = "def probe(O3, Var, reset_names, np, jnp):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
        scope: dict = {}
        exec(compile(source, f"<probe {name}>", "exec"), scope)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = {"value": plain(scope["probe"](module, var, reset_names, np, jnp))}
            except Exception as e:  # the outcome being compared
                result = {"raises": type(e).__name__, "message": str(e)}
        result["warnings"] = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
        out[name] = result
    return out
