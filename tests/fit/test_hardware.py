"""Hardware probe: real probe on this machine, each probe failing in turn, fake NVML GPUs, AMD sysfs trees,
Apple unified memory, the ggml subprocess, overrides and the JSON shape. No globals are patched: probes are
injected through ``probe(probes=...)`` and the probe factories' parameters."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from silnode.errors import ConfigError
from silnode.fit import hardware as hw
from silnode.fit.hardware import Device, HardwareReport, Probe, best_device, probe

GiB = 1 << 30
MiB = 1 << 20


# ----------------------------------------------------------------------------------------- fakes


class FakeNVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(FakeNVMLError):  # the name is what the probe matches
    pass


def fake_nvml(gpus, *, init_error=None, driver=b"550.54.15", bad_index=None):
    """A pynvml-like module object. ``gpus``: [(name, total, free)]."""
    calls = {"init": 0, "shutdown": 0}

    def nvmlInit():
        calls["init"] += 1
        if init_error is not None:
            raise init_error

    def nvmlDeviceGetMemoryInfo(handle):
        if handle == bad_index:
            raise FakeNVMLError("Unknown Error")
        _name, total, free = gpus[handle]
        return types.SimpleNamespace(total=total, free=free, used=total - free)

    mod = types.SimpleNamespace(
        nvmlInit=nvmlInit,
        nvmlShutdown=lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1),
        nvmlSystemGetDriverVersion=lambda: driver,
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: gpus[h][0],
        nvmlDeviceGetMemoryInfo=nvmlDeviceGetMemoryInfo,
    )
    mod.calls = calls
    return mod


def fake_psutil(total, available):
    return types.SimpleNamespace(virtual_memory=lambda: types.SimpleNamespace(total=total, available=available))


def make_amd_tree(root: Path, cards: dict[str, dict[str, str]]) -> Path:
    for card, files in cards.items():
        d = root / card / "device"
        d.mkdir(parents=True)
        for name, text in files.items():
            (d / name).write_text(text + "\n")
    return root


def boom(msg="probe exploded"):
    def run():
        raise RuntimeError(msg)

    return run


# ----------------------------------------------------------------------------------------- real machine


def test_real_probe_on_this_machine():
    report = probe()
    by_name = {p.name: p for p in report.probes}
    assert list(by_name) == ["nvml", "amd_sysfs", "apple", "cpu", "ggml"]
    assert all(p.status in hw.PROBE_STATUSES and p.detail for p in report.probes)
    cpu = report.cpu
    assert by_name["cpu"].status == "ok"
    assert cpu is not None and cpu.source == "cpu" and cpu.usable
    assert 256 * MiB < cpu.free_bytes <= cpu.total_bytes < 64 * 1024 * GiB
    if sys.platform.startswith("linux") and not report.gpus:  # the CI / dev box: no GPU
        assert by_name["nvml"].status == "not_found"
        assert by_name["amd_sysfs"].status == "not_found"
        assert by_name["apple"].status == "not_applicable"
        assert best_device(report) is cpu
    json.dumps(report.to_dict())


def test_nvml_missing_library_is_not_found():
    p = hw.nvml_probe(fake_nvml([], init_error=NVMLError_LibraryNotFound("NVML Shared Library Not Found")))
    report = probe(probes=[p, hw.cpu_probe(fake_psutil(16 * GiB, 8 * GiB))])
    r = report.probe_result("nvml")
    assert r.status == "not_found"
    assert "libnvidia-ml.so not present (no NVIDIA driver)" in r.detail
    assert [d.id for d in report.devices] == ["CPU"]


# ----------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize("victim", ["nvml", "amd_sysfs", "apple", "cpu", "ggml"])
def test_each_probe_failing_in_turn_is_recorded_and_others_answer(victim, tmp_path):
    amd_root = make_amd_tree(
        tmp_path / "drm", {"card0": {"mem_info_vram_total": str(16 * GiB), "mem_info_vram_used": str(1 * GiB)}}
    )
    healthy = {
        "nvml": hw.nvml_probe(fake_nvml([("NVIDIA A", 24 * GiB, 20 * GiB)])),
        "amd_sysfs": hw.amd_sysfs_probe(amd_root),
        "apple": hw.apple_probe(
            system="Darwin",
            machine="arm64",
            sysctl=lambda k: {"hw.memsize": str(64 * GiB)}.get(k, "0"),
            psutil_mod=fake_psutil(64 * GiB, 40 * GiB),
        ),
        "cpu": hw.cpu_probe(fake_psutil(32 * GiB, 30 * GiB)),
        "ggml": hw.ggml_probe(
            available=lambda: True,
            enabled=True,
            script='print(\'[{"name": "Vulkan0", "description": "iGPU", "type": 2, '
            '"free": 1073741824, "total": 2147483648}]\')',
        ),
    }
    probes = dict(healthy)
    probes[victim] = boom(f"{victim} exploded")
    report = probe(probes=probes)
    results = {p.name: p for p in report.probes}
    assert results[victim].status == "failed"
    assert f"RuntimeError: {victim} exploded" in results[victim].detail
    for name in healthy:
        if name != victim:
            assert results[name].status == "ok", (name, results[name])
    sources = {d.source for d in report.devices}
    assert victim not in sources
    assert sources == set(healthy) - {victim}
    json.dumps(report.to_dict())


def test_probe_returning_garbage_is_failed_not_raised():
    report = probe(probes=[Probe("weird", lambda: ["not a device"]), hw.cpu_probe(fake_psutil(8 * GiB, 4 * GiB))])
    assert report.probe_result("weird").status == "failed"
    assert report.cpu.free_bytes == 4 * GiB


def test_nvml_one_bad_gpu_does_not_hide_the_others():
    nv = fake_nvml([("GPU A", 24 * GiB, 20 * GiB), ("GPU B", 24 * GiB, 22 * GiB)], bad_index=1)
    report = probe(probes=[hw.nvml_probe(nv)])
    a, b = report.devices
    assert a.usable and a.free_bytes == 20 * GiB
    assert b.free_bytes is None and b.total_bytes is None and not b.usable
    assert "memory unreadable" in b.note and "Unknown Error" in b.note
    assert report.probe_result("nvml").status == "ok" and "CUDA1" in report.probe_result("nvml").detail
    assert best_device(report) is a
    assert nv.calls == {"init": 1, "shutdown": 1}


# ----------------------------------------------------------------------------------------- NVML GPUs


def test_multiple_nvml_gpus_listed_separately_and_decided_on_free():
    nv = fake_nvml(
        [
            (b"NVIDIA H100 80GB HBM3", 80 * GiB, 10 * GiB),  # bigger, but busy
            ("NVIDIA RTX 4090", 24 * GiB, 23 * GiB),
            ("NVIDIA RTX 3060", 12 * GiB, 11 * GiB),
        ]
    )
    report = probe(
        probes={
            "nvml": hw.nvml_probe(nv),
            "amd_sysfs": None,
            "apple": None,
            "cpu": hw.cpu_probe(fake_psutil(64 * GiB, 60 * GiB)),
            "ggml": None,
        }
    )
    assert [d.id for d in report.gpus] == ["CUDA0", "CUDA1", "CUDA2"]
    assert report.gpus[0].name == "NVIDIA H100 80GB HBM3"  # bytes decoded
    assert all(d.backend == "cuda" and d.source == "nvml" for d in report.gpus)
    assert report.device("cuda0").used_bytes == 70 * GiB
    assert best_device(report).id == "CUDA1"  # most FREE, not most total
    r = report.probe_result("nvml")
    assert r.status == "ok" and "3 GPU(s)" in r.detail and "550.54.15" in r.detail
    assert nv.calls["shutdown"] == 1


def test_nvml_zero_memory_is_marked_unknown_not_zero_free():
    nv = fake_nvml([("Odd GPU", 0, 0), ("Full GPU", 8 * GiB, 0)])
    report = probe(probes=[hw.nvml_probe(nv), hw.cpu_probe(fake_psutil(16 * GiB, 12 * GiB))])
    odd, full = report.gpus
    assert odd.free_bytes is None and odd.total_bytes is None and "0 bytes total" in odd.note
    assert full.free_bytes is None and full.total_bytes == 8 * GiB and "0 bytes free" in full.note
    assert not odd.usable and not full.usable
    assert best_device(report).id == "CPU"  # falls back to RAM, never "0 GB on a GPU"


def test_nvml_no_gpus_is_not_found():
    report = probe(probes=[hw.nvml_probe(fake_nvml([]))])
    assert report.probe_result("nvml").status == "not_found"
    assert best_device(report) is None


# ----------------------------------------------------------------------------------------- AMD sysfs


def test_amd_sysfs_tree(tmp_path):
    root = make_amd_tree(
        tmp_path / "drm",
        {
            "card0": {"vendor": "0x8086"},  # an Intel iGPU without amdgpu mem_info: skipped
            "card1": {
                "vendor": "0x1002",
                "product_name": "AMD Radeon RX 7900 XTX",
                "mem_info_vram_total": str(24 * GiB),
                "mem_info_vram_used": str(2 * GiB),
            },
            "card2": {
                "vendor": "0x1002",
                "device": "0x740f",
                "mem_info_vram_total": str(64 * GiB),
                "mem_info_vram_used": str(4 * GiB),
            },
            "card1-DP-1": {},  # a connector, not a card
        },
    )
    report = probe(probes=[hw.amd_sysfs_probe(root), hw.cpu_probe(fake_psutil(32 * GiB, 30 * GiB))])
    assert [d.id for d in report.gpus] == ["ROCM0", "ROCM1"]
    a, b = report.gpus
    assert a.name == "AMD Radeon RX 7900 XTX" and a.backend == "rocm" and a.source == "amd_sysfs"
    assert (a.total_bytes, a.free_bytes, a.used_bytes) == (24 * GiB, 22 * GiB, 2 * GiB)
    assert "0x740f" in b.name and b.free_bytes == 60 * GiB
    assert best_device(report) is b
    assert report.probe_result("amd_sysfs").status == "ok"


def test_amd_sysfs_missing_used_and_bad_values(tmp_path):
    root = make_amd_tree(
        tmp_path / "drm",
        {
            "card0": {"mem_info_vram_total": str(16 * GiB)},
            "card1": {"mem_info_vram_total": "garbage", "mem_info_vram_used": "0"},
        },
    )
    report = probe(probes=[hw.amd_sysfs_probe(root)])
    a, b = report.gpus
    assert a.total_bytes == 16 * GiB and a.free_bytes is None and "free unknown" in a.note
    assert b.total_bytes is None and b.free_bytes is None and "unreadable" in b.note
    assert best_device(report) is None


def test_amd_sysfs_absent_or_empty_is_not_found(tmp_path):
    missing = probe(probes=[hw.amd_sysfs_probe(tmp_path / "nope")]).probe_result("amd_sysfs")
    assert missing.status == "not_found" and "not present" in missing.detail
    (tmp_path / "drm" / "card0" / "device").mkdir(parents=True)
    empty = probe(probes=[hw.amd_sysfs_probe(tmp_path / "drm")]).probe_result("amd_sysfs")
    assert empty.status == "not_found" and "mem_info_vram_total" in empty.detail


# ----------------------------------------------------------------------------------------- Apple


def test_apple_unified_memory_and_not_applicable():
    sysctl = {"hw.memsize": str(64 * GiB), "iogpu.wired_limit_mb": "0"}.get
    p = hw.apple_probe(system="Darwin", machine="arm64", sysctl=sysctl, psutil_mod=fake_psutil(64 * GiB, 50 * GiB))
    report = probe(probes=[p, hw.cpu_probe(fake_psutil(64 * GiB, 50 * GiB))])
    metal = report.device("METAL0")
    assert metal.backend == "metal" and metal.total_bytes == 48 * GiB and metal.free_bytes == 48 * GiB
    assert best_device(report) is metal
    raised = hw.apple_probe(
        system="Darwin",
        machine="arm64",
        sysctl={"hw.memsize": str(64 * GiB), "iogpu.wired_limit_mb": "57344"}.get,
        psutil_mod=fake_psutil(64 * GiB, 60 * GiB),
    )
    assert probe(probes=[raised]).device("METAL0").total_bytes == 56 * GiB
    for system, machine in (("Linux", "x86_64"), ("Darwin", "x86_64")):
        r = probe(probes=[hw.apple_probe(system=system, machine=machine)]).probe_result("apple")
        assert r.status == "not_applicable"


# ----------------------------------------------------------------------------------------- ggml subprocess


GGML_OUT = json.dumps(
    [
        {"name": "CPU", "description": "AMD EPYC", "type": 0, "free": 8 * GiB, "total": 16 * GiB},
        {"name": "Vulkan0", "description": "Intel Arc", "type": 1, "free": 6 * GiB, "total": 8 * GiB},
        {"name": "BLAS", "description": "OpenBLAS", "type": 3, "free": 0, "total": 0},
    ]
)


def test_ggml_probe_runs_in_a_subprocess_and_adds_only_new_devices():
    script = f"import sys; sys.stdout.write({GGML_OUT!r})"
    g = hw.ggml_probe(available=lambda: True, script=script)
    report = probe(probes=[hw.cpu_probe(fake_psutil(16 * GiB, 12 * GiB)), g])
    assert [d.id for d in report.devices] == ["CPU", "VULKAN0"]
    assert report.cpu.source == "cpu"  # the earlier answer is kept
    v = report.device("VULKAN0")
    assert v.backend == "vulkan" and v.source == "ggml" and v.free_bytes == 6 * GiB
    r = report.probe_result("ggml")
    assert r.status == "ok" and "already listed" in r.detail


def test_ggml_probe_skips_when_gpu_known_missing_or_broken():
    nv = hw.nvml_probe(fake_nvml([("GPU", 8 * GiB, 7 * GiB)]))
    never_called = hw.ggml_probe(available=lambda: True, script="raise SystemExit(3)")
    r = probe(probes=[nv, never_called]).probe_result("ggml")
    assert r.status == "not_applicable" and "nvml" in r.detail
    r = probe(probes=[hw.ggml_probe(available=lambda: False)]).probe_result("ggml")
    assert r.status == "not_found" and "llama-cpp-python not installed" in r.detail
    r = probe(probes=[hw.ggml_probe(enabled=False)]).probe_result("ggml")
    assert r.status == "not_applicable"
    r = probe(probes=[hw.ggml_probe(available=lambda: True, script="raise SystemExit('no libggml')")]).probe_result(
        "ggml"
    )
    assert r.status == "failed" and "exited 1" in r.detail and "no libggml" in r.detail


def test_parse_ggml_devices_maps_ids_and_drops_accel():
    devs = hw.parse_ggml_devices(
        json.dumps(
            [
                {"name": "CUDA0", "description": "NVIDIA H100", "type": 1, "free": 80 * GiB, "total": 81 * GiB},
                {"name": "ROCm1", "description": "MI300", "type": 1, "free": 0, "total": 192 * GiB},
                {"name": "Metal", "description": "Apple M3", "type": 1, "free": 20 * GiB, "total": 24 * GiB},
                {"name": "BLAS", "description": "", "type": 3, "free": 0, "total": 0},
            ]
        )
    )
    assert [(d.id, d.backend) for d in devs] == [("CUDA0", "cuda"), ("ROCM1", "rocm"), ("METAL", "metal")]
    assert devs[1].free_bytes is None and "0 bytes free" in devs[1].note


# ----------------------------------------------------------------------------------------- overrides


def _two_gpus_and_cpu():
    return [
        hw.nvml_probe(fake_nvml([("A", 24 * GiB, 20 * GiB), ("B", 12 * GiB, 11 * GiB)])),
        hw.cpu_probe(fake_psutil(64 * GiB, 60 * GiB)),
    ]


def test_device_override_caps_total_and_free():
    report = probe({"cuda0": 8 * GiB}, probes=_two_gpus_and_cpu())
    a = report.device("CUDA0")
    assert a.overridden and (a.total_bytes, a.free_bytes) == (8 * GiB, 8 * GiB)
    assert (a.probed_total_bytes, a.probed_free_bytes) == (24 * GiB, 20 * GiB)
    assert "capped" in a.note
    assert best_device(report).id == "CUDA1"  # 11 GiB free now beats the capped 8
    assert report.overrides == {"CUDA0": 8 * GiB}


def test_ram_and_vram_caps():
    report = probe({"ram_bytes": 16 * GiB, "VRAM_BYTES": 10 * GiB}, probes=_two_gpus_and_cpu())
    assert report.cpu.total_bytes == 16 * GiB and report.cpu.free_bytes == 16 * GiB
    assert [(d.total_bytes, d.free_bytes) for d in report.gpus] == [(10 * GiB, 10 * GiB), (10 * GiB, 10 * GiB)]
    assert report.overrides == {"ram_bytes": 16 * GiB, "vram_bytes": 10 * GiB}


def test_override_declares_a_device_no_probe_found():
    failing_nvml = Probe("nvml", boom("NVML: Unknown Error"))
    report = probe({"CUDA0": 12 * GiB}, probes=[failing_nvml, hw.cpu_probe(fake_psutil(8 * GiB, 6 * GiB))])
    d = report.device("CUDA0")
    assert d.source == "config" and d.backend == "cuda" and d.free_bytes == 12 * GiB and d.overridden
    assert "free not probed" in d.note
    assert best_device(report) is d
    assert report.probe_result("nvml").status == "failed"


def test_override_fills_unknown_free():
    report = probe({"CUDA0": 6 * GiB}, probes=[hw.nvml_probe(fake_nvml([("Odd", 0, 0)]))])
    d = report.device("CUDA0")
    assert d.free_bytes == 6 * GiB and d.usable and "0 bytes total" in d.note


@pytest.mark.parametrize("bad", [{"GPU0": GiB}, {"CUDA0": 0}, {"ram_bytes": -1}, {"CPU": "8G"}, {"CUDA0": True}])
def test_bad_overrides_are_config_errors(bad):
    with pytest.raises(ConfigError):
        probe(bad, probes=[])


# ----------------------------------------------------------------------------------------- JSON


def test_to_dict_is_json_serialisable_and_round_trips(tmp_path):
    root = make_amd_tree(
        tmp_path / "drm", {"card0": {"mem_info_vram_total": str(16 * GiB), "mem_info_vram_used": str(GiB)}}
    )
    report = probe(
        {"CPU": 4 * GiB},
        probes={
            "nvml": hw.nvml_probe(fake_nvml([("A", 24 * GiB, 20 * GiB), ("Odd", 0, 0)])),
            "amd_sysfs": hw.amd_sysfs_probe(root),
            "apple": hw.apple_probe(system="Linux"),
            "cpu": boom("no psutil today"),
            "ggml": hw.ggml_probe(available=lambda: False),
        },
    )
    d = json.loads(json.dumps(report.to_dict()))
    assert d["best_device"] == "CUDA0"
    assert [x["id"] for x in d["devices"]] == ["CUDA0", "CUDA1", "ROCM0", "CPU"]
    assert {p["name"]: p["status"] for p in d["probes"]} == {
        "nvml": "ok",
        "amd_sysfs": "ok",
        "apple": "not_applicable",
        "cpu": "failed",
        "ggml": "not_applicable",
    }
    assert d["devices"][1]["free_bytes"] is None and d["devices"][1]["usable"] is False
    again = HardwareReport.from_dict(d)
    assert again.to_dict() == d
    assert isinstance(again.devices[0], Device)


def test_probe_recent_reuses_a_report_but_never_shares_overrides(monkeypatch):
    calls = []
    real = hw.probe

    def counting_probe(*a, **kw):
        calls.append(1)
        return real(*a, probes=[hw.cpu_probe()], **kw)

    monkeypatch.setattr(hw, "probe", counting_probe)
    monkeypatch.setattr(hw, "_recent", None)
    capped = hw.probe_recent({"ram_bytes": 64 * MiB})
    plain = hw.probe_recent()
    assert len(calls) == 1  # the second fit decision reused the report
    assert capped.cpu.free_bytes <= 64 * MiB and capped.cpu.overridden
    assert not plain.cpu.overridden and plain.cpu.free_bytes > 64 * MiB  # the cap stayed on its own copy
    hw.probe_recent(max_age=0)
    assert len(calls) == 2
