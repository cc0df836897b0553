"""Know before downloading: `recommend` ranks the store and the seed catalog under a configured capacity,
`get --auto` takes the best fit (the copy on disk before a download of the same model), and `get` refuses
a model that won't fit — a catalog model before any byte moves, a magnet once its metadata says how big the
weights are — unless forced."""

from __future__ import annotations

import pytest
from nodes import get, peer_of, sha256, share

from silnode.errors import Conflict, DoesNotFit
from silnode.fit.seed import load_seed_catalog
from silnode.serving import starter

pytestmark = pytest.mark.timeout(180)

MiB, GiB = 1 << 20, 1 << 30
GEMMA = starter.NAME  # the catalog's Gemma-3-270M entry has the starter model's name and sha256


async def _import(node, path, name):
    task = node.models.import_file(str(path), name, license="mit")
    await node.tasks.wait(task)
    assert task.state == "done", task.error


def names(cands):
    return [c["name"] for c in cands]


async def test_small_capacity_picks_the_model_on_disk(make_node, tiny_gguf):
    node = await make_node("a", **{"hardware.ram_bytes": 512 * MiB})
    await _import(node, tiny_gguf, "test/tiny")
    ranking = await node.models.recommend()
    assert ranking["device"] == "CPU" and ranking["free_bytes"] <= 512 * MiB
    assert names(ranking["fits"]) == ["test/tiny"] and ranking["fits"][0]["on_disk"]
    gemma = next(c for c in ranking["others"] if c["name"] == GEMMA)
    assert not gemma["fits"] and gemma["reason"].startswith("needs ") and "free on CPU" in gemma["reason"]
    result = await node.models.get(None, auto=True)
    assert result == {"model": "test/tiny", "on_disk": True, "reason": ranking["fits"][0]["reason"]}


async def test_big_capacity_ranks_by_params_times_bits(make_node, tiny_gguf):
    # a machine fast enough for every model (1 TB/s): only quality decides
    node = await make_node("a", **{"hardware.ram_bytes": 64 * GiB, "hardware.cpu_bandwidth": 10**12})
    await _import(node, tiny_gguf, "test/tiny")
    ranking = await node.models.recommend()
    fits = ranking["fits"]
    assert len(fits) >= 3 and fits[-1]["name"] == "test/tiny"  # the tiny test model is the weakest
    quality = [c["quality"] for c in fits]
    assert quality == sorted(quality, reverse=True)
    assert not fits[0]["on_disk"] and fits[0]["source"] == "catalog"
    assert all(c["need_bytes"] for c in fits)
    # every catalog entry is either judged or says what it lacks
    judged = {c["name"] for c in fits + ranking["others"]}
    assert {m.name for m in load_seed_catalog()} <= judged
    # a smaller context needs less memory
    small = await node.models.recommend(n_ctx=512)
    need = {c["name"]: c["need_bytes"] for c in small["fits"]}
    assert all(need[c["name"]] < c["need_bytes"] for c in fits if c["name"] in need and c["need_bytes"])


async def test_models_too_slow_for_this_machine_rank_after_the_usable_ones(make_node, tiny_gguf):
    """A 2-vCPU machine (20 GB/s) with 64 GiB: a 27B model fits in RAM yet would generate ~1 token/s."""
    node = await make_node("a", **{"hardware.ram_bytes": 64 * GiB, "hardware.cpu_bandwidth": 20 * 10**9})
    await _import(node, tiny_gguf, "test/tiny")
    ranking = await node.models.recommend()
    fits = ranking["fits"]
    assert ranking["min_tokens_per_s"] == 5.0
    speeds = [c["speed"] for c in fits]
    assert "slow" in speeds and "usable" in speeds
    first_slow = speeds.index("slow")
    assert all(s == "slow" for s in speeds[first_slow:])  # every usable model comes first
    usable, slow = fits[:first_slow], fits[first_slow:]
    assert all(c["tokens_per_s"] >= 5 for c in usable) and all(c["tokens_per_s"] < 5 for c in slow)
    assert [c["quality"] for c in usable] == sorted((c["quality"] for c in usable), reverse=True)
    assert [c["tokens_per_s"] for c in slow] == sorted((c["tokens_per_s"] for c in slow), reverse=True)
    assert max(c["quality"] for c in slow) > usable[0]["quality"]  # quality alone would have put one first
    assert all(c["offload"]["mode"] == "cpu" for c in fits)
    # --min-tps 0: quality alone; --auto takes the best usable model
    anything = await node.models.recommend(min_tps=0)
    assert [c["quality"] for c in anything["fits"]] == sorted((c["quality"] for c in anything["fits"]), reverse=True)
    assert (await node.models.get(None, auto=True))["model"] == usable[0]["name"]


