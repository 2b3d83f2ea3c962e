"""Sparse embedding benchmark: a row-sparse step against the dense step.

A 1,000,000 x 64 float32 embedding table; each step touches 4096 rows (drawn
with repeats, as a batch of token ids would be).  For each optimizer the same
gradient is applied once as a dense array (the densified gradient) and once as
a :class:`jaxopt_keras.IndexedSlices`, each in a jitted step with the table and
the state donated.  Optimizers whose Keras sparse path touches only the rows
should run the sparse step at least 10x faster; the others (moments decaying on
every row) are listed for contrast.

Run as ``python -m benchmarks.sparse [--quick]``; it prints one JSON object
(the CLI runs it in a subprocess and stores it under ``results["sparse"]``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

ROWS, WIDTH, TOUCHED = 1_000_000, 64, 4096

# (family, factory name, kwargs, touches only the rows in Keras's sparse path)
CASES = [
    ("legacy", "adagrad", {}, True),
    ("current", "adagrad", {}, True),
    ("legacy", "sgd", {}, True),
    ("legacy", "sgd", {"momentum": 0.9}, True),
    ("legacy", "adadelta", {}, True),
    ("legacy", "rmsprop", {"momentum": 0.9}, True),
    ("legacy", "ftrl", {}, True),
    ("current", "rmsprop", {}, False),  # its velocity decays on every row
    ("legacy", "adam", {}, False),
    ("current", "adam", {}, False),
]
TARGET_SPEEDUP = 10.0


def _measure(step, args, repeats: int) -> tuple[float, float]:
    """Returns (compile seconds, median step milliseconds after two warm-up steps); ``args`` is updated in place."""
    import jax

    from benchmarks.measure import timed_steps

    t0 = time.perf_counter()
    compiled = step.lower(*args).compile()
    compile_s = time.perf_counter() - t0

    def one_step() -> None:
        args[0], args[1] = compiled(*args)
        jax.block_until_ready(args[0])

    return compile_s, 1e3 * statistics.median(timed_steps(one_step, repeats + 2)[2:])


def run(repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxopt_keras as jk

    rng = np.random.default_rng(0)
    indices = jnp.asarray(rng.integers(0, ROWS, TOUCHED).astype(np.int32))
    values = jnp.asarray(rng.standard_normal((TOUCHED, WIDTH)).astype(np.float32) * 0.01)
    sparse_grad = jk.IndexedSlices(values, indices, (ROWS, WIDTH))
    dense_grad = jax.block_until_ready(sparse_grad.to_dense())
    rows = []
    for family, name, kwargs, rows_only in CASES:
        factory = getattr(jk.legacy if family == "legacy" else jk, name)
        opt = factory(learning_rate=0.01, **kwargs)
        record = {"family": family, "optimizer": name, "kwargs": kwargs, "rows_only": rows_only}
        for kind, grad in (("dense", dense_grad), ("sparse", sparse_grad)):
            table = jnp.asarray(rng.standard_normal((ROWS, WIDTH)).astype(np.float32))
            state = opt.init(table)

            def step(p, s, g, opt=opt):
                u, s = opt.update(g, s, p)
                return jk.apply_updates(p, u), s

            jitted = jax.jit(step, donate_argnums=(0, 1))
            args = [table, state, grad]
            compile_s, step_ms = _measure(jitted, args, repeats)
            record[f"{kind}_ms"] = step_ms
            record[f"{kind}_compile_s"] = compile_s
            del args, table, state
        record["speedup"] = record["dense_ms"] / record["sparse_ms"]
        rows.append(record)
        print(
            f"sparse  {family:<8} {name:<9} {str(kwargs):<18} dense {record['dense_ms']:8.2f} ms  "
            f"sparse {record['sparse_ms']:7.3f} ms  x{record['speedup']:.1f}",
            file=sys.stderr,
            flush=True,
        )
    return {"rows": ROWS, "width": WIDTH, "touched": TOUCHED, "target_speedup": TARGET_SPEEDUP, "cases": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sparse")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    print(json.dumps(run(repeats=5 if args.quick else 20)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
