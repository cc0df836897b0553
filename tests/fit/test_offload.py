"""Where a model's layers go (fit/offload.py) and how fast it will be (fit/speed.py), with injected devices.

The shape is a 7B-class llama (32 layers, GQA 8 KV heads, 4.4 GiB of Q4 weights) built from published facts,
so every case is a pure decision on numbers: full, partial and no offload, a split over two GPUs, the
pins (serve.n_gpu_layers, serve.main_gpu), a CPU-only build on a GPU machine."""

from __future__ import annotations

import json

import pytest

from silnode.fit.devices import Device
from silnode.fit.estimate import GiB, estimate, room_for
from silnode.fit.offload import _layers, plan_offload
from silnode.fit.recommend import shape_from_facts
from silnode.fit.speed import speed_class, tokens_per_second

ARCH = {"n_layer": 32, "n_embd": 4096, "n_head": 32, "n_head_kv": 8, "n_ff": 14336, "n_vocab": 32000}
SHAPE = shape_from_facts(ARCH | {"context_length": 8192}, int(4.4 * GiB), 4.9)
CPU_BW = 20e9
GPU_BW = 1e12
N_CTX = 4096


def gpu(i: int, free_gib: float, bw: float | None = GPU_BW) -> Device:
    free = int(free_gib * GiB)
    return Device(f"CUDA{i}", f"GPU {i}", "cuda", free + GiB, free, "test", bandwidth=bw)


CPU = Device("CPU", "cpu", "cpu", 64 * GiB, 48 * GiB, "test")


def plan(gpus: list[Device], cpu: Device | None = CPU, **kw):
    return plan_offload(SHAPE, gpus, cpu, n_ctx=N_CTX, cpu_bandwidth=CPU_BW, **kw)


def full_need() -> int:
    return estimate(SHAPE, n_ctx=N_CTX, gpu=True).total_bytes


def test_whole_model_on_the_gpu_when_it_fits():
    p = plan([gpu(0, 24)])
    assert p.mode == "gpu" and p.fits
    assert p.n_gpu_layers == SHAPE.n_layer + 1  # the output layer too
    assert p.per_device["CUDA0"] == full_need()  # the split model meets the estimate at full offload
    assert p.main_gpu == 0 and p.tensor_split is None and p.slowdown is None


def test_a_gpu_a_little_too_small_gets_the_largest_split_that_fits():
    need = full_need()
    free_gib = need * 0.8 / GiB  # about 80 % of the model's need
    p = plan([gpu(0, free_gib)])
    assert p.mode == "partial" and p.fits
    k = p.n_gpu_layers
    assert 0 < k <= SHAPE.n_layer
    parts = _layers(SHAPE, estimate(SHAPE, n_ctx=N_CTX, gpu=True), estimate(SHAPE, n_ctx=N_CTX))
    free = int(free_gib * GiB)
    assert room_for(parts.gpu(k), free) and not room_for(parts.gpu(k + 1), free)  # the largest k
    assert p.per_device["CUDA0"] == parts.gpu(k)
    assert p.per_device["CPU"] == parts.cpu(k) < estimate(SHAPE, n_ctx=N_CTX).total_bytes
    # slower than all on the GPU, faster than all on the CPU
    cpu_only = tokens_per_second(SHAPE, cpu_bandwidth=CPU_BW)
    assert cpu_only is not None and p.best_tokens_per_s is not None and p.tokens_per_s is not None
    assert cpu_only < p.tokens_per_s < p.best_tokens_per_s
    assert p.slowdown in ("moderate", "heavy")
    assert f"{k} of {SHAPE.n_layer} layers on CUDA0" in p.reason


def test_two_small_gpus_split_the_whole_model_by_free_memory():
    need = full_need()
    a, b = need * 0.9 / GiB, need * 0.8 / GiB  # neither alone (each pays its own context), both together
    assert plan([gpu(0, a)]).mode == "partial"  # the bigger one alone is too small
    p = plan([gpu(0, a), gpu(1, b)])
    assert p.mode == "split" and p.fits
    assert p.n_gpu_layers == SHAPE.n_layer + 1
    assert p.tensor_split is not None and sum(p.tensor_split) == pytest.approx(1)
    assert p.tensor_split[0] > p.tensor_split[1]  # more on the GPU with more room
    assert p.main_gpu == 0
    for dev, free in (("CUDA0", a), ("CUDA1", b)):
        assert room_for(p.per_device[dev], int(free * GiB))


def test_main_gpu_pins_one_gpu_and_never_splits():
    need = full_need()
    a, b = need * 0.9 / GiB, need * 0.8 / GiB
    p = plan([gpu(0, a), gpu(1, b)], main_gpu=1)
    assert p.mode == "partial" and p.main_gpu == 1 and "CUDA0" not in p.per_device


