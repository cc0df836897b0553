"""Deterministic torrents, our "silnode" key, magnets and download targets (no network)."""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path

import libtorrent as lt
import pytest
from ggufgen import make_gguf, make_split_gguf
from torrent_helpers import file_record, random_file

from silnode.errors import BadTorrent, TorrentError
from silnode.torrent import create
from silnode.torrent.create import (
    infohashes,
    magnet,
    make_torrent,
    parse_target,
    piece_length,
    read_our_key,
    torrent_dir_name,
)

pytestmark = pytest.mark.timeout(120)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


# ------------------------------------------------------------------------------------------------ piece length
def test_piece_length_is_a_bounded_monotone_power_of_two():
    sizes = [
        0,
        1,
        100 * KiB,
        255 * MiB,
        256 * MiB,
        300 * MiB,
        512 * MiB,
        GiB,
        3 * GiB,
        4 * GiB,
        5 * GiB,
        8 * GiB - 1,
        8 * GiB,
        16 * GiB,
        40 * GiB,
        1 << 45,
    ]
    lengths = [piece_length(s) for s in sizes]
    assert lengths == sorted(lengths)
    for s, p in zip(sizes, lengths):
        assert 256 * KiB <= p <= 16 * MiB and p & (p - 1) == 0
        if 256 * KiB * 1024 <= s < 16 * MiB * 2048:  # inside the clamp: 1024..2048 pieces
            assert 1024 <= -(-s // p) <= 2048, (s, p)
    assert piece_length(4 * GiB) == piece_length(7 * GiB) == 4 * MiB
    assert piece_length(10 * MiB) == 256 * KiB and piece_length(1 << 45) == 16 * MiB


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, None])
def test_piece_length_rejects_non_sizes(bad):
    with pytest.raises(BadTorrent):
        piece_length(bad)


# ------------------------------------------------------------------------------------------------ make_torrent
@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory) -> Path:
    return make_gguf(tmp_path_factory.mktemp("m") / "tiny-f32.gguf")


def place(gguf: Path, base: Path, org_model: str, name: str | None = None) -> Path:
    """Put a copy of ``gguf`` where a store named ``org_model`` would keep it."""
    d = base / "models" / org_model
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gguf, d / (name or gguf.name))
    return d


def test_make_torrent_is_deterministic_hybrid_and_carries_our_key(gguf_path, tmp_path):
    d = place(gguf_path, tmp_path, "org/model")
    rec = file_record(d / gguf_path.name)
    t1, t2 = make_torrent(d, [rec]), make_torrent(d, [dict(rec)])
    assert t1 == t2  # byte for byte: no creation date, creator or comment
    top = lt.bdecode(t1)
    assert set(top) <= {b"info", b"piece layers"}
    info = top[b"info"]
    assert info[b"meta version"] == 2 and b"pieces" in info  # v2 + v1 = hybrid
    assert info[b"name"] == gguf_path.name.encode()  # single file: name = file name, never the model name
    ours = dict(info[b"silnode"])
    shape = ours.pop(b"gguf")  # the model's shape, from its header: a downloader's memory estimate before data
    assert ours == {
        b"v": 1,
        b"files": [{b"path": rec["path"].encode(), b"size": rec["size"], b"sha256": rec["sha256"].encode()}],
    }
    from silnode.fit.estimate import estimate, shape_from_portable
    from silnode.torrent.create import read_our_shape

    assert shape[b"arch"] == b"llama" and shape[b"n_layer"] == 2
    carried = shape_from_portable(read_our_shape(t1))
    assert estimate(carried, n_ctx=4096) == estimate(d / gguf_path.name, n_ctx=4096)
    v1, v2 = infohashes(t1)
    assert len(v1) == 40 and len(v2) == 64
    # both infohashes cover our key: they are the hashes of the info dict that contains it
    raw_info = lt.torrent_info(t1).info_section()
    assert hashlib.sha1(raw_info).hexdigest() == v1 and hashlib.sha256(raw_info).hexdigest() == v2
    assert b"7:silnode" in raw_info
    assert read_our_key(t1) == [rec] == read_our_key(lt.torrent_info(t1)) == read_our_key(raw_info)


