"""Getting paid for inference: prices, invoices (cashu mint, LNbits, NWC), ecash prepayment, the earnings ledger.

pricing.py   a quote per job (fixed + per-1k-token from max_tokens), bids
backends.py  the invoice interface and its three backends
ecash.py     cashu tokens taken as payment (allow-listed mints, swapped before any work), change, refunds
ledger.py    SQLite under SILNODE_HOME/state, one owner thread; encrypted proofs
gate.py      PaymentGate: the seam the DVM calls (its docstring is the contract)
service.py   the node service that wires them from config and the keystore
http.py      /v1 sold for ecash: X-Cashu / cashu API keys, change, 402s, balances (sbal_ API keys)
wallet.py    the customer's small encrypted cashu wallet (`silnode wallet`, `silnode ask --pay cashu`)
cashu/       a small NUT-00/03/04/05/07 client (the nutshell package cannot share the node's venv)
"""
