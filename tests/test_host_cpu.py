"""sagan_tf.perf.host_cpu: the CPU model and vector ISA from (fake) /proc/cpuinfo texts."""
from sagan_tf.perf import host_cpu

# Two processors of an AVX-512 EPYC (flags abridged); only the first one is read.
AVX512_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx smep bmi2 avx2 avx512f \
avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vnni

processor\t: 1
model name\t: Some Other Model
flags\t\t: fpu sse avx2
"""

AVX2_HOST = """processor\t: 0
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 fma sse4_1 sse4_2 avx sse4a avx2 smep
"""

AMX_XEON = """model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: sse avx2 avx512f avx512bw amx_bf16 avx512_fp16 amx_tile amx_int8
"""

# Arm (e.g. Graviton): no "model name", a "Features" line.
ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes asimdhp cpuid asimdrdm sve asimddp sve2 svebf16
CPU implementer\t: 0x41
CPU part\t: 0xd4f
"""


def test_x86_model_and_vector_isa():
  assert host_cpu.describe(AVX512_EPYC) == (
      "AMD EPYC 9R14 96-Core Processor, avx2 avx512f avx512dq avx512ifma avx512cd "
      "avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vnni")
  # smep (x86 supervisor-mode protection) is not Arm's SME; plain avx is not listed.
  assert host_cpu.describe(AVX2_HOST) == "AMD EPYC, avx2"
  assert host_cpu.vector_isa(AMX_XEON) == [
      "avx2", "avx512f", "avx512bw", "amx_bf16", "avx512_fp16", "amx_tile",
      "amx_int8"]


def test_non_x86_fallback(monkeypatch):
  monkeypatch.setattr(host_cpu.platform, "machine", lambda: "aarch64")
  assert host_cpu.describe(ARM) == (
      "aarch64 (no model name in /proc/cpuinfo), asimd sve sve2 svebf16")
  assert host_cpu.describe("processor\t: 0\n") == (
      "aarch64 (no model name in /proc/cpuinfo), no avx2/avx512/amx/asimd/sve flags")


def test_reads_the_host_file(monkeypatch, tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text(AMX_XEON)
  monkeypatch.setattr(host_cpu, "CPUINFO", str(path))
  assert host_cpu.describe().startswith("Intel(R) Xeon(R) Platinum 8488C, avx2 ")
  monkeypatch.setattr(host_cpu, "CPUINFO", str(tmp_path / "absent"))
  monkeypatch.setattr(host_cpu.platform, "machine", lambda: "arm64")
  assert host_cpu.describe() == (
      "arm64 (no model name in /proc/cpuinfo), no avx2/avx512/amx/asimd/sve flags")