def test_n_gpu_layers_setting_overrides_the_choice():
    assert plan([gpu(0, 24)], n_gpu_layers=0).mode == "cpu"
    p = plan([gpu(0, 24)], n_gpu_layers=10)
    assert p.mode == "partial" and p.n_gpu_layers == 10 and "serve.n_gpu_layers" in p.reason
    assert plan([gpu(0, 24)], n_gpu_layers=99).n_gpu_layers == SHAPE.n_layer + 1  # clamped to all


def test_a_cpu_only_build_on_a_gpu_machine_is_judged_against_ram():
    p = plan([gpu(0, 24)], offload_supported=False)
    assert p.mode == "cpu" and p.n_gpu_layers == 0
    assert p.per_device == {"CPU": estimate(SHAPE, n_ctx=N_CTX).total_bytes}
    assert "cannot offload" in p.reason
    small_ram = Device("CPU", "cpu", "cpu", 4 * GiB, 3 * GiB, "test")
    assert not plan([gpu(0, 24)], small_ram, offload_supported=False).fits  # the 24 GiB GPU does not help


def test_a_gpu_too_small_for_one_layer_runs_on_the_cpu():
    p = plan([gpu(0, 0.3)])
    assert p.mode == "cpu" and p.fits and "not even one layer" in p.reason


def test_nothing_fits_anywhere():
    small_ram = Device("CPU", "cpu", "cpu", 2 * GiB, 1 * GiB, "test")
    p = plan([gpu(0, 1)], small_ram)
    assert not p.fits


def test_no_gpu_at_all():
    p = plan([])
    assert p.mode == "cpu" and p.fits and p.slowdown is None and p.best_tokens_per_s is None


def test_speed_grows_with_layers_on_the_gpu_and_is_unknown_without_a_bandwidth():
    speeds = [tokens_per_second(SHAPE, gpu_layers=k, cpu_bandwidth=CPU_BW, gpu_bandwidth=GPU_BW) for k in (0, 16, 33)]
    assert speeds[0] < speeds[1] < speeds[2]  # type: ignore[operator]
    assert tokens_per_second(SHAPE, gpu_layers=33, cpu_bandwidth=CPU_BW, gpu_bandwidth=None) is None
    assert tokens_per_second(SHAPE, cpu_bandwidth=None) is None
    # a 4.4 GiB model at 20 GB/s reads its weights ~4.3 times a second
    assert speeds[0] == pytest.approx(20e9 / (4.4 * GiB), rel=0.1)


def test_speed_class():
    assert speed_class(4.9, 5) == "slow"
    assert speed_class(5.0, 5) == "usable"
    assert speed_class(None, 5) == "usable"  # no estimate is no reason to refuse


def test_cpu_bandwidth_is_measured_once_and_cached_per_machine(tmp_path, monkeypatch):
    from silnode.fit import speed

    monkeypatch.setattr(speed, "_cpu_bandwidth", None)
    calls = []
    monkeypatch.setattr(speed, "measure_cpu_bandwidth", lambda: calls.append(1) or 12.5e9)
    assert speed.cpu_bandwidth(tmp_path) == 12.5e9
    cache = tmp_path / "cache" / "bandwidth.json"
    assert json.loads(cache.read_text())["cpu_bytes_per_s"] == 12.5e9
    monkeypatch.setattr(speed, "_cpu_bandwidth", None)  # a new process: reads the file, measures nothing
    assert speed.cpu_bandwidth(tmp_path) == 12.5e9 and calls == [1]
    cache.write_text('{"machine": "another CPU x64", "cpu_bytes_per_s": 1}')  # moved to another machine
    monkeypatch.setattr(speed, "_cpu_bandwidth", None)
    assert speed.cpu_bandwidth(tmp_path) == 12.5e9 and calls == [1, 1]
    cache.write_text("not json")  # damaged: measured again
    monkeypatch.setattr(speed, "_cpu_bandwidth", None)
    assert speed.cpu_bandwidth(tmp_path) == 12.5e9 and calls == [1, 1, 1]


def test_the_real_probe_measures_a_plausible_bandwidth():
    from silnode.fit.speed import measure_cpu_bandwidth

    bw = measure_cpu_bandwidth(32 << 20, repeats=1)
    assert 1e8 < bw < 1e13  # 0.1 GB/s to 10 TB/s: a number, not 0 or infinity


def test_the_probe_reads_with_the_threads_it_is_given(monkeypatch):
    from silnode.fit import speed

    started = []
    real_thread = speed.threading.Thread

    def counting_thread(*args, **kwargs):
        started.append(1)
        return real_thread(*args, **kwargs)

    monkeypatch.setattr(speed.threading, "Thread", counting_thread)
    assert speed.measure_cpu_bandwidth(8 << 20, repeats=2, threads=3) > 0
    assert len(started) == 6  # three readers in each of the two rounds
    started.clear()
    assert speed.measure_cpu_bandwidth(8 << 20, repeats=2) > 0
    assert len(started) == 2  # the estimate's default: one core (see the docstring for why)
