"""Discovery with no central server: each publisher's signed catalog is a small torrent, found through a
BEP 44 mutable item (BEP 46 form ``{"ih": …}``) under the publisher's own catalog key.

    document.py   the catalog document: canonical JSON, entry and document signatures, checks
    torrent.py    the catalog as a deterministic one-file torrent
    bep44.py      targets, the signed buffer, pointers, btpk magnets
    krpc.py       our small KRPC client (ro=1): BEP 46 dict puts and re-puts of signed items
    bencode.py    the codec both use
    (the service, the cache and the search join them)
"""