def test_same_bytes_same_file_name_under_other_model_names_give_the_same_infohash(gguf_path, tmp_path):
    a = place(gguf_path, tmp_path / "node-a", "alice/llama-tiny")
    b = place(gguf_path, tmp_path / "node-b", "bob/my-copy")
    ta = make_torrent(a, [file_record(a / gguf_path.name)])
    tb = make_torrent(b, [file_record(b / gguf_path.name)])
    assert ta == tb and infohashes(ta) == infohashes(tb)
    # renaming the FILE changes the infohash (file names are content the downloader needs)
    c = place(gguf_path, tmp_path / "node-c", "carol/x", name="renamed.gguf")
    tc = make_torrent(c, [file_record(c / "renamed.gguf")])
    assert infohashes(tc)[0] != infohashes(ta)[0] and infohashes(tc)[1] != infohashes(ta)[1]


def test_different_bytes_give_different_infohashes(tmp_path):
    d1, d2 = tmp_path / "1", tmp_path / "2"
    f1 = random_file(d1 / "m.gguf", 300_000, seed=1)
    f2 = random_file(d2 / "m.gguf", 300_000, seed=2)
    h1 = infohashes(make_torrent(d1, [file_record(f1)]))
    h2 = infohashes(make_torrent(d2, [file_record(f2)]))
    assert h1[0] != h2[0] and h1[1] != h2[1]


def test_split_gguf_is_one_flat_multi_file_torrent_named_after_the_files(tmp_path):
    parts = make_split_gguf(tmp_path / "m", "tiny-split", 3)
    recs = [file_record(p) for p in parts]
    t = make_torrent(tmp_path / "m", list(reversed(recs)))  # input order does not matter
    assert t == make_torrent(tmp_path / "m", recs)
    ti = lt.torrent_info(t)
    assert ti.name() == "tiny-split" == torrent_dir_name([r["path"] for r in recs])
    layout = ti.layout()
    real = [
        layout.file_path(i)
        for i in range(layout.num_files())
        if not layout.file_flags(i) & lt.file_storage.flag_pad_file
    ]
    assert real == [f"tiny-split/{r['path']}" for r in recs]
    assert read_our_key(t) == recs
    # the same parts under another model directory: same torrent
    other = tmp_path / "elsewhere" / "models" / "x" / "y"
    other.mkdir(parents=True)
    for p in parts:
        shutil.copyfile(p, other / p.name)
    assert make_torrent(other, recs) == t


def test_web_seeds_stay_outside_the_info_dict(gguf_path, tmp_path):
    d = place(gguf_path, tmp_path, "org/model")
    rec = file_record(d / gguf_path.name)
    plain = make_torrent(d, [rec])
    seeded = make_torrent(d, [rec], web_seeds=["http://127.0.0.1:1/tiny-f32.gguf"])
    assert infohashes(plain) == infohashes(seeded)
    assert lt.bdecode(seeded)[b"url-list"] in (
        b"http://127.0.0.1:1/tiny-f32.gguf",
        [b"http://127.0.0.1:1/tiny-f32.gguf"],
    )


def test_make_torrent_checks_its_input(gguf_path, tmp_path):
    d = place(gguf_path, tmp_path, "org/model")
    rec = file_record(d / gguf_path.name)
    with pytest.raises(BadTorrent):
        make_torrent(d, [])
    with pytest.raises(BadTorrent):
        make_torrent(d, [{**rec, "path": "../etc/passwd"}])
    with pytest.raises(BadTorrent):
        make_torrent(d, [{**rec, "path": "sub/dir.gguf"}])
    with pytest.raises(BadTorrent):
        make_torrent(d, [{**rec, "sha256": "XYZ"}])
    with pytest.raises(BadTorrent):
        make_torrent(d, [rec, dict(rec)])
    with pytest.raises(TorrentError, match="size"):
        make_torrent(d, [{**rec, "size": rec["size"] + 1}])
    with pytest.raises(TorrentError, match="missing.gguf"):
        make_torrent(d, [{**rec, "path": "missing.gguf"}])


