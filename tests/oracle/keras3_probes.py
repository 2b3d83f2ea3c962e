"""Behaviours of Keras 3's optimizer API, as small programs run against Keras 3 and against ours.

Each probe is the body of a function of ``O3`` (``keras.optimizers``, or
``jaxopt_keras.optimizers.keras3``), ``Var`` (a variable constructor:
``Var(value, name)``), ``reset_names()`` (Keras 3's ``clear_session``; ours
resets the auto-name counters), ``np`` and ``jnp``.  Its outcome is what it
returns (made JSON-able), or the exception it raises (type and message), plus
the warnings it emits.  ``test_keras3_behaviour.py`` requires the same
outcome on both sides.

Where we deliberately differ from Keras 3, the probe is not here; the
difference is in ``docs/numerics.md`` (Keras 3 section) and tested on its own.
"""

PROBES = {
    # Constructor arguments and their errors.
    "unknown kwarg": "O3.Adam(lr=0.1)",
    "jit_compile is not an argument": "O3.Adam(jit_compile=True)",
    "decay warns and is ignored": "return O3.Adam(decay=0.1).get_config()['learning_rate']",
    "int learning rate": "O3.Adam(learning_rate=1)",
    "int momentum": "O3.SGD(momentum=0)",
    "momentum out of range": "O3.SGD(momentum=1.5)",
    "two clipping arguments": "O3.SGD(clipnorm=1.0, clipvalue=1.0)",
    "global and value clipping": "O3.SGD(global_clipnorm=1.0, clipvalue=1.0)",
    "accumulation steps 1": "O3.Adam(gradient_accumulation_steps=1)",
    "learning rate assigned None or a word": """
out = []
for value in (None, 'abc'):
    opt = O3.Adam()
    try:
        opt.learning_rate = value
    except Exception as e:
        out.append(type(e).__name__)
return out""",
    "no lr alias": """
opt = O3.Adam(learning_rate=0.01)
out = []
try:
    opt.lr
except AttributeError as e:
    out.append(str(e))
opt.lr = 0.5  # a plain attribute: the learning rate is unchanged
v = Var(np.ones(2), 'w')
opt.apply_gradients([(np.ones(2, np.float32), v)])
return out + [opt.lr, round(float(np.asarray(opt.learning_rate)), 6), np.round(np.asarray(v), 4).tolist()]""",
    "name assigned before and after the build": """
reset_names()
opt = O3.Adam(learning_rate=0.01)
opt.name = 'before'
v = Var(np.ones(2), 'w')
opt.apply_gradients([(np.ones(2, np.float32), v)])
out = [[x.path for x in opt.variables], opt.get_config()['name']]
for value in ('after', 5, None):
    opt.name = value
    out.append([opt.name, opt.get_config()['name'], [x.path for x in opt.variables]])
return out""",
    "function learning rate in the config": """
def schedule_fn():
    return 0.01
opt = O3.Adam(schedule_fn)
config = opt.get_config()
out = [config['learning_rate']]
for custom in ({'schedule_fn': schedule_fn}, {'package>schedule_fn': schedule_fn}):
    back = O3.Adam.from_config(dict(config), custom_objects=custom)  # Keras 3's from_config edits the dict it is given
    out.append(round(float(np.asarray(back.learning_rate)), 6))
back = O3.deserialize(O3.serialize(opt), custom_objects={'schedule_fn': schedule_fn})
out.append([type(back).__name__, round(float(np.asarray(back.learning_rate)), 6)])
for bad in (config, {**config, 'learning_rate': {**config['learning_rate'], 'config': None}}):
    try:
        O3.Adam.from_config(dict(bad))
    except TypeError as e:
        out.append(str(e))
return out""",
    "iterations has no setter": """
opt = O3.Adam(learning_rate=0.01)
try:
    opt.iterations = 5
except AttributeError as e:
    return str(e)""",
    "numpy integer accumulation steps": """
v = Var(np.ones(3), 'v')
opt = O3.SGD(learning_rate=0.01, gradient_accumulation_steps=np.int64(2))
for _ in range(2):
    opt.apply_gradients([(np.full(3, 0.5, np.float32), v)])
return [np.asarray(v).tolist(), int(np.asarray(opt.iterations))]""",
    "whole float accumulation steps": """
out = []
for steps in (2.0, np.float32(2.0), np.float64(3.0)):
    v = Var(np.array([1.0, 2.0]), 'w')
    opt = O3.Adam(learning_rate=0.1, gradient_accumulation_steps=steps)
    for i in range(5):
        opt.apply_gradients([(np.array([0.3 * (i + 1), -0.2], np.float32), v)])
    back = O3.deserialize(O3.serialize(opt))
    out.append([np.asarray(v).tolist(), int(np.asarray(opt.iterations)), back.get_config()['gradient_accumulation_steps'] == steps])
return out""",
    "accumulation steps 0": """
reset_names()
opt = O3.Adam(gradient_accumulation_steps=0)
back = O3.deserialize(O3.serialize(opt))
v = Var(np.ones(2), 'w')
opt.apply([np.ones(2, np.float32)], [v])
return [opt.get_config()['gradient_accumulation_steps'], back.get_config()['gradient_accumulation_steps'],
        [v.path for v in opt.variables], int(np.asarray(opt.iterations)), np.asarray(v).tolist()]""",
    "ema momentum out of range": "O3.Adam(use_ema=True, ema_momentum=1.5)",
    "ema frequency not an int": "O3.Adam(use_ema=True, ema_overwrite_frequency=2.0)",
    "lion beta_1 zero": "O3.Lion(beta_1=0.0)",
    "lion default learning rate": "return O3.Lion().get_config()['learning_rate']",
    "adamw needs weight_decay": "O3.AdamW(weight_decay=None)",
    "ftrl negative accumulator": "O3.Ftrl(initial_accumulator_value=-1.0)",
    "ftrl positive power": "O3.Ftrl(learning_rate_power=0.5)",
    "name with a slash": "O3.Adam(name='a/b')",
    # Names and get.
    "auto naming": """
reset_names()
return [O3.Adam().name, O3.Adam().name, O3.SGD().name, O3.SGD().name, O3.AdamW().name, O3.RMSprop().name,
        O3.Adam(name='mine').name, O3.Adam().name]""",
    "auto naming after failed constructions": """
reset_names()
for bad in (np.float32(0.1), 1, "0.1"):
    try:
        O3.Adam(learning_rate=bad)
    except Exception:
        pass
try:
    O3.Adam(foo=1)  # refused before the name is taken
except Exception:
    pass
return [O3.Adam().name, O3.Adam().get_config()['name'], O3.Adam(decay=0.1).name]""",
    "get None": "return O3.get(None)",
    "get by name": "return [type(O3.get(n)).__name__ for n in ('sgd', 'adamw', 'RMSprop', 'ADAM', 'nadam')]",
    "get a typo": "O3.get('typo')",
    # Configs.
    "config is JSON": """
import json
reset_names()
return json.dumps(O3.Adam(learning_rate=0.02, clipnorm=1.0, use_ema=True).get_config(), sort_keys=True)""",
    "config of every optimizer": """
reset_names()
out = {}
for n in ('SGD', 'Adam', 'AdamW', 'Adamax', 'Nadam', 'Adagrad', 'Adadelta', 'RMSprop', 'Ftrl', 'Lion', 'Adafactor'):
    out[n] = getattr(O3, n)().get_config()
return out""",
    "round trip": """
reset_names()
opt = O3.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, gradient_accumulation_steps=4)
back = O3.deserialize(O3.serialize(opt))
return [type(back).__name__, back.get_config() == opt.get_config(), back.name]""",
    "a subclass of a built-in schedule in a config": """
class MySched(O3.schedules.ExponentialDecay):
    pass
MySched.__module__ = '__main__'  # a class of a script: its module is written as None
return [O3.serialize(O3.Adam(learning_rate=MySched(0.1, 10, 0.5), name='b'))['config']['learning_rate'],
        {k: v for k, v in O3.schedules.serialize(MySched(0.1, 10, 0.5)).items() if k != 'config'}]""",
    "a schedule config with a key that is not an argument": """
good = {'initial_learning_rate': 0.1, 'decay_steps': 10, 'decay_rate': 0.5}
out = []
for inner in (dict(good, foo=1), dict(good, numerics='tf_eager'), {**good, 1: 2}):
    config = {'module': 'keras.optimizers.schedules', 'class_name': 'ExponentialDecay', 'config': inner, 'registered_name': None}
    try:
        O3.schedules.deserialize(config)
    except Exception as e:  # Keras 3 wraps the constructor's message in its own
        out.append(type(e).__name__)
return out""",
    "a schedule called without its arguments or with one it lacks": """
out = []
for name in ('ExponentialDecay', 'InverseTimeDecay', 'PiecewiseConstantDecay', 'PolynomialDecay', 'CosineDecay', 'CosineDecayRestarts'):
    for call in (lambda cls: cls(), lambda cls: cls(0.1, 10, foo=1), lambda cls: cls.from_config({'foo': 1})):
        try:
            call(getattr(O3.schedules, name))
        except TypeError as e:
            out.append(str(e))
return out""",
    "custom_objects and a built-in name": """
# Keras 3 lowercases a built-in name before it reads custom_objects.
class Mine(O3.Adam):
    pass
forms = [{"class_name": "Adam", "config": {"learning_rate": 0.1}},
         {"class_name": "adam", "config": {"learning_rate": 0.1}},
         {"module": "keras.optimizers", "class_name": "Adam", "config": {"learning_rate": 0.1}, "registered_name": None},
         {"module": "keras.optimizers", "class_name": "Adam", "config": {"learning_rate": 0.1}, "registered_name": "Adam"},
         {"class_name": "Adam", "config": {"learning_rate": 0.1}, "registered_name": "Adam"},
         {"module": None, "class_name": "Adam", "config": {"learning_rate": 0.1}, "registered_name": None}]
out = []
for form in forms:
    for key in ("Adam", "adam"):
        try:
            out.append(type(O3.deserialize(dict(form), custom_objects={key: Mine})).__name__)
        except (TypeError, ValueError):
            out.append("raises")
return out""",
    # Variables.
    "variable names and paths": """reset_names()
opt = O3.Adam(0.1)
opt.build([Var(np.ones(2), "kernel")])
lso = O3.LossScaleOptimizer(O3.SGD(0.1, momentum=0.9))
lso.build([Var(np.ones(2), "bias")])
return [[v.name, v.path] for v in opt.variables + [opt.iterations, opt.learning_rate] + lso.variables]""",
    # Keras 3 builds a wrapped optimizer untracked: Adafactor's int32 placeholders (rank < 2) are in no list.
    "a wrapped Adafactor's variables": """reset_names()
vs = [Var(np.ones(()), 's'), Var(np.ones(3), 'b'), Var(np.ones((2, 3)), 'k')]
lso = O3.LossScaleOptimizer(O3.Adafactor(0.1), initial_scale=4.0)
lso.build(vs)
out = [[v.path, list(v.shape), str(v.dtype)] for v in lso.variables]
out.append([v.path for v in lso.inner_optimizer.variables])
grads = [np.full(v.shape, 2.0, np.float32) for v in vs]
values, new = lso.stateless_apply([v.value for v in lso.variables], grads, [v.value for v in vs])
return out + [[np.asarray(x).tolist() for x in values], [np.asarray(x).tolist() for x in new]]""",
    "an Adafactor built before it is wrapped lists its placeholders": """reset_names()
vs = [Var(np.ones(3), 'b'), Var(np.ones((2, 3)), 'k')]
inner = O3.Adafactor(0.1)
inner.build(vs)
lso = O3.LossScaleOptimizer(inner)
lso.build(vs)
return [[list(v.shape), str(v.dtype)] for v in lso.variables]""",
    "variables before build": "reset_names()\nreturn [v.path for v in O3.Adam().variables]",
    "callable learning rate has no variable": "reset_names()\nreturn [v.path for v in O3.Adam(learning_rate=lambda: 0.1).variables]",
    "schedule has no variable": """
reset_names()
return [v.path for v in O3.Adam(learning_rate=O3.schedules.ExponentialDecay(0.1, 10, 0.5)).variables]""",
    "variables after build": """
reset_names()
opt = O3.RMSprop(momentum=0.5, centered=True, use_ema=True)
opt.build([Var(np.ones((2, 3)), 'kernel'), Var(np.ones(3), 'bias')])
return [(v.path, list(v.shape)) for v in opt.variables]""",
    "set_weights before build": "O3.Adam().set_weights([np.zeros(())])",
    "load_own_variables before build": "reset_names()\nO3.Adam().load_own_variables({'0': np.int64(7)})",
    "stateless_apply before build": "O3.Adam().stateless_apply([], [], [])",
    # Applying.
    "iterations are int32 under x64": """
import jax
with jax.enable_x64(True):
    v = Var(np.ones(2, np.float32), 'w')
    opt = O3.SGD(learning_rate=0.5)
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    opt.set_weights([np.asarray(w.value) for w in opt.variables])  # back in: the count stays
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    wrapped = O3.LossScaleOptimizer(O3.SGD(0.5))
    wrapped.build([v])
    return [str(opt.iterations.dtype), str(opt.variables[0].dtype), str(np.asarray(opt.variables[0].value).dtype),
            int(np.asarray(opt.iterations.value)), [str(w.dtype) for w in wrapped.variables if 'iteration' in w.path]]""",
    "iterations count": """
v = Var(np.ones(2), 'w')
opt = O3.SGD(learning_rate=0.5)
out = []
for _ in range(3):
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    out.append(int(np.asarray(opt.iterations)))
return out + np.asarray(v).tolist()""",
    "all gradients None": "v = Var(np.ones(2), 'w')\nO3.SGD().apply_gradients([(None, v)])",
    "some gradients None": """
a, b = Var(np.ones(2), 'a'), Var(np.ones(2), 'b')
O3.SGD(learning_rate=0.5).apply_gradients([(np.ones(2, np.float32), a), (None, b)])
return np.asarray(a).tolist() + np.asarray(b).tolist()""",
    "callable learning rate is called": """
v = Var(np.ones(2), 'w')
O3.SGD(learning_rate=lambda: 0.25).apply_gradients([(np.ones(2, np.float32), v)])
return np.asarray(v).tolist()""",
    "constraint after the update": """
v = Var(np.array([-0.5, 0.5]), 'w')
v.constraint = lambda x: x * (x > 0)  # operators only: Keras 3 passes the variable itself
O3.SGD(learning_rate=0.0001).apply_gradients([(np.zeros(2, np.float32), v)])
return np.asarray(v).tolist()""",
    "static loss scaling": """
v = Var(np.ones(2), 'w')
opt = O3.SGD(learning_rate=1.0, loss_scale_factor=1024.0)
opt.apply_gradients([(np.full(2, 1024.0, np.float32), v)])
return [float(opt.scale_loss(1.0)), np.asarray(v).tolist()]""",
    "gradient accumulation": """
v = Var(np.ones(2), 'w')
opt = O3.SGD(learning_rate=1.0, gradient_accumulation_steps=3)
out = []
for _ in range(4):
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    out.append([np.asarray(v).tolist(), int(np.asarray(opt.iterations))])
return out""",
    "ema first step and finalize": """
v = Var(np.array([3.0, 4.0]), 'w')
opt = O3.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.9)
out = []
for _ in range(2):
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    out.append(np.round(np.asarray(opt.variables[2]), 5).tolist())  # eager Keras rounds twice, XLA fuses
opt.finalize_variable_values([v])
return out + [np.round(np.asarray(v), 5).tolist()]""",
    "weight decay and exclusions by name": """
a, b = Var(np.array(2.0), 'keep'), Var(np.array(2.0), 'exclude')
opt = O3.SGD(learning_rate=1.0, weight_decay=0.004)
opt.exclude_from_weight_decay(var_names=['exclude'])
for _ in range(3):
    opt.apply_gradients([(np.zeros((), np.float32), a), (np.zeros((), np.float32), b)])
return [float(np.asarray(a)), float(np.asarray(b))]""",
    # Keras 3 takes exclusions after the build too, from its next step on, each
    # call replacing the last (TF-Keras refuses them once built).
    "weight decay exclusions after the build and after a step": """
a, b = Var(np.array([2.0, 3.0]), 'keep'), Var(np.array([2.0, 3.0]), 'exclude')
opt = O3.AdamW(learning_rate=0.5, weight_decay=0.25)
zero = np.zeros(2, np.float32)
opt.build([a, b])
opt.exclude_from_weight_decay(var_names=['exclude'])
out = []
for var_list in (None, [a]):
    if var_list is not None:
        opt.exclude_from_weight_decay(var_list=var_list)
    opt.apply_gradients([(zero, a), (zero, b)])
    out.append([np.asarray(a).tolist(), np.asarray(b).tolist()])
return out""",
    "stateless_apply wrong lengths": """
v = Var(np.ones(2), 'w')
opt = O3.Adam()
opt.build([v])
opt.stateless_apply([np.zeros(())], [np.ones(2)], [np.ones(2)])""",
    "apply to an unknown variable": """
import re
opt = O3.Adam()
opt.build([Var(np.ones(2), 'w')])
try:
    opt.apply([np.ones(2, np.float32)], [Var(np.ones(2), 'other')])
except ValueError as e:
    return re.sub(r"Unknown variable: .*?[.] This", "Unknown variable: <v>. This", str(e))""",
    # Variables overwritten with their gradient (Keras 3's float8 scaling
    # factors): no step, no slot, no clipping or weight decay, before the
    # loss scale factor divides the others; under accumulation, the running
    # maximum of the gradients, assigned on the update calls.
    "overwrite with gradient": """
reset_names()
a, b = Var(np.array([1.0, 2.0]), 'a'), Var(np.array([3.0, 4.0]), 'b')
b.overwrite_with_gradient = True
opt = O3.SGD(learning_rate=0.5, momentum=0.5, weight_decay=0.25, clipnorm=0.1)
out = []
for g in ([1.0, -1.0], [0.5, 2.0]):
    opt.apply([np.array(g, np.float32), np.array(g, np.float32) * 8], [a, b])
    out.append([np.asarray(a).tolist(), np.asarray(b).tolist()])
return out + [[v.path for v in opt.variables]]""",
    "overwrite with gradient and a loss scale factor": """
a, b = Var(np.array([1.0, 2.0]), 'a'), Var(np.array([3.0, 4.0]), 'b')
b.overwrite_with_gradient = True
opt = O3.SGD(learning_rate=0.5, loss_scale_factor=4.0)
opt.apply([np.array([4.0, -4.0], np.float32), np.array([8.0, 16.0], np.float32)], [a, b])
return [np.asarray(a).tolist(), np.asarray(b).tolist()]""",
    "overwrite with gradient and accumulation": """
reset_names()
a, b = Var(np.array([1.0, 2.0]), 'a'), Var(np.array([3.0, 4.0]), 'b')
b.overwrite_with_gradient = True
opt = O3.SGD(learning_rate=0.5, gradient_accumulation_steps=2)
out = []
for g in ([1.0, 3.0], [2.0, 1.0], [5.0, 0.0], [4.0, 4.0], [-1.0, -2.0]):
    opt.apply([np.ones(2, np.float32), np.array(g, np.float32)], [a, b])
    out.append([np.asarray(a).tolist(), np.asarray(b).tolist()])
return out + [[v.path for v in opt.variables]]""",
    "lso stateless_apply with an overwritten variable": """
a, b = Var(np.array([1.0, 2.0]), 'a'), Var(np.array([3.0, 4.0]), 'b')
b.overwrite_with_gradient = True
opt = O3.LossScaleOptimizer(O3.SGD(learning_rate=0.5), initial_scale=4.0)
opt.build([a, b])
grads = [np.array([4.0, -4.0], np.float32), np.array([8.0, 16.0], np.float32)]
values, _ = opt.stateless_apply([v.value for v in opt.variables], grads, [a.value, b.value])
return [np.asarray(x).tolist() for x in values]""",
    # The loss-scale optimizer.
    "lso dynamic False": "O3.LossScaleOptimizer(O3.SGD(), dynamic=False)",
    "lso base argument": "O3.LossScaleOptimizer(O3.SGD(), clipnorm=1.0)",
    "lso old config defaults": "reset_names()\nreturn O3.LossScaleOptimizer(O3.SGD(), use_ema=False, clipnorm=None).get_config()['initial_scale']",
    "lso unknown arguments": "O3.LossScaleOptimizer(O3.SGD(), foo=1, bar=2)",
    "lso config": """
reset_names()
return O3.LossScaleOptimizer(O3.SGD(learning_rate=0.5), initial_scale=8.0, dynamic_growth_steps=3).get_config()""",
    "lso whole float growth steps": """
out = []
for steps in (2.0, np.float32(2.0)):
    v = Var(np.array([1.0, 2.0]), 'w')
    opt = O3.LossScaleOptimizer(O3.SGD(learning_rate=0.5), initial_scale=4.0, dynamic_growth_steps=steps)
    opt.build([v])
    state, values = [x.value for x in opt.variables], [v.value]
    for i in range(6):
        grads = [np.array([4.0, np.inf if i == 1 else -4.0], np.float32)]
        values, state = opt.stateless_apply(state, grads, values)
    config = O3.deserialize(O3.serialize(opt)).get_config()
    out.append([np.asarray(values[0]).tolist(), [np.asarray(x).tolist() for x in state], config['dynamic_growth_steps'] == steps])
return out""",
    "lso clears the inner factor": """
inner = O3.SGD(loss_scale_factor=100.0)
O3.LossScaleOptimizer(inner)
return inner.get_config()['loss_scale_factor']""",
    # MultiOptimizer and OptimizerMap.
    "map routes exact then regex": """
s1, s2, s3, d = O3.SGD(), O3.SGD(), O3.SGD(), O3.SGD()
m = O3.OptimizerMap(d, {'a': s1, 'a.*': s2})
out = [m['a'] is s1, m['ab'] is s2, m['b'] is d]
m['ab'] = s3
out.append(m['ab'] is s3)
m['.*c'] = O3.SGD()
m['abc']
return out""",
    "map duplicate key": """
import re
m = O3.OptimizerMap(O3.SGD(), {'a': O3.SGD()})
try:
    m['a'] = O3.SGD()
except ValueError as e:
    return re.sub(r"with value .*?[.] Please", "with value <o>. Please", str(e))""",
    "map non-string key": "m = O3.OptimizerMap(O3.SGD())\nm[1] = O3.SGD()",
    "map refuses a loss-scale optimizer": "m = O3.OptimizerMap(O3.SGD())\nm['a'] = O3.LossScaleOptimizer(O3.SGD())",
    "map default not an optimizer": "O3.OptimizerMap('sgd')",
    "multi learning rate": "O3.MultiOptimizer(O3.OptimizerMap(O3.SGD())).learning_rate",
    "multi variables and iterations": """
reset_names()
a, b = Var(np.ones((2, 2)), 'enc_kernel'), Var(np.ones(2), 'dec_bias')
mo = O3.MultiOptimizer(O3.OptimizerMap(O3.SGD(learning_rate=0.5), {'enc_.*': O3.Adam(learning_rate=0.1)}))
mo.apply([np.ones((2, 2), np.float32), np.ones(2, np.float32)], [a, b])
return [[v.path for v in mo.variables], int(np.asarray(mo.iterations)), np.asarray(b).tolist()]""",
    "lso around a multi optimizer": """
reset_names()
a, b = Var(np.ones((2, 2)), 'enc_kernel'), Var(np.ones(2), 'dec_bias')
mo = O3.MultiOptimizer(O3.OptimizerMap(O3.SGD(learning_rate=0.5), {'enc_.*': O3.SGD(learning_rate=0.25, momentum=0.5)}))
opt = O3.LossScaleOptimizer(mo, initial_scale=4.0, dynamic_growth_steps=2)
opt.build([a, b])
state, values, out = [v.value for v in opt.variables], [a.value, b.value], []
for g in (4.0, 8.0, float('inf'), 2.0):
    values, state = opt.stateless_apply(state, [np.full((2, 2), g, np.float32), np.full(2, g, np.float32)], values)
    out.append([np.asarray(x).tolist() for x in list(values) + list(state)])
return out + [[v.path for v in opt.variables]]""",
    "lso around a multi optimizer with an Adafactor": """
reset_names()
a, b, c = Var(np.ones((2, 2)), 'enc_kernel'), Var(np.ones(2), 'enc_bias'), Var(np.ones(2), 'dec_bias')
mo = O3.MultiOptimizer(O3.OptimizerMap(O3.SGD(learning_rate=0.5), {'enc_.*': O3.Adafactor(learning_rate=0.25)}))
opt = O3.LossScaleOptimizer(mo, initial_scale=4.0)
opt.build([a, b, c])
return [[v.path, list(v.shape), str(v.dtype)] for v in opt.variables]""",
    "multi gradient count": """
a, b = Var(np.ones(2), 'a'), Var(np.ones(2), 'b')
mo = O3.MultiOptimizer(O3.OptimizerMap(O3.SGD()))
mo.build([a, b])
mo.apply([np.ones(2, np.float32)])""",
    # The constructors' positional arguments, in Keras 3's order.
    "positional parameters": """
import inspect
names = ['Adadelta', 'Adafactor', 'Adagrad', 'Adam', 'AdamW', 'Adamax', 'Ftrl', 'Lamb', 'Lion', 'Muon', 'Nadam',
         'RMSprop', 'SGD', 'ScheduleFreeAdamW']
return {n: [p for p, v in inspect.signature(getattr(O3, n)).parameters.items()
            if v.kind is v.POSITIONAL_OR_KEYWORD and p != 'self'] for n in names}""",
    "every argument by position": """
reset_names()
return [O3.Adam(0.01, 0.8, 0.99, 1e-6, True, 0.004, 1.0, None, None, True, 0.9, 3, 2.0, 2, 'a').get_config(),
        O3.SGD(0.1, 0.5, True, None, None, 0.5).get_config(),
        O3.Ftrl(0.1, -0.25, 0.2, 0.01, 0.02, 0.03, 0.1, 0.001).get_config()]""",
}
