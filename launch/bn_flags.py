"""The generator batch-norm statistics flags of launch.sample, launch.eval and
launch.export (``sagan_tf.inference.bn_stats``)."""
from absl import app
from absl import flags


class BNFlags:
  """The holders of --bn_stats, --standing_passes, --standing_batch_size and
  (optional) --standing_seed."""

  def __init__(self, with_seed: bool):
    self.mode = flags.DEFINE_enum(
        "bn_stats", "standing", ["standing", "moving", "batch"],
        "Generator BN statistics: standing (recomputed in memory from the "
        "checkpoint's weights), moving (the checkpoint's moving averages: the "
        "official inference and eval protocol) or batch (each generator call's "
        "own moments). See sagan_tf.inference.bn_stats.")
    self.passes = flags.DEFINE_integer("standing_passes", 16,
                                       "Standing statistics: passes.")
    self.batch_size = flags.DEFINE_integer(
        "standing_batch_size", 64, "Standing statistics: samples per pass.")
    self.seed = (flags.DEFINE_integer("standing_seed", 0,
                                      "Standing statistics: seed.")
                 if with_seed else None)

  def stats(self):
    """The ``sagan_tf.inference.bn_stats.BNStats`` of the flags (``app.UsageError`` if
    bad)."""
    from sagan_tf.inference import bn_stats  # pylint: disable=g-import-not-at-top
    try:
      return bn_stats.BNStats(self.mode.value, self.passes.value,
                              self.batch_size.value,
                              self.seed.value if self.seed is not None else 0)
    except ValueError as e:
      raise app.UsageError(str(e)) from None


def define(with_seed: bool = True) -> BNFlags:
  """Defines --bn_stats, --standing_passes, --standing_batch_size and, with
  ``with_seed``, --standing_seed (launch.eval draws them from its --seed)."""
  return BNFlags(with_seed)
