"""A small Cashu client in the node's own venv: NUT-00 (BDHKE, tokens V3/V4), NUT-03 swap, NUT-04 mint,
NUT-05 melt, NUT-07 state. The nutshell package pins old cryptography/websockets/httpx, so the node cannot
import it; this client is checked against the NUT-00 test vectors and a real nutshell mint (tests/payments)."""