def test_progress_callback_counts_pieces(tmp_path):
    f = random_file(tmp_path / "m.gguf", 1_000_000)
    calls = []
    make_torrent(tmp_path, [file_record(f)], progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (4, 4)  # 1 MB / 256 KiB pieces


# ------------------------------------------------------------------------------------------------ read_our_key
def _retorrent(t: bytes, mutate) -> bytes:
    top = lt.bdecode(t)
    mutate(top[b"info"])
    return lt.bencode(top)


@pytest.fixture(scope="module")
def one_file_torrent(gguf_path) -> bytes:
    return make_torrent(gguf_path.parent, [file_record(gguf_path)])


def test_foreign_torrent_without_our_key_reads_as_none(one_file_torrent):
    assert read_our_key(_retorrent(one_file_torrent, lambda i: i.pop(b"silnode"))) is None


def _set(path: list, value):
    def mutate(info):
        node = info[b"silnode"]
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _set([b"v"], 2),
        _set([b"extra"], b"facts"),  # nothing else allowed in our key
        _set([b"files"], []),
        _set([b"files"], b"nope"),
        _set([b"files", 0, b"path"], b"../../etc/passwd"),
        _set([b"files", 0, b"path"], b"dir/file.gguf"),
        _set([b"files", 0, b"path"], b"other.gguf"),  # a file the torrent does not have
        _set([b"files", 0, b"size"], b"123"),
        _set([b"files", 0, b"size"], 1),  # a size the torrent does not have
        _set([b"files", 0, b"size"], -5),
        _set([b"files", 0, b"sha256"], b"00" * 31),
        _set([b"files", 0, b"sha256"], b"G" * 64),
        _set([b"files", 0, b"sha256"], bytes(32)),  # raw bytes instead of hex
        _set([b"files", 0, b"name"], b"x"),
        lambda info: info.__setitem__(b"silnode", [1, 2]),
        lambda info: info[b"silnode"][b"files"].append(dict(info[b"silnode"][b"files"][0])),  # duplicate
    ],
    ids=lambda m: getattr(m, "__name__", "m"),
)
def test_tampered_or_malformed_key_is_rejected(one_file_torrent, mutate):
    with pytest.raises(BadTorrent):
        read_our_key(_retorrent(one_file_torrent, mutate))


def test_read_our_key_rejects_garbage():
    for junk in (b"", b"not bencoded", lt.bencode({b"a": 1}), 42):
        with pytest.raises(TorrentError):
            read_our_key(junk)


# ------------------------------------------------------------------------------------------------ magnets
def test_magnet_round_trip_with_peer_hints(one_file_torrent):
    v1, v2 = infohashes(one_file_torrent)
    link = magnet(one_file_torrent, peers=[("127.0.0.1", 6881), "10.0.0.2:7000", ("::1", 6882)], name="org/x y")
    assert link.startswith("magnet:?")
    assert f"xt=urn:btih:{v1}" in link and f"xt=urn:btmh:1220{v2}" in link
    assert parse_target(link) == {
        "v1": v1,
        "v2": v2,
        "name": "org/x y",
        "web_seeds": [],
        "peers": [("127.0.0.1", 6881), ("10.0.0.2", 7000), ("::1", 6882)],
    }
    # libtorrent reads the same link
    atp = lt.parse_magnet_uri(link)
    assert str(atp.info_hashes.v1) == v1 and str(atp.info_hashes.v2) == v2
    assert ("127.0.0.1", 6881) in atp.peers
    # dn defaults to the torrent's name; no peers, no x.pe
    plain = magnet(one_file_torrent)
    assert "x.pe" not in plain and parse_target(plain)["name"] == lt.torrent_info(one_file_torrent).name()


