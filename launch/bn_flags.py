"""The generator batch-norm statistics flags of launch.sample, launch.eval and
launch.export (``sagan_tf.bn_stats``)."""
from absl import app
from absl import flags


def define(with_seed: bool = True):
  """Defines --bn_stats, --standing_passes, --standing_batch_size and, with
  ``with_seed``, --standing_seed (launch.eval draws them from its --seed)."""
  flags.DEFINE_enum("bn_stats", "standing", ["standing", "moving", "batch"],
                    "Generator BN statistics: standing (recomputed in memory "
                    "from the checkpoint's weights), moving (the checkpoint's "
                    "moving averages: the official inference and eval protocol) "
                    "or batch (each generator call's own moments). See "
                    "sagan_tf.bn_stats.")
  flags.DEFINE_integer("standing_passes", 16, "Standing statistics: passes.")
  flags.DEFINE_integer("standing_batch_size", 64,
                       "Standing statistics: samples per pass.")
  if with_seed:
    flags.DEFINE_integer("standing_seed", 0, "Standing statistics: seed.")


def from_flags():
  """The ``sagan_tf.bn_stats.BNStats`` of the flags (``app.UsageError`` if bad)."""
  from sagan_tf import bn_stats  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  try:
    return bn_stats.BNStats(f.bn_stats, f.standing_passes, f.standing_batch_size,
                            f.standing_seed)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
