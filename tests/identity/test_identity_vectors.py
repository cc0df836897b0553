"""Published vectors (NIP-06, SLIP-0010, BIP39) and independent cross-checks (nostr-sdk, slip10, bip-utils)."""

from __future__ import annotations

import hashlib
import os
import unicodedata

import pytest

from silnode.identity import CATALOG_PATH, NOSTR_PATH, Identity, bech32, mnemonic
from silnode.identity.keys import (
    CatalogKey,
    NostrKey,
    bip32_derive,
    expand_ed25519_seed,
    parse_path,
    slip10_ed25519_derive,
)

# NIP-06 (nostr-protocol/nips 06.md, "Test vectors")
NIP06 = [
    (
        "leader monkey parrot ring guide accident before fence cannon height naive bean",
        "7f7ff03d123792d6ac594bfa67bf6d0c0ab55b6b1fdb6249303fe861f1ccba9a",
        "nsec10allq0gjx7fddtzef0ax00mdps9t2kmtrldkyjfs8l5xruwvh2dq0lhhkp",
        "17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917",
        "npub1zutzeysacnf9rru6zqwmxd54mud0k44tst6l70ja5mhv8jjumytsd2x7nu",
    ),
    (
        (
            "what bleak badge arrange retreat wolf trade produce cricket blur garlic valid proud rude strong choose "
            "busy staff weather area salt hollow arm fade"
        ),
        "c15d739894c81a2fcfd3a2df85a0d2c0dbc47a280d092799f144d73d7ae78add",
        "nsec1c9wh8xy5eqdzln7n5t0ctgxjcrdug73gp5yj0x03gntn67h83twssdfhel",
        "d41b22899549e1f3d335a31002cfd382174006e166d3e658e3a5eecdb6463573",
        "npub16sdj9zv4f8sl85e45vgq9n7nsgt5qphpvmf7vk8r5hhvmdjxx4es8rq74h",
    ),
]

SEED1 = "000102030405060708090a0b0c0d0e0f"
SEED2 = (
    "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c69"
    "6663605d5a5754514e4b484542"
)

# SLIP-0010 (satoshilabs/slips slip-0010.md): (seed, path, chain code, private, public)
SLIP10_ED25519 = [
    (
        SEED1,
        "m",
        "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
        "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
        "00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed",
    ),
    (
        SEED1,
        "m/0H",
        "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
        "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
        "008c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c",
    ),
    (
        SEED1,
        "m/0H/1H",
        "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
        "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
        "001932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187",
    ),
    (
        SEED1,
        "m/0H/1H/2H",
        "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
        "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
        "00ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1",
    ),
    (
        SEED1,
        "m/0H/1H/2H/2H",
        "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
        "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
        "008abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c",
    ),
    (
        SEED1,
        "m/0H/1H/2H/2H/1000000000H",
        "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
        "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
        "003c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a",
    ),
    (
        SEED2,
        "m",
        "ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b",
        "171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012",
        "008fe9693f8fa62a4305a140b9764c5ee01e455963744fe18204b4fb948249308a",
    ),
    (
        SEED2,
        "m/0H",
        "0b78a3226f915c082bf118f83618a618ab6dec793752624cbeb622acb562862d",
        "1559eb2bbec5790b0c65d8693e4d0875b1747f4970ae8b650486ed7470845635",
        "0086fab68dcb57aa196c77c5f264f215a112c22a912c10d123b0d03c3c28ef1037",
    ),
    (
        SEED2,
        "m/0H/2147483647H",
        "138f0b2551bcafeca6ff2aa88ba8ed0ed8de070841f0c4ef0165df8181eaad7f",
        "ea4f5bfe8694d8bb74b7b59404632fd5968b774ed545e810de9c32a4fb4192f4",
        "005ba3b9ac6e90e83effcd25ac4e58a1365a9e35a3d3ae5eb07b9e4d90bcf7506d",
    ),
    (
        SEED2,
        "m/0H/2147483647H/1H",
        "73bd9fff1cfbde33a1b846c27085f711c0fe2d66fd32e139d3ebc28e5a4a6b90",
        "3757c7577170179c7868353ada796c839135b3d30554bbb74a4b1e4a5a58505c",
        "002e66aa57069c86cc18249aecf5cb5a9cebbfd6fadeab056254763874a9352b45",
    ),
    (
        SEED2,
        "m/0H/2147483647H/1H/2147483646H",
        "0902fe8a29f9140480a00ef244bd183e8a13288e4412d8389d140aac1794825a",
        "5837736c89570de861ebc173b1086da4f505d4adb387c6a1b1342d5e4ac9ec72",
        "00e33c0f7d81d843c572275f287498e8d408654fdf0d1e065b84e2e6f157aab09b",
    ),
    (
        SEED2,
        "m/0H/2147483647H/1H/2147483646H/2H",
        "5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4",
        "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d",
        "0047150c75db263559a70d5778bf36abbab30fb061ad69f69ece61a72b0cfa4fc0",
    ),
]

