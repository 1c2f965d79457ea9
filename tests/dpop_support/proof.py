"""DPoP proofs (RFC 9449) and identity-assertion checks made by an independent JOSE
implementation (PyJWT + cryptography), for tests/dpop.rs and tests/assertion.rs.

stdin: one JSON request; stdout: one JSON answer.

  {"op": "proofs", "key": "keys/ec.pem", "kind": "ec"|"ec384"|"ed"|"rsa"|"rsa1024",
   "proofs": [{"htm": "GET", "htu": "...", "token": "...", "iat": <offset s>,
               "jti": "...", "header": {...merged}, "claims": {...merged},
               "drop_header": [...], "drop_claims": [...], "alg": "ES256",
               "sign_with": "keys/other.pem", "jwk": {...replaces}, "private_jwk": true}]}
    -> {"jkt": "...", "jwk": {...}, "proofs": ["..."]}
  The key file is created (PKCS#8 PEM) when missing, so a test keeps one client key.

  {"op": "verify", "token": "...", "jwks_url": "...", "audience": "...", "issuer": "..."}
    -> {"header": {...}, "claims": {...}} (PyJWT verifies signature, exp, aud, iss)
"""
import base64
import hashlib
import json
import os
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_or_create(path: str, kind: str):
    if os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ec384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif kind == "ed":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "rsa1024":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    else:
        raise SystemExit(f"unknown key kind {kind}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key


def public_jwk(key) -> dict:
    pub = key.public_key()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return json.loads(jwt.algorithms.ECAlgorithm.to_jwk(pub))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(pub))
    return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pub))


def private_jwk(key) -> dict:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key))
    return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))


def thumbprint(jwk: dict) -> str:
    """RFC 7638: the required members only, sorted, no whitespace, SHA-256."""
    required = {"EC": ["crv", "kty", "x", "y"], "OKP": ["crv", "kty", "x"], "RSA": ["e", "kty", "n"]}
    members = {k: jwk[k] for k in required[jwk["kty"]]}
    canon = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canon.encode()).digest())


def default_alg(key) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES384" if key.curve.name == "secp384r1" else "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    return "RS256"


def proof(key, jwk: dict, spec: dict) -> str:
    claims = {"htm": spec.get("htm", "GET"), "htu": spec["htu"],
              "iat": int(time.time()) + int(spec.get("iat", 0)),
              "jti": spec.get("jti") or str(uuid.uuid4())}
    if spec.get("token") is not None:
        claims["ath"] = b64(hashlib.sha256(spec["token"].encode()).digest())
    claims.update(spec.get("claims", {}))
    for k in spec.get("drop_claims", []):
        claims.pop(k, None)
    header = {"typ": "dpop+jwt", "jwk": spec.get("jwk", jwk)}
    if spec.get("private_jwk"):
        header["jwk"] = private_jwk(key)
    extra = dict(spec.get("header", {}))
    forced_alg = extra.pop("alg", None)
    header.update(extra)
    alg = spec.get("alg") or default_alg(key)
    signer = key
    if spec.get("sign_with"):
        signer = load_or_create(spec["sign_with"], spec.get("sign_with_kind", "ec"))
    if forced_alg is None and not spec.get("drop_header"):
        return jwt.encode(claims, signer, algorithm=alg, headers=header)
    # A header PyJWT would not write (another `alg` than the signature's, members
    # dropped): built by hand, signed with PyJWT's algorithm implementation.
    hd = {"alg": forced_alg or alg, **header}
    for k in spec.get("drop_header", []):
        hd.pop(k, None)
    msg = b64(json.dumps(hd).encode()) + "." + b64(json.dumps(claims).encode())
    algo = jwt.get_algorithm_by_name(alg)
    token = msg + "." + b64(algo.sign(msg.encode(), algo.prepare_key(signer)))
    return token


def main():
    req = json.load(sys.stdin)
    if req["op"] == "proofs":
        key = load_or_create(req["key"], req.get("kind", "ec"))
        jwk = public_jwk(key)
        out = {"jkt": thumbprint(jwk), "jwk": jwk,
               "proofs": [proof(key, jwk, s) for s in req.get("proofs", [])]}
    elif req["op"] == "thumbprint":
        out = {"jkt": thumbprint(req["jwk"])}
    elif req["op"] == "verify":
        client = jwt.PyJWKClient(req["jwks_url"])
        signing_key = client.get_signing_key_from_jwt(req["token"])
        claims = jwt.decode(req["token"], signing_key.key, algorithms=["RS256", "ES256", "EdDSA"],
                            audience=req["audience"], issuer=req["issuer"],
                            options={"require": ["exp", "iat", "iss", "sub", "aud"]})
        out = {"header": jwt.get_unverified_header(req["token"]), "claims": claims}
    else:
        raise SystemExit("unknown op")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
