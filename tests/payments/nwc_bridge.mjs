// A NIP-47 wallet service for the tests: @getalby/sdk's NWCWalletService (the real transport: kinds 13194 /
// 23194 / 23195, NIP-04 and NIP-44 v2) answering on a loopback relay, each connection backed by one LNbits
// wallet through its REST API. No NWC wallet service installs here (Alby Hub is a Go binary, LNbits'
// nwcprovider extension downloads from GitHub), so only this adapter is test code (payments-notes.md, 3).
//
//   node nwc_bridge.mjs '{"relay": "ws://127.0.0.1:N", "lnbits": "http://127.0.0.1:M",
//                         "connections": [{"wallet_secret": hex, "client_pubkey": hex, "key": lnbits_key}]}'
//
// Prints "ready" on stdout once every connection is subscribed. It publishes no kind-13194 info event: against
// nostr-sdk's LocalRelay the SDK's publish of it timed out, and the clients (nostr-sdk's NostrWalletConnect)
// work without it.
import WebSocket from "ws";

globalThis.WebSocket = WebSocket; // node 20 has no global WebSocket; the SDK's relay pool wants one

const { NWCWalletService, NWCWalletServiceKeyPair } = await import("@getalby/sdk/nwc");

const cfg = JSON.parse(process.argv[2]);

async function lnbits(key, method, path, body) {
  const resp = await fetch(cfg.lnbits + path, {
    method,
    headers: { "X-Api-Key": key, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(`LNbits ${method} ${path}: ${resp.status} ${JSON.stringify(data).slice(0, 200)}`);
  return data;
}

const ok = (result) => ({ result, error: undefined });
const fail = (e) => ({ result: undefined, error: { code: "INTERNAL", message: String(e.message || e) } });

function tx(p, amountMsat) {
  const d = p.details || p;
  const paid = Boolean(p.paid ?? d.status === "success");
  return {
    type: "incoming",
    state: paid ? "settled" : "pending",
    invoice: d.bolt11 || d.payment_request || "",
    description: d.memo || "",
    description_hash: "",
    preimage: paid ? p.preimage || d.preimage || "" : "",
    payment_hash: d.payment_hash || p.payment_hash,
    amount: amountMsat ?? Math.abs(d.amount || 0),
    fees_paid: 0,
    created_at: Math.floor(Date.now() / 1000),
    expires_at: Math.floor(Date.now() / 1000) + 3600,
    settled_at: paid ? Math.floor(Date.now() / 1000) : undefined,
  };
}

function handler(key) {
  return {
    async getInfo() {
      return ok({ alias: "silnode-test-bridge", network: "regtest", methods: ["make_invoice", "lookup_invoice", "pay_invoice", "get_balance"] });
    },
    async makeInvoice(req) {
      try {
        const sats = Math.ceil(req.amount / 1000);
        const p = await lnbits(key, "POST", "/api/v1/payments", { out: false, amount: sats, memo: req.description || "", expiry: req.expiry || 3600 });
        return ok(tx({ ...p, paid: false }, sats * 1000));
      } catch (e) { return fail(e); }
    },
    async lookupInvoice(req) {
      try {
        const p = await lnbits(key, "GET", `/api/v1/payments/${req.payment_hash}`);
        return ok(tx({ ...p, payment_hash: req.payment_hash }));
      } catch (e) { return fail(e); }
    },
    async payInvoice(req) {
      try {
        const p = await lnbits(key, "POST", "/api/v1/payments", { out: true, bolt11: req.invoice });
        const look = await lnbits(key, "GET", `/api/v1/payments/${p.payment_hash}`);
        return ok({ preimage: look.preimage || "", fees_paid: 0 });
      } catch (e) { return fail(e); }
    },
    async getBalance() {
      try {
        const w = await lnbits(key, "GET", "/api/v1/wallet");
        return ok({ balance: w.balance });
      } catch (e) { return fail(e); }
    },
  };
}

const service = new NWCWalletService({ relayUrls: [cfg.relay] });
for (const c of cfg.connections) {
  const pair = new NWCWalletServiceKeyPair(c.wallet_secret, c.client_pubkey);
  await service.subscribe(pair, handler(c.key));
}
console.log("ready");
process.on("SIGTERM", () => { service.close(); process.exit(0); });
