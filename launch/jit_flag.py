"""``--jit_compile`` for launch.train and launch.benchmark: true, false or auto.

A boolean-style flag (``--jit_compile``, ``--nojit_compile``) that also takes
``--jit_compile=auto``; the value goes to ``Config.jit_compile``, whose "auto" is
resolved by ``sagan_tf.training.jit_choice``.
"""
from absl import flags

from sagan_tf.config import parse_jit_compile


class _TriStateParser(flags.ArgumentParser):
  """true / false / auto (also 1/0, yes/no, on/off)."""

  def parse(self, argument):
    return parse_jit_compile(argument)

  def flag_type(self):
    return "true, false or auto"


def jit_compile_flag(help_string: str, default=None) -> flags.Flag:
  """``--jit_compile`` (None: the config's value, "auto" by default); define it
  with ``flags.DEFINE_flag`` in the launcher, so that its --help lists it."""
  return flags.Flag(_TriStateParser(), flags.ArgumentSerializer(), "jit_compile",
                    default, help_string, boolean=True)