def test_parse_target_variants(one_file_torrent):
    v1, v2 = infohashes(one_file_torrent)
    assert parse_target(v1.upper()) == {"v1": v1, "v2": None, "peers": [], "name": None, "web_seeds": []}
    assert parse_target(f"  {v2}\n") == {"v1": None, "v2": v2, "peers": [], "name": None, "web_seeds": []}
    b32 = base64.b32encode(bytes.fromhex(v1)).decode()
    assert parse_target(f"magnet:?xt=urn:btih:{b32}")["v1"] == v1
    assert parse_target(f"magnet:?xt=urn:btmh:1220{v2}&tr=http://tracker.invalid/a")["v2"] == v2
    assert parse_target(f"MAGNET:?xt.1=urn:btih:{v1}&xt.2=urn:btmh:1220{v2}") == {
        "v1": v1,
        "v2": v2,
        "peers": [],
        "name": None,
        "web_seeds": [],
    }


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "hello",
        "ab" * 19,
        "ab" * 21,
        "zz" * 20,
        "http://example.com/x.torrent",
        "magnet:?dn=nothing",
        "magnet:?xt=urn:btih:1234",
        "magnet:?xt=urn:btmh:1114" + "ab" * 32,
        "magnet:?xt=urn:btih:" + "ab" * 20 + "&xt=urn:btih:" + "cd" * 20,
        "magnet:?xt=urn:btih:" + "ab" * 20 + "&x.pe=127.0.0.1",
        "magnet:?xt=urn:btih:" + "ab" * 20 + "&x.pe=127.0.0.1:99999",
        "magnet:?xt=urn:btih:" + "ab" * 20 + "&x.pe=a/b:80",
        "magnet:?xt",
    ],
)
def test_parse_target_rejects_garbage(junk):
    with pytest.raises(TorrentError):
        parse_target(junk)


def test_parse_target_needs_a_string():
    with pytest.raises(BadTorrent):
        parse_target(b"ab" * 20)  # type: ignore[arg-type]


def test_bad_torrent_is_a_400_torrent_error():
    err = BadTorrent("x")
    assert isinstance(err, TorrentError) and err.status == 400 and err.code == "bad_torrent"
    assert TorrentError("y").code == "torrent_error"
    assert create.OUR_KEY == b"silnode"


def test_magnet_carries_web_seeds(gguf_path):
    data = make_torrent(gguf_path.parent, [file_record(gguf_path)], web_seeds=["http://origin.example/m.gguf?x=1"])
    link = magnet(data)
    assert "ws=http%3A%2F%2Forigin.example%2Fm.gguf%3Fx%3D1" in link
    assert parse_target(link)["web_seeds"] == ["http://origin.example/m.gguf?x=1"]
    assert parse_target(link + "&ws=file:///etc/passwd")["web_seeds"] == ["http://origin.example/m.gguf?x=1"]


@pytest.mark.parametrize(
    "bad",
    [
        {"n_layer": "two"},
        {"n_layer": 1 << 20},
        {"n_layer": 2, "n_head_kv": [1]},
        {"tensor_bytes": -1},
        {"tensor_bytes": True},
        {"arch": "x" * 100},
        {"repack": ["no"]},
    ],
)
def test_a_carried_shape_is_checked_before_use(gguf_path, bad):
    """A peer sends the metadata, so the shape is untrusted: every value is checked."""
    from silnode.fit.estimate import portable_shape, shape_from_portable
    from silnode.gguf import read_header

    shape = {**portable_shape(read_header(gguf_path)), **bad}
    with pytest.raises(ValueError):
        shape_from_portable(shape)


def test_a_file_that_is_not_a_gguf_carries_no_shape(tmp_path):
    f = random_file(tmp_path / "m.gguf", 300_000, seed=3)
    t = make_torrent(tmp_path, [file_record(f)])
    from silnode.torrent.create import read_our_shape

    assert read_our_shape(t) is None and read_our_key(t) == [file_record(f)]
