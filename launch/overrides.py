"""``--set field=value`` flags (launch.train, launch.benchmark) -> Config overrides."""
import re
from typing import Dict, Iterable

from absl import app


def parse_sets(items: Iterable[str]) -> Dict[str, str]:
  """``["g_lr=2e-4", "g_attention=16,32"]`` -> ``{"g_lr": "2e-4", ...}``.

  Values stay strings (``sagan_tf.config.override`` parses them by field type);
  the first ``=`` splits, so a value may contain ``=``; a later repeat of a field
  wins. Raises ``app.UsageError`` for an item without ``=`` or with an empty field.
  """
  out = {}
  for item in items:
    if "=" not in item:
      raise app.UsageError(f"--set expects field=value, got {item!r}.")
    key, value = item.split("=", 1)
    if not key.strip():
      raise app.UsageError(f"--set expects field=value, got {item!r} (no field).")
    out[key.strip()] = value.strip()
  return out


def config_usage_error(error: ValueError) -> app.UsageError:
  """A Config error as the command line's: the library's advice "set field=value"
  becomes the flag to pass, "pass --set=field=value"."""
  return app.UsageError(re.sub(r"\bset (\w+)=", r"pass --set=\1=", str(error)))
