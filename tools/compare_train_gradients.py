r"""Reports how sagan_tf's train step compares with the official graph's.

Reads a training fixture written by ``make_official_train_reference.py`` with
every element stored (``--max_elements=0``, the default) and prints:

1. Op by op from the official state (``tools/train_parity.py``, what
   tests/test_train_parity.py asserts): per op, the median and worst gradient
   error relative to the layer's gradient scale (bound ``RHO``), the elements
   beyond the state criterion, and how many Adam steps rounding decided.
2. The trajectory: sagan_tf stepped from the fixture's checkpoint on its own,
   with the recorded inputs, and the fraction of model-variable elements within
   1e-5 of the official ones after each iteration. A figure, not a test: Adam
   turns rounding into whole steps and training amplifies them, so it moves with
   the host's rounding.
3. With ``--perturb``: the same trajectory from weights moved by one float32 ulp,
   against the unmoved one (how far training's own float sensitivity reaches).

``--variable_reads=resource`` shows the size of the missing mechanisms.

Usage (the official code in ``../shared/official_src`` or any checkout)::

    python tools/make_official_train_reference.py \
        --official_src=../shared/official_src --output=/tmp/my_fixture \
        --gf_dim=8 --df_dim=8 --num_classes=10 --z_dim=16 --batch_size=4
    python tools/compare_train_gradients.py --fixture=/tmp/my_fixture --perturb
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

import train_parity as tp  # tools/ is on sys.path when this script runs

FLAGS = flags.FLAGS
flags.DEFINE_string("fixture", None, "A fixture of make_official_train_reference.")
flags.DEFINE_enum("variable_reads", "tf1", ["tf1", "resource"], "TrainStep's "
                  "variable_reads ('resource' shows the size of a missing "
                  "mechanism).")
flags.DEFINE_boolean("perturb", False, "Also step sagan_tf from weights moved by "
                     "one ulp and compare it with itself.")
flags.mark_flags_as_required(["fixture"])


def per_op_report(fx, variable_reads):
  runner = tp.OpRunner(fx, variable_reads=variable_reads)
  for op in fx.ops():
    c = tp.compare(fx, runner, op, runner.run(op))
    errors = [e for e, _ in c["grad_errors"]]
    worst, name = c["grad_errors"][-1]
    beyond = sum(b[1] for b in c["bad"])
    losses = ", ".join(f"{k} {a:.5f} (official {b:.5f})"
                       for k, (a, b) in c["losses"].items())
    print(f"{op[0]} op {op[1]}: gradient error / layer scale: median "
          f"{np.median(errors):.1e}, worst {worst:.1e} ({name}; bound "
          f"{tp.RHO:.1e}); {beyond} of {c['total']} elements beyond the state "
          f"criterion; {c['rounding_decided']} Adam steps decided by rounding; "
          f"{losses}")


def trajectory(fx, perturb=False, variable_reads="tf1"):
  """Values of every model variable after each iteration of sagan_tf's own
  trajectory from the checkpoint (flat, in the name map's order)."""
  runner = tp.OpRunner(fx, variable_reads=variable_reads)
  train = runner.train  # its optimizers record and apply
  if perturb:
    rs = np.random.RandomState(0)
    for var in (train.generator.trainable_variables
                + train.discriminator.trainable_variables):
      value = var.numpy()
      var.assign(value * (1 + rs.choice([-1, 1], value.shape).astype(
          np.float32) * np.float32(2.0 ** -23)))
  batches = iter(tf.data.Dataset.from_tensor_slices(
      (runner.x, fx.ref["y_real"])))
  values = []
  for _ in range(fx.iterations):
    train(batches)
    values.append(np.concatenate([np.reshape(runner.var_of[n].numpy(), -1)
                                  for n in runner.names]))
  return runner.names, values


def official_trajectory(fx, names):
  reader = tf.train.load_checkpoint(fx.prefix)
  state = {n: reader.get_tensor(n) for n in names}
  values = []
  for i in range(fx.iterations):
    for tag in ("d", "g"):
      for n in names:
        value = fx.get("after", tag, i, n)
        if value is not None:
          state[n] = value
    values.append(np.concatenate([np.reshape(state[n], -1) for n in names]))
  return values


def main(argv):
  del argv
  fx = tp.Fixture(FLAGS.fixture)
  per_op_report(fx, FLAGS.variable_reads)
  names, ours = trajectory(fx, variable_reads=FLAGS.variable_reads)
  for i, (a, b) in enumerate(zip(ours, official_trajectory(fx, names))):
    print(f"trajectory, after iteration {i + 1}: {np.mean(np.abs(a - b) <= tp.ATOL):.4%}"
          f" of {a.size} model-variable elements within {tp.ATOL} of the official")
  if FLAGS.perturb:
    _, moved = trajectory(fx, perturb=True, variable_reads=FLAGS.variable_reads)
    for i, (a, b) in enumerate(zip(ours, moved)):
      print(f"sagan_tf vs sagan_tf from weights moved by 1 ulp, after iteration "
            f"{i + 1}: {np.mean(np.abs(a - b) <= tp.ATOL):.4%} of {a.size} "
            f"elements within {tp.ATOL}")


if __name__ == "__main__":
  app.run(main)
