"""Every optimizer x family x argument x kind of bad value, and what Keras does with it.

The cases come from the registry: each spec's numeric constructor arguments
and the family's shared ones, with the bad values :data:`KINDS`; then the
other arguments the class takes (bools, ``name``, ``slot_dtype``, step
counts...), an unknown keyword and the clipping pairs, with their bad values
:data:`OTHER`.  An outcome is one of

* ``"TypeError"`` / ``"ValueError"`` (any exception type name): the
  constructor raised it;
* ``"TypeError@step"`` ...: the constructor accepted it, the first
  ``apply_gradients`` raised it;
* ``"nan@step"``: accepted, and one step made a parameter NaN or infinite;
* ``"ok"``: accepted, and the step is finite.

:func:`keras_outcomes` asks TF-Keras (legacy and current, in-process) and
Keras 3 (in a subprocess, ``bad_arguments_runner.py``); the answers are kept
in ``bad_arguments.json`` (``python tests/bad_arguments.py --write``
regenerates it, ``test_error_table.py`` checks it against live Keras), which
``tests/keras/test_argument_table.py`` holds our constructors to and
``docs/errors.md`` is generated from.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
from typing import Any, Iterator

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SNAPSHOT = HERE / "bad_arguments.json"

# name -> (value, how the docs print it).
KINDS: dict[str, tuple[Any, str]] = {
    "none": (None, "None"),
    "string": ("abc", '"abc"'),
    "numeric_string": ("0.1", '"0.1"'),
    "negative": (-1.0, "-1.0"),
    "nan": (math.nan, "nan"),
    "inf": (math.inf, "inf"),
    "list": ([0.1], "[0.1]"),
    "bool": (True, "True"),
    "out_of_range": (1.5, "1.5"),
}
# Shared numeric arguments each family's constructors take (EMA's only matter with use_ema=True).
SHARED = {
    "legacy": ("clipnorm", "clipvalue", "global_clipnorm", "decay"),
    "current": (
        "clipnorm",
        "clipvalue",
        "global_clipnorm",
        "weight_decay",
        "ema_momentum",
        "ema_overwrite_frequency",
        "loss_scale_factor",
        "gradient_accumulation_steps",
    ),
}
SHARED["keras3"] = SHARED["current"]
# Numeric arguments whose default is None.
NUMERIC_NONE_DEFAULT = set(SHARED["current"]) | {"adam_weight_decay", "rms_rate"}
# Arguments that only matter with another one set.
CONTEXT = {"ema_momentum": {"use_ema": True}, "ema_overwrite_frequency": {"use_ema": True}}
# Arguments whose meaning is a fraction in [0, 1] (1.5 is out of their range).
FRACTIONS = ("beta_1", "beta_2", "adam_beta_1", "adam_beta_2", "rho", "momentum", "ema_momentum")


def numeric_arguments(spec) -> list[str]:
    """The spec's numeric constructor arguments, then the family's shared ones."""
    own = [
        k
        for k, v in {**spec.defaults, **spec.extra_args}.items()
        if (isinstance(v, (int, float)) and not isinstance(v, bool)) or k in NUMERIC_NONE_DEFAULT
    ]
    return own + [k for k in SHARED[spec.family] if k not in own]


def kinds_for(arg: str) -> list[str]:
    """The bad-value kinds tried on ``arg``: all, ``out_of_range`` only for fractions."""
    return [k for k in KINDS if k != "out_of_range" or arg in FRACTIONS]


# A non-bool for a bool argument.
BOOL_KINDS: dict[str, tuple[Any, str]] = {
    "none": (None, "None"),
    "yes": ("yes", '"yes"'),
    "one": (1, "1"),
    "half": (0.5, "0.5"),
    "list": ([True], "[True]"),
}
# A learning-rate schedule, built by each side from its own library (``call_kwargs``'s ``schedule``).
SCHEDULE = "<schedule>"
# The other arguments (not numbers), with their bad values; an argument named
# ``a+b`` is ``a`` and ``b`` together (the value is the keyword arguments).
OTHER: dict[str, dict[str, tuple[Any, str]]] = {
    "not_an_argument": {"unknown": (1, "not_an_argument=1")},
    "clipnorm+global_clipnorm": {"both": ({"clipnorm": 1.0, "global_clipnorm": 1.0}, "both 1.0")},
    "clipnorm+clipvalue": {"both": ({"clipnorm": 1.0, "clipvalue": 1.0}, "both 1.0")},
    "name": {"number": (3, "3"), "list": (["a"], '["a"]')},
    "slot_dtype": {"string": ("abc", '"abc"'), "number": (3, "3")},
    "exclude_layers": {"string": ("dense", '"dense"'), "number": (3, "3"), "list_of_numbers": ([1], "[1]")},
    "gradient_accumulation_steps": {
        "zero": (0, "0"),
        "one": (1, "1"),
        "minus_one": (-1, "-1"),
        "fraction": (2.5, "2.5"),
        "integer_string": ("2", '"2"'),
    },
    "ema_overwrite_frequency": {
        "zero": (0, "0"),
        "minus_one": (-1, "-1"),
        "fraction": (2.5, "2.5"),
        "integer_string": ("2", '"2"'),
    },
    "learning_rate": {"schedule": (SCHEDULE, "a schedule")},
    # OptimizerV2's deprecated alias of the learning rate (the legacy family only).
    "lr": {
        "negative": (-0.1, "-0.1"),
        "string": ("abc", '"abc"'),
        "list": ([0.1], "[0.1]"),
        "schedule": (SCHEDULE, "a schedule"),
        "callable": (lambda: 0.1, "lambda: 0.1"),
    },
    "learning_rate_power": {"positive": (0.5, "0.5")},
}
BOOL_ARGS = ("amsgrad", "nesterov", "centered", "adaptive_epsilon", "relative_step", "exclude_embeddings", "use_ema", "jit_compile")
OTHER.update({arg: BOOL_KINDS for arg in BOOL_ARGS})


def other_arguments(spec) -> list[str]:
    """The keys of :data:`OTHER` the spec's class takes (its own and its family's arguments), the
    unknown one, the clipping pairs, and in the legacy family ``learning_rate`` (a schedule) and
    the ``lr`` alias."""
    from jaxopt_keras.keras.base_args import BASE_ARGS

    takes = {**spec.defaults, **spec.extra_args, **BASE_ARGS[spec.family], **spec.base_defaults, "name": None}
    always = ("not_an_argument", "clipnorm+global_clipnorm", "clipnorm+clipvalue")
    return [
        arg
        for arg in OTHER
        if arg in always
        or (arg in ("learning_rate", "lr") and spec.family == "legacy")
        or (arg not in ("learning_rate", "lr") and arg in takes and arg not in spec.ignored)
    ]


def value_of(arg: str, kind: str) -> tuple[Any, str]:
    """A case's bad value and how the docs print it (:data:`OTHER`, else :data:`KINDS`)."""
    return OTHER[arg][kind] if kind in OTHER.get(arg, {}) else KINDS[kind]