# SLIP-0010 secp256k1 vectors (= BIP32 test vectors 1 and 2): our BIP32, non-hardened steps included
SLIP10_SECP256K1 = [
    (
        SEED1,
        "m",
        "873dff81c02f525623fd1fe5167eac3a55a049de3d314bb42ee227ffed37d508",
        "e8f32e723decf4051aefac8e2c93c9c5b214313817cdb01a1494b917c8436b35",
    ),
    (
        SEED1,
        "m/0H/1",
        "2a7857631386ba23dacac34180dd1983734e444fdbf774041578e9b6adb37c19",
        "3c6cb8d0f6a264c91ea8b5030fadaa8e538b020f0a387421a12de9319dc93368",
    ),
    (
        SEED1,
        "m/0H/1/2H/2/1000000000",
        "c783e67b921d2beb8f6b389cc646d7263b4145701dadd2161548a8b078e65e9e",
        "471b76e389e528d6de6d816857e012c5455051cad6660850e58372a6c3e6e7c8",
    ),
    (
        SEED2,
        "m/0",
        "f0909affaa7ee7abe5dd4e100598d4dc53cd709d5a5c2cac40e7412f232f7c9c",
        "abe74a98f6c7eabee0428f53798f0ab8aa1bd37873999041703c742f15ac7e1e",
    ),
    (
        SEED2,
        "m/0/2147483647H/1/2147483646H/2",
        "9452b549be8cea3ecb7a84bec10dcfd94afe4d129ebfd3b3cb58eedf394ed271",
        "bb7d39bdb83ecf58f2fd82b6d918341cbef428661ef01ab97c28a4842125ac23",
    ),
]


def _phrases() -> list[tuple[str, str]]:
    """The NIP-06 phrases plus fixed pseudo-random ones, with and without a BIP39 passphrase."""
    from mnemonic import Mnemonic

    m = Mnemonic("english")
    rnd = [m.to_mnemonic(hashlib.sha256(b"silnode-%d" % i).digest()[:n]) for i, n in ((1, 16), (2, 32), (3, 16))]
    base = [v[0] for v in NIP06] + rnd
    return [(p, "") for p in base] + [(base[0], "TREZOR"), (rnd[1], "pässwörd ✓")]


PHRASES = _phrases()


# --- NIP-06 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phrase,priv,nsec,pub,npub", NIP06)
def test_nip06_vectors(phrase, priv, nsec, pub, npub):
    ident = Identity(phrase)
    assert ident.nostr.secret_bytes().hex() == priv
    assert ident.nostr.pubkey_hex == pub
    assert ident.nostr.npub == npub
    assert ident.nostr.nsec() == nsec
    assert ident.public_info()["npub"] == npub and ident.public_info()["nostr_pubkey"] == pub
    assert bech32.npub_decode(npub).hex() == pub


