#!/usr/bin/env python3
"""Writes vectors.json: satstream's protocol test vectors.

This is a second, independent implementation of the wire format (BigSize TLV,
truncated integers, bech32m) written from docs/protocol.md, not from the Go
code, so the Go tests compare two implementations instead of one with itself.
Re-run only when the spec changes:  python3 tlv/testdata/gen_vectors.py
"""
import json
import os

T_VERSION, T_SUB, T_SEQ, T_PLAN, T_CANCEL = (
    1397948417, 1397948419, 1397948421, 1397948423, 1397948425)
KEYSEND, PODCAST, ACCOUNTABLE = 5482373484, 7629169, 106823

G1 = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
G2 = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
G3 = "02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"
G4 = "02e493dbf1c10d80f3581e4904930b1404cc6c13900ee0758474fa94abe8c4cd13"
BAD_POINT = "02" + "ff" * 32

SUB_A = "000102030405060708090a0b0c0d0e0f"
SUB_B = "5a7e11c0ffee0ddba11ca7f00dfacade"
PLAN_A = "9e1b4c2d3f405162738495a6b7c8d9ea"


def bigsize(n):
    if n < 0xfd:
        return bytes([n])
    if n <= 0xffff:
        return b"\xfd" + n.to_bytes(2, "big")
    if n <= 0xffffffff:
        return b"\xfe" + n.to_bytes(4, "big")
    return b"\xff" + n.to_bytes(8, "big")


def stream(recs):
    """recs: list of (type, bytes) written in the given order, as is."""
    return b"".join(bigsize(t) + bigsize(len(v)) + v for t, v in recs)


def canonical(m):
    return stream(sorted(m.items()))


def tu(n):
    return n.to_bytes(8, "big").lstrip(b"\x00")


# --- bech32 / bech32m (BIP-173 / BIP-350) ---
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32, BECH32M = 1, 0x2bc830a3


def polymod(values):
    gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1ffffff) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((b >> i) & 1) else 0
    return chk


def hrp_expand(hrp):
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def bech_encode(hrp, data5, const=BECH32M):
    values = hrp_expand(hrp) + data5
    pm = polymod(values + [0] * 6) ^ const
    chk = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in data5 + chk)


def to5(data, pad=True):
    acc, bits, out = 0, 0, []
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def offer_fields(node=G1, sub=SUB_A, plan=None, price=1000, minpay=60000,
                 inc=60, grace=300, maxpre=3600, label=None, extra=(),
                 nodes=None):
    recs = [(2, bytes.fromhex(node))]
    if nodes is not None:
        recs.append((3, b"".join(bytes.fromhex(n) for n in nodes)))
    if sub is not None:
        recs.append((4, bytes.fromhex(sub)))
    if plan is not None:
        recs.append((6, bytes.fromhex(plan)))
    recs += [(8, tu(price)), (10, tu(minpay)), (12, tu(inc)),
             (14, tu(grace)), (16, tu(maxpre))]
    if label is not None:
        recs.append((17, label.encode()))
    recs += list(extra)
    return sorted(recs, key=lambda r: r[0])


def offer_str(recs, hrp="satoffer", const=BECH32M, raw=None):
    payload = raw if raw is not None else stream(recs)
    return bech_encode(hrp, to5(payload), const)


def decoded(node=G1, sub=SUB_A, plan=None, price=1000, minpay=60000, inc=60,
            grace=300, maxpre=3600, label="", nodes=()):
    return {"node": node, "extra_node_ids": list(nodes),
            "subscription_id": sub, "plan_id": plan,
            "price_msat_per_sec": price, "min_payment_msat": minpay,
            "default_increment_sec": inc, "grace_period_sec": grace,
            "max_prepay_sec": maxpre, "label": label}


def hexmap(m):
    return {str(k): v.hex() for k, v in sorted(m.items())}


def ours(version=1, sub=SUB_A, seq=1, plan=None, cancel=False):
    m = {T_VERSION: bytes([version]), T_SUB: bytes.fromhex(sub),
         T_SEQ: seq.to_bytes(8, "big")}
    if plan:
        m[T_PLAN] = bytes.fromhex(plan)
    if cancel:
        m[T_CANCEL] = b""
    return m


def valid_record(name, desc, sub, seq, plan=None, cancel=False, extra=None):
    m = ours(1, sub, seq, plan, cancel)
    s = canonical(m)
    v = {"name": name, "description": desc,
         "fields": {"version": 1, "subscription_id": sub, "sequence": seq,
                    "plan_id": plan, "cancel": cancel},
         "custom_records": hexmap(m), "stream_hex": s.hex(),
         "wire_bytes": len(s),
         "lncli_data": ",".join("%d=%s" % (k, v.hex())
                                for k, v in sorted(m.items()))}
    if extra:
        v["other_records"] = hexmap(extra)
    return v