async def test_same_model_on_disk_wins_over_its_catalog_entry(make_node, gemma_gguf):
    node = await make_node("a", **{"hardware.ram_bytes": 2 * GiB})
    before = await node.models.recommend()
    assert before["fits"][0]["name"] == GEMMA and before["fits"][0]["source"] == "catalog"
    await _import(node, gemma_gguf, "mine/gemma")  # another name, the same bytes
    after = await node.models.recommend()
    assert GEMMA not in names(after["fits"] + after["others"])  # one model, not two
    mine = after["fits"][0]
    assert mine["name"] == "mine/gemma" and mine["on_disk"] and mine["origin_url"].startswith("https://")
    assert (await node.models.get(None, auto=True))["on_disk"] is True  # nothing to download
    with pytest.raises(Conflict):
        await node.models.get(GEMMA)


async def test_get_auto_downloads_the_best_catalog_fit_from_its_origin(make_node, online_hub, gemma_gguf, tiny_gguf):
    entry = next(m for m in load_seed_catalog() if m.name == GEMMA)
    online_hub.publish(
        entry.repo, "d" * 40, {entry.file: gemma_gguf.read_bytes(), "README.md": b"---\nlicense: gemma\n---\n"}
    )
    node = await make_node("a", **{"hardware.ram_bytes": 2 * GiB})
    await _import(node, tiny_gguf, "test/tiny")
    result = await node.models.get(None, auto=True)
    assert result["model"] == GEMMA and "fits" in result["reason"]
    task = node.tasks.get(result["task"]["id"])
    await node.tasks.wait(task)
    assert task.state == "done", task.error
    m = node.store.read_manifest(GEMMA).to_json()
    assert m["files"][0]["sha256"] == entry.sha256 == sha256(gemma_gguf)
    assert m["files"][0]["size"] == entry.size_bytes
    # now on disk: --auto stops there
    assert (await node.models.get(None, auto=True))["model"] == GEMMA


async def test_catalog_model_that_wont_fit_is_refused_with_numbers(make_node):
    node = await make_node("a", **{"hardware.ram_bytes": 2 * GiB})
    big = "qwen/qwen2.5-7b-instruct-q4_k_m"
    with pytest.raises(DoesNotFit) as exc:
        await node.models.get(big)
    msg = str(exc.value)
    assert msg.startswith(f"{big} won't fit: needs ") and "at ctx 4096" in msg and "GiB free on CPU" in msg
    assert "--force" in exc.value.hint
    assert node.tasks._tasks == {}  # nothing started
    forced = await node.models.get(big, force=True)  # the download starts (offline here, so it fails later)
    assert forced["model"] == big and forced["task"]["state"] in ("running", "failed", "error")


async def test_magnet_that_wont_fit_stops_at_metadata_with_the_full_estimate(make_node, tiny_gguf):
    """The tiny model's weights are 0.7 MB, but at its context it needs ~76 MiB: the shape in the torrent's
    metadata says so before any data is fetched."""
    a = await make_node("a")
    shared = await share(a, tiny_gguf, "test/tiny")
    b = await make_node("b", **{"hardware.ram_bytes": 32 * MiB})
    t = await get(b, shared["magnet"], peers=(peer_of(a),))
    assert t.state == "error" and "won't fit: needs " in t.error and "at ctx 2048" in t.error, t.error
    assert "free on CPU" in t.error and "--force" in t.error
    assert not b.store.exists("test/tiny")
    assert b.distribution.describe(t.id)["done_bytes"] == 0  # refused before any data
    await b.distribution.cancel(t.id)
    t = await get(b, shared["magnet"], peers=(peer_of(a),), force=True)
    assert t.state in ("done", "seeding") and b.store.read_manifest("test/tiny").to_json()["files"][0][
        "sha256"
    ] == sha256(tiny_gguf)


async def test_without_a_shape_the_weights_alone_are_checked(make_node, tmp_path):
    from silnode.fit.recommend import metadata_fit_check

    a = await make_node("a", **{"hardware.ram_bytes": 8 * MiB})
    ok, why = metadata_fit_check(a.config, 16 * MiB, None)  # a foreign torrent: no shape
    assert (
        not ok
        and why.startswith("needs at least 16 MiB for its weights alone; 8 MiB free on CPU")
        and "free on CPU" in why
    )
    ok, why = metadata_fit_check(a.config, 16 * MiB, {"n_layer": "lies"})  # a bad shape counts as none
    assert not ok and "weights alone" in why
    ok, _ = metadata_fit_check(a.config, 1 * MiB, None)
    assert ok


async def test_a_catalog_download_must_have_the_catalogs_sha256(make_node, online_hub, tiny_gguf):
    """The origin serves other bytes under the catalog's file name: refused, nothing lands in the store."""
    entry = next(m for m in load_seed_catalog() if m.name == GEMMA)
    online_hub.publish(entry.repo, "e" * 40, {entry.file: tiny_gguf.read_bytes()})
    node = await make_node("a", **{"hardware.ram_bytes": 2 * GiB})
    result = await node.models.get(GEMMA)
    task = node.tasks.get(result["task"]["id"])
    await node.tasks.wait(task)
    assert task.state == "failed" and "sha256" in str(task.error).lower(), (task.state, task.error)
    assert not node.store.exists(GEMMA)