def is_other(arg: str, kind: str) -> bool:
    """Whether a case is one of :data:`OTHER`'s (not a numeric argument's)."""
    return kind in OTHER.get(arg, {})


def cases(families=("legacy", "current", "keras3")) -> Iterator[tuple[str, str, str, str]]:
    """``(family, class_name, argument, kind)`` for every case, in registry order: the numeric
    arguments (:data:`KINDS`), then the others (:data:`OTHER`)."""
    yield from numeric_cases(families)
    yield from other_cases(families)


def numeric_cases(families=("legacy", "current", "keras3")) -> Iterator[tuple[str, str, str, str]]:
    """The cases of the numeric arguments, in registry order."""
    from jaxopt_keras import registry

    for family in families:
        for e in registry.entries(family):
            for arg in numeric_arguments(e.specs[family]):
                for kind in kinds_for(arg):
                    yield family, e.class_name, arg, kind


def other_cases(families=("legacy", "current", "keras3")) -> Iterator[tuple[str, str, str, str]]:
    """The cases of the other arguments (:data:`OTHER`), in registry order."""
    from jaxopt_keras import registry

    for family in families:
        for e in registry.entries(family):
            for arg in other_arguments(e.specs[family]):
                for kind in OTHER[arg]:
                    yield family, e.class_name, arg, kind