@pytest.mark.parametrize("phrase,passphrase", PHRASES)
def test_nostr_key_matches_nostr_sdk(phrase, passphrase):
    from nostr_sdk import Keys

    ours = Identity(phrase, passphrase).nostr
    # nostr-sdk 0.45.1 does not NFKD-normalise the passphrase as BIP39 requires (see the next test), so hand
    # it the normalised form; for ASCII passphrases this is the identity.
    theirs = Keys.from_mnemonic(phrase, unicodedata.normalize("NFKD", passphrase) or None)
    assert ours.secret_bytes().hex() == theirs.secret_key().to_hex()
    assert ours.pubkey_hex == theirs.public_key().to_hex()
    assert ours.npub == theirs.public_key().to_bech32()
    assert ours.nsec() == theirs.secret_key().to_bech32()


def test_non_ascii_passphrase_is_nfkd_normalised_as_bip39_says():
    from bip_utils import Bip39SeedGenerator
    from nostr_sdk import Keys

    phrase, passphrase = PHRASES[-1]
    assert mnemonic.to_seed(phrase, passphrase) == bytes(Bip39SeedGenerator(phrase).Generate(passphrase))
    composed = unicodedata.normalize("NFC", passphrase)
    assert Identity(phrase, composed).same_keys(Identity(phrase, unicodedata.normalize("NFD", passphrase)))
    # nostr-sdk's Keys.from_mnemonic skips the normalisation: never derive the node key through it
    assert Keys.from_mnemonic(phrase, composed).public_key().to_hex() != Identity(phrase, composed).nostr.pubkey_hex


def test_nostr_sdk_keys_sign_events_as_us():
    from nostr_sdk import EventBuilder, Kind

    ident = Identity(NIP06[0][0])
    event = EventBuilder(Kind(1), "hello").finalize(ident.nostr.to_nostr_sdk())
    assert event.verify() and event.author().to_hex() == NIP06[0][3]


def test_schnorr_sign_verify():
    key = Identity(NIP06[1][0]).nostr
    msg = hashlib.sha256(b"event").digest()
    sig = key.sign_schnorr(msg)
    assert len(sig) == 64 and NostrKey.verify_schnorr(key.public_key, msg, sig)
    assert not NostrKey.verify_schnorr(key.public_key, hashlib.sha256(b"other").digest(), sig)


@pytest.mark.parametrize("phrase,passphrase", PHRASES[:4])
def test_bip32_matches_bip_utils(phrase, passphrase):
    from bip_utils import Bip32Slip10Secp256k1

    seed = mnemonic.to_seed(phrase, passphrase)
    node = Bip32Slip10Secp256k1.FromSeed(seed).DerivePath(NOSTR_PATH)
    k, c = bip32_derive(seed, NOSTR_PATH)
    assert k.hex() == node.PrivateKey().Raw().ToHex() and c.hex() == node.ChainCode().ToHex()


@pytest.mark.parametrize("seed,path,chain,priv", SLIP10_SECP256K1)
def test_bip32_slip10_secp256k1_vectors(seed, path, chain, priv):
    k, c = bip32_derive(bytes.fromhex(seed), path)
    assert (k.hex(), c.hex()) == (priv, chain)


# --- SLIP-0010 ed25519 (catalog key) -------------------------------------------------------------------


@pytest.mark.parametrize("seed,path,chain,priv,pub", SLIP10_ED25519)
def test_slip10_ed25519_vectors(seed, path, chain, priv, pub):
    k, c = slip10_ed25519_derive(bytes.fromhex(seed), path)
    assert k.hex() == priv and c.hex() == chain
    assert "00" + CatalogKey(k).public_key_hex == pub


