"""``--set field=value`` flags (launch.train, launch.benchmark) -> Config overrides."""
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