def case_key(family: str, name: str, arg: str, kind: str) -> str:
    return f"{family}/{name}/{arg}/{kind}"


def call_kwargs(name: str, arg: str, kind: str, schedule=None) -> dict:
    """The constructor's keyword arguments for a case (``schedule()`` makes :data:`SCHEDULE`)."""
    value = value_of(arg, kind)[0]
    if isinstance(value, str) and value == SCHEDULE:
        value = schedule()
    if "+" in arg:
        return dict(value)
    return {**CONTEXT.get(arg, {}), arg: value}


def outcome(make, step) -> str:
    """What happens: ``make()`` builds an optimizer, ``step(opt)`` runs one step and returns the new params."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            opt = make()
        except Exception as e:  # noqa: BLE001 - the type is the outcome
            return type(e).__name__
        try:
            params = step(opt)
        except Exception as e:  # noqa: BLE001
            return type(e).__name__ + "@step"
    finite = all(np.all(np.isfinite(np.asarray(p, np.float64))) for p in params)
    return "ok" if finite else "nan@step"


# A 2x3 matrix and a vector (Muon needs a matrix; Adafactor factors it).
PARAMS = [np.arange(6, dtype=np.float32).reshape(2, 3) / 10 + 0.1, np.array([0.5, -0.3, 0.2], np.float32)]
GRADS = [np.full((2, 3), 0.2, np.float32), np.array([0.1, -0.2, 0.3], np.float32)]


def tf_keras_outcome(family: str, name: str, arg: str, kind: str) -> str:
    """TF-Keras's outcome (legacy: ``tf_keras.optimizers.legacy``; current: ``tf_keras.optimizers``)."""
    import tensorflow as tf
    import tf_keras

    cls = getattr(tf_keras.optimizers.legacy if family == "legacy" else tf_keras.optimizers, name)

    def step(opt):
        vs = [tf.Variable(p) for p in PARAMS]
        opt.apply_gradients(zip([tf.constant(g) for g in GRADS], vs))
        return [v.numpy() for v in vs]

    schedule = lambda: tf_keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)  # noqa: E731
    return outcome(lambda: cls(**call_kwargs(name, arg, kind, schedule)), step)


def keras3_outcomes(keys: list[tuple[str, str, str]]) -> list[str]:
    """Keras 3's outcomes for ``(name, arg, kind)``, in a subprocess (JAX backend)."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(HERE / "oracle" / "bad_arguments_runner.py")],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"the Keras 3 runner failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def keras_outcomes(selected: list[tuple[str, str, str, str]]) -> dict[str, str]:
    """Keras's outcome of each case: case key -> outcome."""
    out = {}
    for f, n, a, k in selected:
        if f != "keras3":
            out[case_key(f, n, a, k)] = tf_keras_outcome(f, n, a, k)
    k3 = [(n, a, k) for f, n, a, k in selected if f == "keras3"]
    if k3:
        out.update({case_key("keras3", *c): o for c, o in zip(k3, keras3_outcomes(k3))})
    return out


def our_schedule():
    """Our learning-rate schedule for :data:`SCHEDULE` (TF-Keras's and Keras 3's are theirs)."""
    from jaxopt_keras import schedules

    return schedules.ExponentialDecay(0.1, 10, 0.9)


def our_outcome(family: str, name: str, arg: str, kind: str, via: str = "class") -> str:
    """Our outcome, through the Keras-like class (``via="class"``) or the functional factory."""
    import jax.numpy as jnp

    import jaxopt_keras as jk
    from jaxopt_keras import optimizers as O

    kwargs = call_kwargs(name, arg, kind, our_schedule)
    if via == "factory":
        module = {"legacy": jk.legacy, "current": jk, "keras3": jk.keras3}[family]
        from jaxopt_keras import registry

        make = lambda: getattr(module, registry.find(name, family).function)(**kwargs)  # noqa: E731

        def step(tx):
            params = [jnp.asarray(p) for p in PARAMS]
            updates, _ = tx.update([jnp.asarray(g) for g in GRADS], tx.init(params), params)
            return jk.apply_updates(params, updates)

        return outcome(make, step)
    module = {"legacy": O.legacy, "current": O, "keras3": O.keras3}[family]

    def step_class(opt):
        vs = [jk.Variable(p, name=f"v{i}") for i, p in enumerate(PARAMS)]
        opt.apply_gradients(zip([jnp.asarray(g) for g in GRADS], vs))
        return [v.numpy() for v in vs]

    return outcome(lambda: getattr(module, name)(**kwargs), step_class)


