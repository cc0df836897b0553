"""The llama.cpp build this node runs, and fit judged on the device the worker will really use."""

from __future__ import annotations

import platform

from silnode.fit.backend import REBUILD_CUDA, build_info, judge
from silnode.fit.hardware import Device, HardwareReport, fit_device

GiB = 1 << 30


def report_with_gpu() -> HardwareReport:
    r = HardwareReport()
    r.devices = [
        Device("CUDA0", "NVIDIA Test", "cuda", 24 * GiB, 20 * GiB, "nvml"),
        Device("CPU", "Test CPU", "cpu", 64 * GiB, 48 * GiB, "cpu"),
    ]
    return r


def test_a_cpu_only_build_on_a_gpu_machine_is_judged_against_ram():
    r = report_with_gpu()
    assert fit_device(r, gpu_offload=True).id == "CUDA0"
    assert fit_device(r, gpu_offload=False).id == "CPU"


def test_without_a_gpu_the_build_is_not_asked():
    r = HardwareReport()
    r.devices = [Device("CPU", "Test CPU", "cpu", 8 * GiB, 6 * GiB, "cpu")]
    assert fit_device(r).id == "CPU"  # gpu_offload None: no GPU, so no child process either


def test_the_installed_build_is_portable():
    # make install builds with GGML_NATIVE=OFF (scripts/install_llama.py): never AVX-512 or AMX, which a VM may
    # refuse (SIGILL at the first decode); on x86-64 the baseline is AVX2
    info = build_info()
    assert "error" not in info, info
    assert info["backend"] == "CPU" and info["gpu_offload"] is False
    assert not [f for f in info["cpu_features"] if f.startswith(("AVX512", "AMX"))], info["system_info"]
    if platform.machine() == "x86_64":
        assert "AVX2" in info["cpu_features"]


def test_doctor_judgement():
    cpu = {"version": "0.3.36", "gpu_offload": False, "backend": "CPU", "cpu_features": ["AVX2", "FMA"]}
    assert judge(cpu, []) == ("ok", "llama-cpp-python 0.3.36: CPU (AVX2, FMA)", None)
    status, detail, hint = judge(cpu, ["NVIDIA Test"])
    assert status == "warn" and "NVIDIA Test" in detail and "CPU-only" in detail and hint == REBUILD_CUDA
    cuda = {"version": "0.3.36", "gpu_offload": True, "backend": "CUDA", "cpu_features": []}
    assert judge(cuda, ["NVIDIA Test"]) == ("ok", "llama-cpp-python 0.3.36: CUDA", None)
    assert judge({"error": "llama_cpp does not import: x"}, [])[0] == "fail"
