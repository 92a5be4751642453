#!/usr/bin/python3
"""JWT verification against tokens from an independent implementation.

Makes keys with python3-cryptography and tokens with python3-jwt (and,
for what python3-jwt refuses to make, with Python's own hmac, base64 and
json), writes them and a table of expected outcomes to a directory, then
runs the C program tests/unit/test_jwt on that directory; it verifies
every token with plugins/auth-jwt/jwt.c and compares.

  test_jwt.py                  run the test (as `make check` does)
  test_jwt.py --write DIR      only write the keys and the table to DIR

The table (cases.txt) has one line per key or token:
  key NAME ALG FILE ok|error
  token NAME KEY EXPECT NOW LEEWAY ISS AUD EXP_OPTIONAL SUB
where ISS, AUD and SUB are "-" for none and EXPECT is a name of
jwt_status_name() ("ok", "expired"...); the token itself, bytes as they
are, is in the file tokens/NAME.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature)
    from cryptography.x509.oid import NameOID
except ImportError as e:
    print("SKIP: %s (Debian: python3-jwt python3-cryptography)" % e)
    sys.exit(77)

NOW = 1800000000
SUB = "alice"
LIMIT = 8192  # JWT_TOKEN_MAX
DEPTH = 16  # JWT_JSON_DEPTH


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class Keys:
    """Every key of the test, private halves kept for signing."""

    def __init__(self):
        self.hs = b"parley-test-secret-for-hs256-tokens-0123"
        self.hs_other = b"another-secret-of-forty-bytes-abcdefghij"
        self.rsa = rsa.generate_private_key(65537, 2048)
        self.rsa_other = rsa.generate_private_key(65537, 2048)
        self.rsa_small = rsa.generate_private_key(65537, 1024)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ec_other = ec.generate_private_key(ec.SECP256R1())
        self.ec384 = ec.generate_private_key(ec.SECP384R1())

    @staticmethod
    def spki(priv):
        return priv.public_key().public_bytes(
            ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)

    @staticmethod
    def cert(priv, sign_alg):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
        start = datetime.datetime(2020, 1, 1)
        c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(priv.public_key()).serial_number(1)
             .not_valid_before(start)
             .not_valid_after(start + datetime.timedelta(days=1))
             .sign(priv, sign_alg))
        return c.public_bytes(ser.Encoding.PEM)

    def write(self, d):
        """Writes the key files; returns the key lines of the table."""
        files = {
            "hs.key": self.hs,
            "hs-short.key": b"sixteen byte key",
            "rsa.pem": self.spki(self.rsa),
            "rsa-pkcs1.pem": self.rsa.public_key().public_bytes(
                ser.Encoding.PEM, ser.PublicFormat.PKCS1),
            "rsa-cert.pem": self.cert(self.rsa, hashes.SHA256()),
            "rsa-private.pem": self.rsa.private_bytes(
                ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                ser.NoEncryption()),
            "rsa-1024.pem": self.spki(self.rsa_small),
            "ec.pem": self.spki(self.ec),
            "ec-cert.pem": self.cert(self.ec, hashes.SHA256()),
            "ec-384.pem": self.spki(self.ec384),
            "garbage.pem": b"-----BEGIN PUBLIC KEY-----\nnot base64!\n"
                           b"-----END PUBLIC KEY-----\n",
        }
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        return [
            # The keys the tokens use.
            ("hs", "HS256", "hs.key", "ok"),
            ("rs", "RS256", "rsa.pem", "ok"),
            ("rs-pkcs1", "RS256", "rsa-pkcs1.pem", "ok"),
            ("rs-cert", "RS256", "rsa-cert.pem", "ok"),
            ("es", "ES256", "ec.pem", "ok"),
            ("es-cert", "ES256", "ec-cert.pem", "ok"),
            # Keys that must be refused.
            ("hs-short", "HS256", "hs-short.key", "error"),
            ("hs-pem", "HS256", "rsa.pem", "error"),
            ("rs-ec", "RS256", "ec.pem", "error"),
            ("rs-1024", "RS256", "rsa-1024.pem", "error"),
            ("rs-private", "RS256", "rsa-private.pem", "error"),
            ("rs-garbage", "RS256", "garbage.pem", "error"),
            ("rs-secret", "RS256", "hs.key", "error"),
            ("es-rsa", "ES256", "rsa.pem", "error"),
            ("es-pkcs1", "ES256", "rsa-pkcs1.pem", "error"),
            ("es-384", "ES256", "ec-384.pem", "error"),
        ]


def sign_raw(alg, key, signing_input):
    """Signs bytes without python3-jwt (for tokens it will not make)."""
    if alg == "HS256":
        return hmac.new(key, signing_input, hashlib.sha256).digest()
    if alg == "RS256":
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    r, s = decode_dss_signature(
        key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def make_raw(alg, key, header, payload):
    """A token from header and payload bytes exactly as given."""
    si = (b64(header) + "." + b64(payload)).encode()
    return si.decode() + "." + b64(sign_raw(alg, key, si))


def claims(**extra):
    c = {"sub": SUB, "name": "Alice", "iat": NOW - 10, "exp": NOW + 600}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


class Table:
    def __init__(self, keys):
        self.k = keys
        self.rows = []
        self.names = set()

    def add(self, name, key, expect, token, leeway=0, iss=None, aud=None,
            exp_optional=False, sub=None):
        if isinstance(token, str):
            token = token.encode()
        assert name not in self.names, name
        self.names.add(name)
        self.rows.append(((name, key, expect, str(NOW), str(leeway),
                           iss or "-", aud or "-",
                           "1" if exp_optional else "0", sub or "-"), token))

    def hs(self, c, headers=None, secret=None):
        return jwt.encode(c, secret or self.k.hs, algorithm="HS256",
                          headers=headers)

    def rs(self, c, key=None, headers=None):
        return jwt.encode(c, key or self.k.rsa, algorithm="RS256",
                          headers=headers)

    def es(self, c, key=None):
        return jwt.encode(c, key or self.k.ec, algorithm="ES256")

    def hs_raw(self, header, payload):
        return make_raw("HS256", self.k.hs, header, payload)


def padded_to(t, length):
    """An HS256 token of exactly length bytes, grown by a claim."""
    for extra in ("", "q", "qq", "qqq"):
        for n in range(length * 3 // 4 - 400, length * 3 // 4):
            c = claims(pad="x" * n)
            if extra:
                c[extra] = 1
            tok = t.hs(c)
            if len(tok) == length:
                return tok
    raise RuntimeError("cannot make a token of %d bytes" % length)


def nested(depth):
    """Claims whose JSON nests depth deep (the object itself is 1)."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return ('{"sub":"%s","exp":%d,"a":%s}' % (SUB, NOW + 600, inner)).encode()