@pytest.mark.parametrize("phrase,passphrase", PHRASES)
def test_catalog_key_matches_slip10_package(phrase, passphrase):
    from slip10 import SLIP10

    seed = mnemonic.to_seed(phrase, passphrase)
    ref = SLIP10.from_seed(seed, curve_name="ed25519")
    ours = Identity(phrase, passphrase).catalog
    assert ours.seed_bytes() == ref.get_privkey_from_path(CATALOG_PATH)
    assert b"\x00" + ours.public_key == ref.get_pubkey_from_path(CATALOG_PATH)


@pytest.mark.parametrize("phrase,passphrase", PHRASES)
def test_catalog_key_matches_bip_utils(phrase, passphrase):
    from bip_utils import Bip32Slip10Ed25519

    seed = mnemonic.to_seed(phrase, passphrase)
    node = Bip32Slip10Ed25519.FromSeed(seed).DerivePath(CATALOG_PATH)
    ours = Identity(phrase, passphrase).catalog
    assert ours.seed_bytes().hex() == node.PrivateKey().Raw().ToHex()
    assert "00" + ours.public_key_hex == node.PublicKey().RawCompressed().ToHex()


def test_catalog_path_is_all_hardened_and_silnode_specific():
    indexes = parse_path(CATALOG_PATH)
    assert all(i & 0x80000000 for i in indexes)
    assert indexes[0] & 0x7FFFFFFF == int.from_bytes(b"sln", "big")  # not BIP44: no wallet's namespace
    with pytest.raises(ValueError, match="hardened"):
        slip10_ed25519_derive(os.urandom(64), "m/0H/1")


def test_nostr_and_catalog_keys_differ_and_passphrase_changes_both():
    a, b = Identity(NIP06[0][0]), Identity(NIP06[0][0], "extra words")
    assert a.nostr.public_key != b.nostr.public_key and a.catalog.public_key != b.catalog.public_key
    assert a.catalog.seed_bytes() != a.nostr.secret_bytes()


def test_catalog_sign_verify_and_libtorrent_expanded_secret():
    import nacl.bindings

    key = Identity(NIP06[0][0]).catalog
    sig = key.sign(b"3:seqi1e1:v12:Hello World!")
    assert CatalogKey.verify(key.public_key, b"3:seqi1e1:v12:Hello World!", sig)
    assert not CatalogKey.verify(key.public_key, b"3:seqi2e1:v12:Hello World!", sig)
    expanded = key.libtorrent_secret()
    assert len(expanded) == 64 and expanded == expand_ed25519_seed(key.seed_bytes())
    # ref10's expanded secret: clamped scalar a (a*B = public key) || SHA512(seed)[32:] (nonce prefix)
    assert nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(expanded[:32]) == key.public_key
    assert expanded[32:] == hashlib.sha512(key.seed_bytes()).digest()[32:]
    assert expanded[0] & 7 == 0 and expanded[31] & 0xC0 == 0x40
    # and it is not PyNaCl's seed||pk secret, which libtorrent would accept and sign garbage with
    assert expanded != bytes(key.signing_key()._signing_key)


# --- BIP39 seeds (trezor/python-mnemonic vectors.json) ----------------------------------------------------


@pytest.mark.parametrize(
    "phrase,seed",
    [
        (
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
            (
                "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c8"
                "1b2f001698e7463b04"
            ),
        )
    ],
)
def test_bip39_seed_vector(phrase, seed):
    assert mnemonic.to_seed(phrase, "TREZOR").hex() == seed
    assert mnemonic.to_seed(phrase.upper().replace(" ", "  \n"), "TREZOR").hex() == seed  # normalised


def test_bech32_rejects_bad_checksum_and_wrong_hrp():
    npub = NIP06[0][4]
    with pytest.raises(ValueError, match="checksum"):
        bech32.npub_decode(npub[:-1] + ("q" if npub[-1] != "q" else "p"))
    with pytest.raises(ValueError, match="npub"):
        bech32.npub_decode(NIP06[0][2])  # an nsec