def invalid_map(name, desc, m, err):
    return {"name": name, "description": desc, "custom_records": hexmap(m),
            "error": err}


def invalid_stream(name, desc, raw, err):
    return {"name": name, "description": desc, "stream_hex": raw.hex(),
            "error": err}


def without(m, *types):
    return {k: v for k, v in m.items() if k not in types}


def with_(m, **kv):
    out = dict(m)
    for k, v in kv.items():
        out[{"version": T_VERSION, "sub": T_SUB, "seq": T_SEQ,
             "plan": T_PLAN, "cancel": T_CANCEL}[k]] = v
    return out


base = ours()
preimage = bytes(range(32))
podcast = b'{"action":"stream","podcast":"x"}'

records_valid = [
    valid_record("minimal", "Required records only: version 1, "
                 "subscription id, first payment.", SUB_A, 1),
    valid_record("large_sequence", "Largest sequence number.", SUB_B,
                 2**64 - 1),
    valid_record("open_enrolment", "First payment under an open-enrolment "
                 "plan: sender-chosen subscription id plus plan id.", SUB_B,
                 1, plan=PLAN_A),
    valid_record("cancel", "Payer's cancel message for sequence 42; the "
                 "receiver records it and refuses the HTLC.", SUB_A, 42,
                 cancel=True),
    valid_record("all_records", "Every record: the largest encoding.",
                 SUB_B, 7, plan=PLAN_A, cancel=True),
    valid_record("with_other_apps", "Records of other applications (keysend "
                 "preimage, bLIP-10 podcast JSON, lnd's 106823) next to ours "
                 "are ignored.", SUB_A, 3,
                 extra={KEYSEND: preimage, PODCAST: podcast,
                        ACCOUNTABLE: b"\x07"}),
]

records_invalid = [
    invalid_map("not_satstream", "A plain keysend with a podcast record: "
                "not ours, settle untouched.",
                {KEYSEND: preimage, PODCAST: podcast}, "ErrNotSatstream"),
    invalid_map("missing_version", "", without(base, T_VERSION),
                "ErrMissingRecord"),
    invalid_map("missing_subscription_id", "", without(base, T_SUB),
                "ErrMissingRecord"),
    invalid_map("missing_sequence", "", without(base, T_SEQ),
                "ErrMissingRecord"),
    invalid_map("only_cancel", "A lone cancel flag still marks the payment "
                "as ours.", {T_CANCEL: b""}, "ErrMissingRecord"),
    invalid_map("unknown_version", "Version 2 is refused before anything "
                "else is read, even a malformed subscription id.",
                with_(base, version=b"\x02", sub=b"\x01"),
                "ErrUnknownVersion"),
    invalid_map("version_two_bytes", "", with_(base, version=b"\x00\x01"),
                "ErrBadLength"),
    invalid_map("version_empty", "", with_(base, version=b""),
                "ErrBadLength"),
    invalid_map("subscription_id_short", "15 bytes.",
                with_(base, sub=bytes.fromhex(SUB_A)[:15]), "ErrBadLength"),
    invalid_map("subscription_id_long", "17 bytes.",
                with_(base, sub=bytes.fromhex(SUB_A) + b"\x00"),
                "ErrBadLength"),
    invalid_map("subscription_id_zero", "", with_(base, sub=bytes(16)),
                "ErrZeroID"),
    invalid_map("sequence_short", "A 4-byte sequence; truncated integers "
                "are not allowed.", with_(base, seq=b"\x00\x00\x00\x01"),
                "ErrBadLength"),
    invalid_map("sequence_zero", "", with_(base, seq=bytes(8)),
                "ErrZeroSequence"),
    invalid_map("plan_id_short", "", with_(base, plan=bytes(8)),
                "ErrBadLength"),
    invalid_map("plan_id_zero", "", with_(base, plan=bytes(16)),
                "ErrZeroID"),
    invalid_map("cancel_with_value", "The cancel flag must be empty.",
                with_(base, cancel=b"\x01"), "ErrBadLength"),
    invalid_map("oversized", "More than an onion can carry (1300 bytes).",
                {**base, 65537: bytes(1300)}, "ErrOversized"),
]

good = canonical(base)
seq_rec = stream([(T_SEQ, (2).to_bytes(8, "big"))])
records_stream_invalid = [
    invalid_stream("duplicate_sequence", "Two sequence records: only "
                   "visible in a raw stream.", good + seq_rec,
                   "ErrDuplicateRecord"),
    invalid_stream("unsorted", "Subscription id before version.",
                   stream([(T_SUB, bytes.fromhex(SUB_A)),
                           (T_VERSION, b"\x01"),
                           (T_SEQ, (1).to_bytes(8, "big"))]), "ErrUnsorted"),
    invalid_stream("truncated", "Last byte missing.", good[:-1],
                   "ErrMalformed"),
    invalid_stream("non_minimal_type", "Version type written as a 9-byte "
                   "BigSize.", b"\xff" + T_VERSION.to_bytes(8, "big") +
                   b"\x01\x01" + good[7:], "ErrMalformed"),
    invalid_stream("stream_too_long", "1306 bytes: above the 1300-byte "
                   "limit.",
                   good + stream([(T_CANCEL + 2, bytes(1255))]),
                   "ErrOversized"),
]

