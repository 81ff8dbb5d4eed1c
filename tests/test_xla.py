"""XLA (jit_compile=True) gives the non-XLA results for the tiny G and D.

One compiled function covers generator sampling (inference), the G and D forward
passes in training mode with spectral-norm and BN state updates, and both
gradients: an XLA compile costs ~30 s on this CPU, so there is only one.
"""
import keras
import numpy as np
import tensorflow as tf

from sagan_tf.models.discriminator import Discriminator
from sagan_tf.models.generator import Generator


def _hinge(real_logits, fake_logits):
  d_loss = (tf.reduce_mean(tf.nn.relu(1.0 - real_logits))
            + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits)))
  return d_loss, -tf.reduce_mean(fake_logits)


def test_xla_matches_eager():
  # Seeded: the weights must not depend on which tests ran before in this process
  # (another test's global seed once gave weights whose first D conv gradient
  # differed by 5e-4 of its largest entry under XLA; seeds 0-2 stay within 1e-4).
  keras.utils.set_random_seed(0)
  g = Generator(image_size=32, gf_dim=2, num_classes=3, z_dim=8).build_variables()
  d = Discriminator(image_size=32, df_dim=2, num_classes=3).build_variables()
  for _, layer in g.attention_layers + d.attention_layers:
    layer.sigma_ratio.assign(0.5)  # exercise the attention branch

  def compute(z, labels, real):
    sample = g(z, labels, training=False, update_u=False)
    with tf.GradientTape(persistent=True) as tape:
      fake = g(z, labels, training=True, update_u=True)
      real_logits = d(real, labels, training=True, update_u=True)
      fake_logits = d(fake, labels, training=True, update_u=False)
      d_loss, g_loss = _hinge(real_logits, fake_logits)
    d_grads = tape.gradient(d_loss, d.trainable_variables)
    g_grads = tape.gradient(g_loss, g.trainable_variables)
    return dict(sample=sample, real_logits=real_logits, fake_logits=fake_logits,
                d_loss=d_loss, g_loss=g_loss, d_grads=d_grads, g_grads=g_grads)

  z = tf.random.stateless_normal([4, 8], seed=[0, 1])
  labels = tf.constant([0, 1, 2, 1])
  real = tf.random.stateless_uniform([4, 32, 32, 3], seed=[0, 2], minval=-1.0,
                                     maxval=1.0)
  state_vars = [w for w in g.weights + d.weights if not w.trainable]
  state0 = [w.numpy() for w in state_vars]

  eager = compute(z, labels, real)
  eager_state = [w.numpy() for w in state_vars]
  for w, v in zip(state_vars, state0):
    w.assign(v)
  xla = tf.function(compute, jit_compile=True)(z, labels, real)
  xla_state = [w.numpy() for w in state_vars]

  assert any(not np.array_equal(a, b) for a, b in zip(state0, eager_state))
  for a, b in zip(eager_state, xla_state):  # u and BN moving statistics
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
  for key in ("sample", "real_logits", "fake_logits", "d_loss", "g_loss"):
    np.testing.assert_allclose(xla[key].numpy(), eager[key].numpy(), rtol=1e-4,
                               atol=1e-5, err_msg=key)
  for key in ("d_grads", "g_grads"):
    assert len(xla[key]) == len(eager[key])
    pairs = [(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy())
             for a, b in zip(eager[key], xla[key])]
    # Per-channel biases feeding a batch norm have a zero gradient up to rounding,
    # so errors are measured against the largest gradient of the model as well.
    top = max(np.abs(a).max() for a, _ in pairs)
    for (a, b), v in zip(pairs, (d if key == "d_grads" else g).trainable_variables):
      err = np.abs(a - b).max()
      assert err <= 1e-4 * np.abs(a).max() + 1e-5 * top, (key, v.path, err, top)
  assert np.abs(tf.linalg.global_norm(eager["g_grads"]).numpy()) > 0
