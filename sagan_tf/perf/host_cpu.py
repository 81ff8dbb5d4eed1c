"""The host's CPU model and vector instruction sets, for speed figures to name their host.

Float results and speed differ per CPU: the same step ran at other speeds, and
with other rounding, on an AVX2 and on an AVX-512 AMD EPYC. ``launch.benchmark``
and ``tools/time_official.py`` print ``describe()`` with their figures, and
``tools/speed_table.py`` puts it above its table.

Read from ``/proc/cpuinfo`` (Linux): the first ``model name`` and the vector ISA
among the first processor's ``flags``: ``avx2``, every ``avx512*`` and every
``amx*`` (x86). Elsewhere the ``Features`` line gives ``asimd``, ``sve*`` and
``sme*`` (Arm), and without a model name the machine type
(``platform.machine()``) stands in. No TensorFlow import: the tools call it
before starting TensorFlow.
"""
import platform
from typing import List, Optional

CPUINFO = "/proc/cpuinfo"
_X86_PREFIXES = ("avx512", "amx")
_ARM_PREFIXES = ("sve", "sme")


def _field(text: str, name: str) -> Optional[str]:
  """The value of the first ``name : value`` line of ``text``, or None."""
  for line in text.splitlines():
    key, sep, value = line.partition(":")
    if sep and key.strip().lower() == name:
      return value.strip()
  return None


def vector_isa(cpuinfo: str) -> List[str]:
  """The vector ISA flags of a ``/proc/cpuinfo`` text, in the kernel's order.

  x86 (a ``flags`` line): ``avx2``, ``avx512*``, ``amx*``; Arm (a ``Features``
  line): ``asimd``, ``sve*``, ``sme*``. (Each set from its own line only: x86's
  ``smep`` is no Arm SME.)
  """
  x86 = (_field(cpuinfo, "flags") or "").split()
  arm = (_field(cpuinfo, "features") or "").split()
  return ([f for f in x86 if f == "avx2" or f.startswith(_X86_PREFIXES)]
          + [f for f in arm if f == "asimd" or f.startswith(_ARM_PREFIXES)])


def describe(cpuinfo: Optional[str] = None) -> str:
  """``"<model name>, <vector ISA flags>"``, e.g. ``"AMD EPYC 9R14, avx2 avx512f ..."``.

  Args:
    cpuinfo: the text of ``/proc/cpuinfo``; read from the host when None (an
      empty text where the file does not exist).

  Returns:
    One line. Without a ``model name`` (Arm, or no ``/proc/cpuinfo``) the model
    is ``platform.machine()`` with "(no model name in /proc/cpuinfo)"; without any
    of the flags above the ISA reads "no avx2/avx512/amx/asimd/sve flags".
  """
  if cpuinfo is None:
    try:
      with open(CPUINFO) as f:
        cpuinfo = f.read()
    except OSError:
      cpuinfo = ""
  model = _field(cpuinfo, "model name")
  if not model:
    model = f"{platform.machine() or 'unknown'} (no model name in /proc/cpuinfo)"
  isa = vector_isa(cpuinfo)
  return f"{model}, {' '.join(isa) if isa else 'no avx2/avx512/amx/asimd/sve flags'}"