def our_construction(family: str, name: str, arg: str, kind: str, via: str = "class") -> str:
    """Our constructor's outcome: the exception type's name, or ``"ok"`` (no step is run)."""
    import warnings

    import jaxopt_keras as jk
    from jaxopt_keras import optimizers as O
    from jaxopt_keras import registry

    kwargs = call_kwargs(name, arg, kind, our_schedule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if via == "class":
                getattr({"legacy": O.legacy, "current": O, "keras3": O.keras3}[family], name)(**kwargs)
            else:
                module = {"legacy": jk.legacy, "current": jk, "keras3": jk.keras3}[family]
                getattr(module, registry.find(name, family).function)(**kwargs)
        except Exception as e:  # noqa: BLE001 - the type is the outcome
            return type(e).__name__
    return "ok"


# TensorFlow's own errors, as the Python type we raise for the same input.
_TF_ERRORS = {"UnimplementedError": "TypeError", "InvalidArgumentError": "TypeError"}
# Why we differ from Keras, where we do on purpose (the docs print these).
REASONS = {
    "nan": "Keras accepts the value and its first step makes the parameters NaN or infinite; we refuse it "
    "at construction (nothing is built).",
    "bool": "A bool where a number is expected: Keras mostly takes `True` as 1; we refuse it (ValueError).",
    "nonfinite": "NaN or an infinity: Keras accepts it (a comparison with NaN is false, so its range checks "
    "pass); we refuse every non-finite hyperparameter (ValueError).",
    "range": "Out of range: a fraction (beta, rho, momentum) outside [0, 1], or a negative epsilon, clip "
    "threshold, weight decay or accumulator; Keras accepts it and computes nonsense; we refuse it (ValueError).",
    "array": "A list: Keras broadcasts it through the step (a vector hyperparameter); a hyperparameter is a "
    "scalar, and we refuse it (TypeError).",
    "numeric_string": 'A numeric string: Keras 3 converts `"0.1"` in its ops and runs; we refuse every '
    "string (TypeError), as TF-Keras does.",
    "extension": "`loss_scale_factor` and `gradient_accumulation_steps` are not arguments of TF-Keras's current "
    "optimizers (a TypeError for any value); ours take them with Keras 3's rules.",
    "step_type": "Keras fails only inside its first step, with the error of whichever op meets the value first; "
    "we refuse it at construction with the type the family's ops usually raise.",
    "diverges": "A legal value whose iteration diverges: Keras and we both compute NaN (not an argument error).",
    "slot_dtype": "`slot_dtype` (the slots' dtype) is ours: Keras has no such argument and refuses any value "
    "as an unknown keyword (Keras 3: ValueError); ours refuses a value that is not a dtype (TypeError).",
    "integer": "A fractional `gradient_accumulation_steps`: Keras 3 accepts 2.5, then applies the sum of "
    "every 5 gradients divided by 2.5 (at `(iterations + 1) % 2.5 == 0`); we refuse a count that is not an "
    "integer (ValueError).",
}
# Legal values whose math diverges, in Keras and in ours alike (Muon's Newton-Schulz coefficients).
DIVERGING = {case_key("keras3", "Muon", f"muon_{c}", "negative") for c in "abc"}


def normalized(outcome_: str) -> str:
    """An outcome with TensorFlow's error types as their Python counterparts and no ``@step``."""
    base = outcome_.split("@")[0]
    return _TF_ERRORS.get(base, base)


def verdict(key: str, keras: str, ours: str) -> str:
    """``"agrees"``, a key of :data:`REASONS` (a deliberate difference), or ``"DISAGREES"``.

    ``ours`` is our constructor's outcome (an error type's name, or ``"ok"``).
    """
    family, _, arg, kind = key.split("/")
    errors = ("TypeError", "ValueError")
    if keras == "nan@step":
        if ours in errors:
            return "nan"
        return "diverges" if key in DIVERGING and ours == "ok" else "DISAGREES"
    if normalized(keras) == ours:
        return "agrees"
    if family == "current" and arg in ("loss_scale_factor", "gradient_accumulation_steps"):
        return "extension"
    if arg == "slot_dtype" and ours == "TypeError":
        return "slot_dtype"
    if (arg, kind, keras, ours) == ("gradient_accumulation_steps", "fraction", "ok", "ValueError"):
        return "integer"
    if keras.endswith("@step") and ours in errors:
        return "step_type"
    if keras == "ok":
        by_kind = {"bool": "bool", "nan": "nonfinite", "inf": "nonfinite", "negative": "range", "out_of_range": "range"}
        if kind in ("list", "numeric_string"):
            return ("array" if kind == "list" else "numeric_string") if ours == "TypeError" else "DISAGREES"
        if ours == "ValueError":
            return by_kind.get(kind, "DISAGREES")
    return "DISAGREES"


def load_snapshot() -> dict[str, str]:
    """Keras's outcomes as last recorded (case key -> outcome)."""
    return json.loads(SNAPSHOT.read_text())


def write_snapshot() -> None:
    """Asks Keras for every case and writes ``bad_arguments.json``."""
    outcomes = keras_outcomes(list(cases()))
    SNAPSHOT.write_text(json.dumps(outcomes, indent=0, sort_keys=False) + "\n")
    print(f"{len(outcomes)} cases written to {SNAPSHOT}")


DOCS = HERE.parent / "docs" / "errors.md"
_FAMILY_TITLES = {
    "legacy": "Legacy family (`tf.keras.optimizers.legacy`, `jaxopt_keras.legacy`)",
    "current": "Current family (`tf.keras.optimizers`, TF-Keras >= 2.11; `jaxopt_keras`)",
    "keras3": "Keras 3 family (`keras.optimizers`; `jaxopt_keras.keras3`)",
}
_INTRO = """# Bad constructor arguments: Keras's errors and ours

Every optimizer of every family was given each kind of bad value for each of
its numeric arguments (and the family's shared ones), and bad values of its
other arguments (each family's table "Other arguments": an unknown keyword,
two clipping arguments together, a non-bool for a bool, a bad `name`,
`slot_dtype`, `exclude_layers`, step counts, the legacy Nadam with a
learning-rate schedule, the legacy `lr` alias, Ftrl's positive
`learning_rate_power`); this page
lists what Keras does and what we do.  It is generated from the tests' data
(`tests/bad_arguments.json`, Keras's answers, checked against Keras itself by
`tests/oracle/test_error_table.py`; our answers are checked by
`tests/keras/test_argument_table.py`, which also fails when this page is out
of date).  Regenerate it with `python tests/bad_arguments.py --docs`.

Every refusal happens in the constructor (class or factory alike: they raise
the same error) and the message names the argument; nothing is built.  The
same checks guard `opt.<hyperparameter> = value` and `set_hyperparams`.

Not in the table: a zero-argument callable (`beta_1=lambda: 0.9`) is what
OptimizerV2 accepts for its `_set_hyper` hyperparameters (the learning rate,
the betas, `rho`, `momentum`, Ftrl's `beta`) and calls before every step; the
legacy classes do the same (called on the host before each jitted step, the
value written into the state: no recompilation).  The functional factories
refuse it with a TypeError: a transformation is traced once, so the callable
would be called once and frozen; set the value between steps with
`jaxopt_keras.set_hyperparams(state, beta_1=...)` instead.  A learning rate
that can take the step count (`lambda step: ...`) is a schedule of the step,
in the factories and the classes.

Also not in the table, and refused for the same reason as the `nan` cells:
the values inside their range whose first step divides by zero (each spec's
`singular`): `beta_1=1` for Adam, Adamax, AdamW and Lamb (and Muon's
`adam_beta_1`), `beta_2=1` for Nadam, Lamb and Schedule-Free AdamW,
Schedule-Free AdamW's `beta_1=0`, and Ftrl's `learning_rate=0`.  Keras
accepts them and its first step makes the parameters NaN; the constructors,
the factories and attribute assignment refuse them with a ValueError
(`tests/oracle/test_singular_values.py` runs Keras's side).
`set_hyperparams` checks ranges by name only and does not refuse them.

How to read a cell: `ok` (accepted, and the first step is finite), an error
type (both raise it), `TypeError*` (Keras raises it only in its first step; we
at construction), or `Keras → ours [reason]` where we differ on purpose
(`nan@step`: Keras accepts the value and its first step makes NaN).  A cell
naming classes holds the classes whose outcomes differ.  The EMA arguments are
tried with `use_ema=True`.  Keras, and we, take any value of a bool argument
for its truth (`amsgrad="yes"` is `amsgrad=True`, `None` is `False`): the
"Other arguments" tables show it.

## Deliberate differences

| reason | why |
|---|---|
"""


def _cell(rows: list[tuple[str, str, str, str]]) -> str:
    """One table cell: ``rows`` are ``(class, keras, ours, verdict)`` of one (family, argument, kind)."""

    def text(keras: str, ours: str, v: str) -> str:
        if v == "agrees":
            return normalized(keras) + ("*" if keras.endswith("@step") else "")
        return f"{keras} → {ours} [{v}]"

    groups: dict[str, list[str]] = {}
    for name, keras, ours, v in rows:
        groups.setdefault(text(keras, ours, v), []).append(name)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{', '.join(names)}: {t}" for t, names in groups.items())


def docs_page(snapshot: dict[str, str], ours: dict[str, str]) -> str:
    """The markdown of ``docs/errors.md``, from Keras's outcomes and ours (case key -> outcome)."""
    import collections

    counts = collections.Counter(verdict(k, snapshot[k], ours[k]) for k in snapshot)
    lines = [_INTRO.rstrip("\n")]
    lines += [f"| {r} | {why} |" for r, why in REASONS.items()]
    lines += ["", f"Of {len(snapshot)} cases, {counts['agrees']} agree with Keras; the rest differ on purpose:"]
    lines += ["", "| verdict | cases |", "|---|---|"]
    lines += [f"| {v} | {n} |" for v, n in sorted(counts.items(), key=lambda x: -x[1])]
    table: dict[str, dict[str, dict[str, list]]] = {}
    other: dict[str, dict[tuple[str, str], list]] = {}
    for key in snapshot:
        family, name, arg, kind = key.split("/")
        row = (name, snapshot[key], ours[key], verdict(key, snapshot[key], ours[key]))
        if is_other(arg, kind):
            other.setdefault(family, {}).setdefault((arg, kind), []).append(row)
        else:
            table.setdefault(family, {}).setdefault(arg, {}).setdefault(kind, []).append(row)
    for family, args in table.items():
        lines += ["", f"## {_FAMILY_TITLES[family]}", ""]
        lines += ["| argument | " + " | ".join(KINDS[k][1].replace("|", "\\|") for k in KINDS) + " |"]
        lines += ["|---" * (len(KINDS) + 1) + "|"]
        for arg, kinds in args.items():
            cells = [_cell(kinds[k]) if k in kinds else "" for k in KINDS]
            lines.append(f"| `{arg}` | " + " | ".join(cells) + " |")
        lines += ["", "Other arguments:", "", "| argument | value | outcome |", "|---|---|---|"]
        for (arg, kind), rows in other.get(family, {}).items():
            shown = " + ".join(f"`{a}`" for a in arg.split("+"))
            value = value_of(arg, kind)[1].replace("|", "\\|")
            lines.append(f"| {shown} | {value} | {_cell(rows)} |")
    return "\n".join(lines) + "\n"


def our_outcomes() -> dict[str, str]:
    """Our constructors' outcome for every case (case key -> outcome; the class's)."""
    return {case_key(*c): our_construction(*c) for c in cases()}


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_snapshot()
    if "--docs" in sys.argv:
        DOCS.write_text(docs_page(load_snapshot(), our_outcomes()))
        print(f"wrote {DOCS}")