def es256_with(t, pred):
    """An ES256 token whose raw signature satisfies pred."""
    for _ in range(20000):
        tok = t.es(claims())
        sig = base64.urlsafe_b64decode(tok.split(".")[2] + "==")
        if pred(sig):
            return tok
    raise RuntimeError("no such ES256 signature found")


def build(keys):
    t = Table(keys)
    k = keys

    # Valid tokens of every algorithm and key form.
    t.add("hs256-valid", "hs", "ok", t.hs(claims()), sub=SUB)
    t.add("rs256-valid", "rs", "ok", t.rs(claims()), sub=SUB)
    t.add("rs256-pkcs1-key", "rs-pkcs1", "ok", t.rs(claims()), sub=SUB)
    t.add("rs256-cert-key", "rs-cert", "ok", t.rs(claims()), sub=SUB)
    t.add("es256-valid", "es", "ok", t.es(claims()), sub=SUB)
    t.add("es256-cert-key", "es-cert", "ok", t.es(claims()), sub=SUB)
    for i in range(8):
        t.add("es256-valid-%d" % i, "es", "ok", t.es(claims()), sub=SUB)
    # r or s with a leading zero byte, s with its top bit set: the
    # conversion of r || s to DER must get them right.
    t.add("es256-r-leading-zero", "es", "ok",
          es256_with(t, lambda s: s[0] == 0), sub=SUB)
    t.add("es256-s-leading-zero", "es", "ok",
          es256_with(t, lambda s: s[32] == 0), sub=SUB)
    t.add("es256-s-top-bit", "es", "ok",
          es256_with(t, lambda s: s[32] >= 0x80), sub=SUB)
    t.add("hs256-typ-and-kid", "hs", "ok",
          t.hs(claims(), headers={"typ": "at+jwt", "kid": "k1",
                                  "jku": "http://attacker.invalid/"}),
          sub=SUB)
    t.add("hs256-unicode", "hs", "ok", t.hs(claims(name="Zoë 🦊")),
          sub=SUB)

    # Time.
    t.add("expired", "hs", "expired", t.hs(claims(exp=NOW - 100)),
          leeway=30)
    t.add("expired-within-leeway", "hs", "ok", t.hs(claims(exp=NOW - 10)),
          leeway=30, sub=SUB)
    t.add("expired-now", "hs", "expired", t.hs(claims(exp=NOW)))
    t.add("expires-next-second", "hs", "ok", t.hs(claims(exp=NOW + 1)),
          sub=SUB)
    t.add("expired-fraction", "hs", "expired",
          t.hs(claims(exp=NOW - 0.5)))
    t.add("expires-fraction", "hs", "ok", t.hs(claims(exp=NOW + 0.5)),
          sub=SUB)
    t.add("expired-rs256", "rs", "expired", t.rs(claims(exp=NOW - 3600)))
    t.add("expired-es256", "es", "expired", t.es(claims(exp=NOW - 3600)))
    t.add("not-yet-valid", "hs", "not_yet_valid",
          t.hs(claims(nbf=NOW + 100)), leeway=30)
    t.add("nbf-within-leeway", "hs", "ok", t.hs(claims(nbf=NOW + 20)),
          leeway=30, sub=SUB)
    t.add("nbf-now", "hs", "ok", t.hs(claims(nbf=NOW)), sub=SUB)
    t.add("iat-future", "hs", "not_yet_valid",
          t.hs(claims(iat=NOW + 100)), leeway=30)
    t.add("iat-future-within-leeway", "hs", "ok",
          t.hs(claims(iat=NOW + 20)), leeway=30, sub=SUB)
    t.add("no-exp", "hs", "claims", t.hs(claims(exp=None)))
    t.add("no-exp-allowed", "hs", "ok", t.hs(claims(exp=None)),
          exp_optional=True, sub=SUB)
    t.add("exp-string", "hs", "claims",
          t.hs_raw(b'{"alg":"HS256"}',
                   compact(claims(exp=str(NOW + 600)))))
    t.add("exp-bool", "hs", "claims",
          t.hs_raw(b'{"alg":"HS256"}', compact(claims(exp=True))))
    t.add("nbf-null", "hs", "claims",
          t.hs_raw(b'{"alg":"HS256"}', compact(dict(claims(), nbf=None))))

    # Issuer and audience.
    iss = "https://login.example.org"
    t.add("issuer-ok", "hs", "ok", t.hs(claims(iss=iss)), iss=iss, sub=SUB)
    t.add("issuer-wrong", "hs", "issuer",
          t.hs(claims(iss="https://evil.example.org")), iss=iss)
    t.add("issuer-missing", "hs", "issuer", t.hs(claims()), iss=iss)
    t.add("issuer-prefix", "hs", "issuer", t.hs(claims(iss=iss + "/x")),
          iss=iss)
    t.add("issuer-not-string", "hs", "issuer", t.hs(claims(iss=[iss])),
          iss=iss)
    t.add("issuer-unchecked", "hs", "ok", t.hs(claims(iss="anyone")),
          sub=SUB)
    t.add("audience-ok", "hs", "ok", t.hs(claims(aud="parley")),
          aud="parley", sub=SUB)
    t.add("audience-in-array", "hs", "ok",
          t.hs(claims(aud=["web", "parley"])), aud="parley", sub=SUB)
    t.add("audience-wrong", "hs", "audience",
          t.hs(claims(aud="other")), aud="parley")
    t.add("audience-wrong-array", "hs", "audience",
          t.hs(claims(aud=["web", "mobile"])), aud="parley")
    t.add("audience-empty-array", "hs", "audience",
          t.hs(claims(aud=[])), aud="parley")
    t.add("audience-missing", "hs", "audience", t.hs(claims()),
          aud="parley")
    t.add("audience-non-string-in-array", "hs", "audience",
          t.hs(claims(aud=[1, "parley"])), aud="parley")
    t.add("audience-object", "hs", "audience",
          t.hs(claims(aud={"parley": True})), aud="parley")
    t.add("audience-unexpected", "hs", "audience",
          t.hs(claims(aud="parley")))
    t.add("audience-case", "hs", "audience", t.hs(claims(aud="Parley")),
          aud="parley")
    t.add("issuer-and-audience-ok", "rs", "ok",
          t.rs(claims(iss=iss, aud=["parley"])), iss=iss, aud="parley",
          sub=SUB)

    # Wrong key.
    t.add("hs256-wrong-key", "hs", "signature",
          t.hs(claims(), secret=k.hs_other))
    t.add("rs256-wrong-key", "rs", "signature",
          t.rs(claims(), key=k.rsa_other))
    t.add("es256-wrong-key", "es", "signature",
          t.es(claims(), key=k.ec_other))

    # Algorithms other than the key's.
    none = jwt.encode(claims(), None, algorithm="none")
    t.add("alg-none-hs", "hs", "algorithm", none)
    t.add("alg-none-rs", "rs", "algorithm", none)
    t.add("alg-none-es", "es", "algorithm", none)
    for name in ("None", "NONE", "nOnE"):
        h = b64(compact({"alg": name, "typ": "JWT"}))
        t.add("alg-%s" % name, "hs", "algorithm",
              h + "." + b64(compact(claims())) + ".")
    # The classic confusion: an HS256 token whose secret is the server's
    # public key text, sent to an RS256 (or ES256) key.
    for key, pem in (("rs", Keys.spki(k.rsa)), ("rs-pkcs1",
                     k.rsa.public_key().public_bytes(
                         ser.Encoding.PEM, ser.PublicFormat.PKCS1)),
                     ("es", Keys.spki(k.ec))):
        t.add("confusion-hs256-with-%s-public-key" % key, key,
              "algorithm",
              make_raw("HS256", pem, b'{"alg":"HS256","typ":"JWT"}',
                       compact(claims())))
    t.add("rs256-to-es256-key", "es", "algorithm", t.rs(claims()))
    t.add("es256-to-rs256-key", "rs", "algorithm", t.es(claims()))
    t.add("hs256-to-rs256-key", "rs", "algorithm", t.hs(claims()))
    t.add("rs256-to-hs256-key", "hs", "algorithm", t.rs(claims()))
    t.add("hs512", "hs", "algorithm",
          jwt.encode(claims(), k.hs + k.hs, algorithm="HS512"))
    t.add("rs384", "rs", "algorithm",
          jwt.encode(claims(), k.rsa, algorithm="RS384"))
    t.add("ps256", "rs", "algorithm",
          jwt.encode(claims(), k.rsa, algorithm="PS256"))
    t.add("crit", "hs", "unsupported",
          t.hs(claims(), headers={"crit": ["exp"]}))
    # Headers written by hand, signed with the right key.
    for name, expect, header in (
            ("alg-missing", "algorithm", b'{"typ":"JWT"}'),
            ("alg-number", "algorithm", b'{"alg":256}'),
            ("alg-lowercase", "algorithm", b'{"alg":"hs256"}'),
            ("crit-b64", "unsupported",
             b'{"alg":"HS256","b64":false,"crit":["b64"]}'),
            ("header-not-json", "malformed", b"alg=HS256"),
            ("header-array", "malformed", b'["HS256"]'),
            ("header-string", "malformed", b'"HS256"'),
            ("duplicate-alg", "malformed", b'{"alg":"HS256","alg":"none"}'),
            ("duplicate-alg-same", "malformed",
             b'{"alg":"HS256","alg":"HS256"}')):
        t.add(name, "hs", expect, t.hs_raw(header, compact(claims())))

    # Tampering.
    good = t.hs(claims())
    h, p, s = good.split(".")
    evil = b64(compact(claims(sub="mallory")))
    t.add("tampered-payload", "hs", "signature", ".".join((h, evil, s)))
    rs_good = t.rs(claims())
    rh, rp, rsig = rs_good.split(".")
    t.add("tampered-payload-rs256", "rs", "signature",
          ".".join((rh, evil, rsig)))
    es_good = t.es(claims())
    eh, ep, esig = es_good.split(".")
    t.add("tampered-payload-es256", "es", "signature",
          ".".join((eh, evil, esig)))
    t.add("tampered-header", "hs", "signature",
          ".".join((b64(compact({"alg": "HS256", "typ": "JWT",
                                 "kid": "x"})), p, s)))
    sig = bytearray(base64.urlsafe_b64decode(s + "="))
    sig[5] ^= 1
    t.add("tampered-signature", "hs", "signature",
          ".".join((h, p, b64(bytes(sig)))))
    rsig_b = base64.urlsafe_b64decode(rsig + "==")
    t.add("rs256-signature-extra-zero", "rs", "signature",
          ".".join((rh, rp, b64(b"\0" + rsig_b))))
    t.add("rs256-signature-short", "rs", "signature",
          ".".join((rh, rp, b64(rsig_b[1:]))))
    der = k.ec.sign((eh + "." + ep).encode(), ec.ECDSA(hashes.SHA256()))
    t.add("es256-der-signature", "es", "signature",
          ".".join((eh, ep, b64(der))))
    t.add("es256-zero-signature", "es", "signature",
          ".".join((eh, ep, b64(b"\0" * 64))))
    t.add("es256-signature-short", "es", "signature",
          ".".join((eh, ep, b64(base64.urlsafe_b64decode(esig + "==")[:63]))))
    t.add("empty-signature", "hs", "signature", h + "." + p + ".")

    # Structure and encoding.
    t.add("empty", "hs", "malformed", "")
    t.add("dots-only", "hs", "malformed", "..")
    t.add("truncated", "hs", "malformed", good[:30])
    t.add("truncated-at-dot", "hs", "malformed", h + "." + p)
    t.add("truncated-signature", "hs", "signature", good[:-3])
    t.add("extra-segment", "hs", "malformed", good + ".e30")
    t.add("extra-dot", "hs", "malformed", good + ".")
    t.add("jwe-shape", "hs", "malformed", ".".join((h, "", p, s, "x")))
    t.add("padding", "hs", "malformed", good + "=")
    t.add("padding-header", "hs", "malformed",
          ".".join((b64(b'{"alg":"HS256"}') + "=", p, s)))
    std = good.replace("-", "+").replace("_", "/")
    if std == good:
        std = good[:-1] + "+"
    t.add("standard-base64", "hs", "malformed", std)
    t.add("space-inside", "hs", "malformed", h + "." + p[:4] + " " + p[4:]
          + "." + s)
    t.add("newline-inside", "hs", "malformed", h + "\n." + p + "." + s)
    t.add("trailing-newline", "hs", "malformed", good + "\n")
    t.add("bearer-prefix", "hs", "malformed", "Bearer " + good)
    t.add("nul-inside", "hs", "malformed", good[:10] + "\0" + good[11:])
    alphabet = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789-_")
    last = alphabet[alphabet.index(s[-1]) + 1]  # stray low bits
    t.add("non-canonical-base64", "hs", "malformed",
          ".".join((h, p, s[:-1] + last)))
    t.add("claims-array", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}', b'[{"sub":"alice"}]'))
    t.add("claims-not-json", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}', b"sub=alice"))
    t.add("claims-trailing-garbage", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}', compact(claims()) + b" x"))
    t.add("claims-two-objects", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}', compact(claims()) + b"{}"))
    t.add("claims-bad-utf8", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}',
                   compact(claims())[:-1] + b',"n":"\xc3\x28"}'))
    t.add("claims-nul-escape", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}',
                   compact(claims())[:-1] + b',"n":"a\\u0000b"}'))
    t.add("claims-huge-integer", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}',
                   b'{"sub":"alice","exp":1' + b"0" * 40 + b"}"))
    t.add("claims-huge-real", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}', b'{"sub":"alice","exp":1e999}'))
    t.add("claims-empty", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}', b""))
    t.add("duplicate-claim", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}',
                   compact(claims())[:-1] + b',"sub":"mallory"}'))
    t.add("duplicate-exp", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}',
                   compact(claims())[:-1] + (',"exp":%d}' % (NOW + 99999))
                   .encode()))

    # Size and depth.
    t.add("at-size-limit", "hs", "ok", padded_to(t, LIMIT), sub=SUB)
    t.add("over-size-limit", "hs", "too_large", padded_to(t, LIMIT + 1))
    t.add("huge", "hs", "too_large", t.hs(claims(pad="x" * 100000)))
    t.add("huge-garbage", "hs", "too_large", "A" * (1 << 20))
    t.add("depth-at-limit", "hs", "ok",
          t.hs_raw(b'{"alg":"HS256"}', nested(DEPTH)), sub=SUB)
    t.add("depth-over-limit", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}', nested(DEPTH + 1)))
    t.add("json-bomb", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}', nested(3000)))
    t.add("json-bomb-objects", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256"}',
                   b'{"exp":%d,"a":' % (NOW + 600) + b'{"a":' * 1000
                   + b"1" + b"}" * 1001))
    t.add("json-bomb-header", "hs", "malformed",
          t.hs_raw(b'{"alg":"HS256","x":' + b"[" * 2000 + b"]" * 2000
                   + b"}", compact(claims())))
    t.add("depth-brackets-in-strings", "hs", "ok",
          t.hs_raw(b'{"alg":"HS256"}',
                   compact(claims(x="[[[[[[[[[[[[[[[[[[[[\\\"{{{{{{{{{{"
                                  "{{{{{{{{{{{{"))), sub=SUB)

    # RFC 7515 A.1 is checked in the C program itself.
    return t