# --- offers ---
personal = offer_fields(label="Podcast hosting, 1 sat/s")
offers_valid = [
    {"name": "personal", "description": "Personal offer: node, "
     "subscription id, 1000 msat/s, 60 sat minimum, 1-minute increments, "
     "5-minute grace, at most 1 hour ahead.",
     "offer": offer_str(personal),
     "decoded": decoded(label="Podcast hosting, 1 sat/s")},
    {"name": "open_plan", "description": "Open-enrolment plan: plan id "
     "instead of subscription id, 17 msat/s, no minimum, no grace, no "
     "label.",
     "offer": offer_str(offer_fields(node=G2, sub=None, plan=PLAN_A,
                                     price=17, minpay=0, inc=600, grace=0,
                                     maxpre=86400)),
     "decoded": decoded(node=G2, sub=None, plan=PLAN_A, price=17, minpay=0,
                        inc=600, grace=0, maxpre=86400)},
    {"name": "uppercase", "description": "All-uppercase form (QR codes) of "
     "'personal'; String gives the lowercase form.",
     "offer": offer_str(personal).upper(),
     "canonical": offer_str(personal),
     "decoded": decoded(label="Podcast hosting, 1 sat/s")},
    {"name": "utf8_label", "description": "Non-ASCII label.",
     "offer": offer_str(offer_fields(node=G3, sub=SUB_B, price=2**40,
                                     minpay=2**40, inc=1, grace=2**32 - 1,
                                     maxpre=2**32 - 1,
                                     label="Caf\u00e9 \u2615 Wi-Fi")),
     "decoded": decoded(node=G3, sub=SUB_B, price=2**40, minpay=2**40,
                        inc=1, grace=2**32 - 1, maxpre=2**32 - 1,
                        label="Caf\u00e9 \u2615 Wi-Fi")},
    {"name": "unknown_odd_field", "description": "Unknown odd field 19 is "
     "ignored; String drops it.",
     "offer": offer_str(offer_fields(extra=[(19, b"future")])),
     "canonical": offer_str(offer_fields()),
     "decoded": decoded()},
    {"name": "two_nodes", "description": "A provider with two nodes: "
     "node_id 1G is tried first, extra_node_ids (odd type 3) lists 2G. A "
     "sender that predates type 3 skips it and pays 1G.",
     "offer": offer_str(offer_fields(nodes=[G2])),
     "decoded": decoded(nodes=[G2])},
    {"name": "four_nodes", "description": "The most nodes an offer may "
     "list: node_id 3G, then 1G, 4G, 2G in the order a sender fails over.",
     "offer": offer_str(offer_fields(node=G3, sub=None, plan=PLAN_A,
                                     nodes=[G1, G4, G2])),
     "decoded": decoded(node=G3, sub=None, plan=PLAN_A,
                        nodes=[G1, G4, G2])},
]


def inv_offer(name, desc, s, err):
    return {"name": name, "description": desc, "offer": s, "error": err}


p = offer_str(personal)
typo = p[:20] + ("q" if p[20] != "q" else "p") + p[21:]
pl = stream(personal)
d5 = to5(pl)
assert (len(pl) * 8) % 5 != 0
d5_badpad = d5[:-1] + [d5[-1] | 1]


def fields_with(**kw):
    return offer_fields(**kw)


