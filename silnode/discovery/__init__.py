"""Discovery with no central server: each publisher's signed catalog is a small torrent, found through a
BEP 44 mutable item (BEP 46 form ``{"ih": …}``) under the publisher's own catalog key.

    document.py   the catalog document: canonical JSON, entry and document signatures, checks
    torrent.py    the catalog as a deterministic one-file torrent
    bep44.py      targets, the signed buffer, pointers, btpk magnets
    krpc.py       our small KRPC client (ro=1): BEP 46 dict puts and re-puts of signed items
    bencode.py    the codec both use
    pointer.py    reading a pointer through libtorrent
    rendezvous.py the shared, daily, sharded list of publisher keys (hints only)
    state.py      follows, own seq, cached catalogs and signed pointers on disk
    index.py      the merged index and its search
    service.py    DiscoveryService: lifecycle, hints, search, get by name
    publishing.py its publishing half (entries, seq, pointer put, name announces, `catalog show`)
    following.py  its following half (trust list, refresh under the trust rules, fetch, re-put)

For the DVM: ``node.discovery.catalog_magnet`` (this node's ``magnet:?xs=urn:btpk:…``, or None without an
identity) goes into NIP-89 content; ``node.discovery.learn_publisher(pubkey_hex, "nip89")`` feeds catalog
keys read from others' announcements back in as hints.
"""
