"""Selling inference on Nostr: a NIP-90 Data Vending Machine for kind 5050 (text generation).

    relays.py     the relay pool (config nostr.relays) and the embedded LocalRelay (LMDB) fallback
    transport.py  aiohttp WebSockets for nostr-sdk (TCP_NODELAY: no 40 ms Nagle stalls per hop)
    jobs.py       request parsing, decryption (NIP-44 / NIP-04), params -> GenerationRequest
    inputs.py     i types text/prompt/url/event/job resolved to the prompt (url: public addresses only)
    store.py      the durable SQLite job store on its owner thread
    payment.py    the PaymentGate seam (default: free)
    announce.py   NIP-89 kind 31990 announcement and its kind-5 deletion
    service.py    DvmService: the job flow on the serving layer
    customer.py   the customer side: ask, providers (for the CLI; no daemon needed)

nostr-sdk loads only when a module here is imported (the CLI imports this package lazily).
"""