offers_invalid = [
    inv_offer("typo", "One character changed.", typo, "ErrOfferChecksum"),
    inv_offer("bech32_not_m", "Payload of 'personal' with a bech32 (BIP-173) "
              "checksum.", offer_str(personal, const=BECH32),
              "ErrOfferChecksum"),
    inv_offer("mixed_case", "", p[:9] + p[9].upper() + p[10:]
              if p[9].isalpha() else p[:10] + p[10].upper() + p[11:],
              "ErrBadOffer"),
    inv_offer("wrong_prefix", "Valid bech32m under another prefix.",
              offer_str(personal, hrp="lno"), "ErrBadOffer"),
    inv_offer("trailing_newline", "Copy-paste with a newline.", p + "\n",
              "ErrBadOffer"),
    inv_offer("trailing_garbage", "Extra characters after the checksum.",
              p + "qq", "ErrOfferChecksum"),
    inv_offer("trailing_payload_byte", "A stray byte (a type with no length) after the last field.",
              offer_str(None, raw=pl + b"\x15"), "ErrMalformed"),
    inv_offer("bad_padding", "Non-zero padding bits.",
              bech_encode("satoffer", d5_badpad), "ErrMalformed"),
    inv_offer("unknown_even_field", "Field 18 is even and unknown.",
              offer_str(offer_fields(extra=[(18, b"\x01")])), "ErrBadOffer"),
    inv_offer("missing_price", "",
              offer_str([r for r in offer_fields() if r[0] != 8]),
              "ErrMissingRecord"),
    inv_offer("neither_id", "", offer_str(offer_fields(sub=None)),
              "ErrMissingRecord"),
    inv_offer("both_ids", "", offer_str(offer_fields(plan=PLAN_A)),
              "ErrBadOffer"),
    inv_offer("zero_price", "", offer_str(offer_fields(price=0)),
              "ErrBadValue"),
    inv_offer("non_minimal_price", "Price 1000 as 00 03 e8.",
              offer_str([(t, b"\x00\x03\xe8" if t == 8 else v)
                         for t, v in offer_fields()]), "ErrBadValue"),
    inv_offer("price_9_bytes", "",
              offer_str([(t, b"\x01" + bytes(8) if t == 8 else v)
                         for t, v in offer_fields()]), "ErrBadLength"),
    inv_offer("bad_node_point", "Not a point on secp256k1.",
              offer_str(offer_fields(node=BAD_POINT)), "ErrBadOffer"),
    inv_offer("node_32_bytes", "",
              offer_str(offer_fields(node=G1[:64])), "ErrBadLength"),
    inv_offer("extra_nodes_empty", "Type 3 present with no key: no extra "
              "nodes is written by omission.",
              offer_str(offer_fields(nodes=[])), "ErrBadLength"),
    inv_offer("extra_nodes_not_multiple_of_33", "A 32-byte extra key.",
              offer_str(offer_fields(nodes=[G2[:64]])), "ErrBadLength"),
    inv_offer("extra_node_bad_point", "Second extra key not on secp256k1.",
              offer_str(offer_fields(nodes=[G2, BAD_POINT])), "ErrBadValue"),
    inv_offer("extra_node_repeats_primary", "node_id listed again as an "
              "extra node.", offer_str(offer_fields(nodes=[G2, G1])),
              "ErrBadValue"),
    inv_offer("extra_node_twice", "", offer_str(offer_fields(nodes=[G2, G2])),
              "ErrBadValue"),
    inv_offer("five_nodes", "node_id plus four extra nodes: one more than "
              "the four allowed.",
              offer_str(offer_fields(nodes=[G2, G3, G4, BAD_POINT])),
              "ErrOversized"),
    inv_offer("zero_increment", "", offer_str(offer_fields(inc=0)),
              "ErrBadValue"),
    inv_offer("max_prepay_below_increment", "",
              offer_str(offer_fields(inc=60, maxpre=59)), "ErrBadValue"),
    inv_offer("min_payment_unpayable", "Minimum above price * max prepay.",
              offer_str(offer_fields(price=1, maxpre=3600, minpay=3601)),
              "ErrBadValue"),
    inv_offer("label_control_char", "",
              offer_str(offer_fields(label="line\nbreak")), "ErrBadValue"),
    inv_offer("label_bidi_override", "U+202E could reverse the displayed "
              "text.", offer_str(offer_fields(label="abc\u202edef")),
              "ErrBadValue"),
    inv_offer("label_invalid_utf8", "",
              offer_str(offer_fields(extra=[(17, b"\xff\xfe")])),
              "ErrBadValue"),
    inv_offer("label_too_long", "65 bytes.",
              offer_str(offer_fields(label="x" * 65)), "ErrOversized"),
    inv_offer("label_empty", "An empty label is written by omission.",
              offer_str(offer_fields(label="")), "ErrBadLength"),
    inv_offer("duplicate_field", "",
              offer_str(offer_fields() + [(16, tu(3600))]),
              "ErrDuplicateRecord"),
    inv_offer("unsorted_fields", "",
              offer_str(list(reversed(offer_fields()))), "ErrUnsorted"),
    inv_offer("too_long", "More than 1024 characters.",
              bech_encode("satoffer", [0] * 1020), "ErrOversized"),
]

out = {
    "comment": "Generated by gen_vectors.py; shown in docs/protocol.md; "
               "checked by vectors_test.go.",
    "records_valid": records_valid,
    "records_invalid": records_invalid + records_stream_invalid,
    "offers_valid": offers_valid,
    "offers_invalid": offers_invalid,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "vectors.json")
with open(path, "w") as f:
    json.dump(out, f, indent=2, ensure_ascii=False)
    f.write("\n")