def write(d, keys):
    os.makedirs(os.path.join(d, "tokens"), exist_ok=True)
    key_lines = keys.write(d)
    table = build(keys)
    with open(os.path.join(d, "cases.txt"), "w") as f:
        for name, alg, path, expect in key_lines:
            f.write("key %s %s %s %s\n" % (name, alg, path, expect))
        for row, token in table.rows:
            f.write("token " + " ".join(row) + "\n")
            with open(os.path.join(d, "tokens", row[0]), "wb") as t:
                t.write(token)
    return len(key_lines), len(table.rows)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        os.makedirs(sys.argv[2], exist_ok=True)
        nk, nt = write(sys.argv[2], Keys())
        print("wrote %d keys and %d tokens to %s" % (nk, nt, sys.argv[2]))
        return 0
    build_dir = os.environ.get("PARLEY_BUILDDIR", ".")
    prog = os.path.join(build_dir, "tests", "unit", "test_jwt")
    if not os.access(prog, os.X_OK):
        print("SKIP: %s is not built (no GnuTLS, or --without-gnutls)" % prog)
        return 77
    out = os.environ.get("PARLEY_TEST_OUTDIR")
    if out:
        os.makedirs(out, exist_ok=True)
    d = tempfile.mkdtemp(prefix="jwt-", dir=out)
    try:
        nk, nt = write(d, Keys())
        print("%d keys, %d tokens from python3-jwt %s" % (nk, nt,
                                                         jwt.__version__))
        sys.stdout.flush()
        rc = subprocess.call([prog, d])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
