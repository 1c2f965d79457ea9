#!/usr/bin/env python3
"""Regenerates the committed seed corpora under fuzz/corpus/ (issue #9).

Tokens are signed with the fixed keys in fuzz/keys/ (openssl CLI), exp in 2100, so
they verify in the token_verify target and mutations start from accepting paths.
Run from fuzz/: python3 seeds.py
"""
import base64, hashlib, hmac, json, os, subprocess, glob

SECRET = b"fuzz-secret-fuzz-secret-fuzz-secret-0123"
EXP = 4102444800


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def write(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(f"corpus/{target}/{name}", "wb") as f:
        f.write(data)


def der_to_raw(der, n=32):
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s
    i = 2
    out = b""
    for _ in range(2):
        assert der[i] == 2
        ln = der[i + 1]
        v = der[i + 2 : i + 2 + ln].lstrip(b"\0")
        out += v.rjust(n, b"\0")
        i += 2 + ln
    return out


def openssl_sign(key, msg, args):
    p = subprocess.run(["openssl"] + args + ["-sign", f"keys/{key}"], input=msg, capture_output=True, check=True)
    return p.stdout


def token(alg, iss, sub="alice", extra=None, header_extra=None):
    h = {"alg": alg, "typ": "JWT", **(header_extra or {})}
    c = {"iss": iss, "sub": sub, "exp": EXP, **(extra or {})}
    msg = f"{b64(json.dumps(h, separators=(',', ':')).encode())}.{b64(json.dumps(c, separators=(',', ':')).encode())}".encode()
    if alg.startswith("HS"):
        sig = hmac.new(SECRET, msg, {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]).digest()
    elif alg in ("RS256", "RS384", "RS512"):
        sig = openssl_sign("rsa.pem", msg, ["dgst", "-sha" + alg[2:]])
    elif alg == "PS256":
        sig = openssl_sign("rsa.pem", msg, ["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"])
    elif alg == "ES256":
        sig = der_to_raw(openssl_sign("ec.pem", msg, ["dgst", "-sha256"]))
    elif alg == "EdDSA":
        import tempfile
        with tempfile.NamedTemporaryFile() as t:
            t.write(msg)
            t.flush()
            p = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", "keys/ed.pem", "-rawin", "-in", t.name], capture_output=True, check=True)
        sig = p.stdout
    else:
        sig = b""
    return msg.decode() + "." + b64(sig)


for f in glob.glob("corpus/*/*"):
    os.remove(f)

# token_verify
seeds = {
    "hs256": token("HS256", "hs"),
    "hs384": token("HS384", "hs"),
    "hs512": token("HS512", "hs", extra={"aud": ["a", "b"], "nbf": 1, "iat": 1, "scope": "a b"}),
    "rs256": token("RS256", "rsa"),
    "rs512": token("RS512", "rsa", sub="bob"),
    "ps256": token("PS256", "rsa"),
    "es256": token("ES256", "ec"),
    "eddsa": token("EdDSA", "ed"),
    "kid": token("HS256", "hs", header_extra={"kid": "../../dev/null"}),
    "jku": token("RS256", "rsa", header_extra={"jku": "http://127.0.0.1:1/jwks"}),
    "crit": token("HS256", "hs", header_extra={"crit": ["exp"]}),
    "float_exp": token("HS256", "hs", extra={"exp": 4102444800.5}),
    "blank_sub": token("HS256", "hs", sub=" "),
}
alg_none = token("none", "hs")
seeds["alg_none"] = alg_none
seeds["stripped"] = seeds["hs256"].rsplit(".", 1)[0] + "."
seeds["two_parts"] = seeds["hs256"].rsplit(".", 1)[0]
seeds["hs_with_rsa_iss"] = token("HS256", "rsa")
seeds["psychic"] = seeds["es256"].rsplit(".", 1)[0] + "." + b64(b"\0" * 64)
seeds["padded_sig"] = seeds["hs256"] + "="
seeds["jwe"] = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d"
for k, v in seeds.items():
    write("token_verify", k, v)

# path_normalize
paths = [
    "/", "/a/b/c", "/a/./b/../c", "//a//b//", "/%61dmin", "/%2e%2e/a", "/x/%2E%2e/admin",
    "/x/..;/admin", "/x/.;/a", "/x/..%3b/a", "/a;b/c", "/%252e%252e/", "/%2f", "/%5C", "/a\\b",
    "/%00", "/%c0%ae", "/%e2%82%ac", "/caf%C3%A9", "/%ff", "/%", "/%zz", "/api/v1/items/x",
    "/api/%76%31/items", "/health", "/health/", "/internal/../admin", "/admin/x/../../internal",
    "/~user/%7e", "/a/b/../../..", "*", "http://x/a", "/" + "a/" * 64, "/.a/..b/...", "/%2E",
    "/a%20b", "/%F0%9F%A6%80", "/%ed%a0%80", "/%f4%90%80%80",
]
for i, p in enumerate(paths):
    write("path_normalize", f"p{i:02}", p)

# header_strip
headers = [
    "x-user: admin\nhost: a", "X_User: a\nX-USER-EMAIL: b\nx-other: c", "connection: x-user, keep-alive\nx-user: a\nkeep-alive: 5",
    "te: trailers\nx-a: b", "te: gzip\ntrailer: x", "connection: upgrade\nupgrade: websocket", "transfer-encoding: chunked\nx-keep: 1",
    "proxy-authorization: Basic x\nproxy-connection: keep-alive", "x-user-email: e\nx-user_email: f\nx_user-email: g",
    "connection: TE\nte: trailers", "connection: , ,x-a\nx-a: 1\nx-b: 2", "x-users: keep\nx-use: keep\nxx-user: keep",
    "authorization: Bearer t\nx-request-id: abc", "x-user: \nx-user: \xff", "connection: x-forwarded-for\nx-forwarded-for: 1.2.3.4",
    "x-original-url: /admin\nX_Rewrite_URL: /a\nx_http_method_override: DELETE\nx-http-method: PUT\nx-method-override: P\nx-http-methods: keep",
    "connection: Upgrade, HTTP2-Settings\nupgrade: h2c\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA",
]
for i, h in enumerate(headers):
    write("header_strip", f"h{i:02}", h.encode("latin-1"))

# host_parse
hosts = [
    b"secure.example.com", b"SECURE.Example.COM.", b"secure.example.com:8443", b"secure.example.com.:80",
    b"secure.example.com:abc", b"secure.example.com:80:80", b"secure.example.com:", b"secure.example.com:65536",
    b"secure..example.com", b"host..", b".a", b"evil@secure.example.com", b"secure.example.com/x",
    b"a,b", b"secure%2eexample.com", b"s\xc3\xa9cure.example.com", b"", b":80", b"[::1]:8080",
    b"[2001:DB8::A]", b"[::1", b"[v1.x]", b"[::1]x", b"127.0.0.1:65535", b"my_service-1",
    b"a.internal.example.com.", b"A.B.Internal.Example.COM.:443",
]
for i, h in enumerate(hosts):
    write("host_parse", f"s{i:02}", h)

# guard_multi: [flags, cut seed (4 bytes), payload]. Odd flags: payload picks templates;
# even flags: payload is a raw connection.
import struct
os.makedirs("corpus/guard_multi", exist_ok=True)
conns = [
    b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\n\r\nGET /a HTTP/1.1\r\n\r\n\nGET /b HTTP/1.1\nX: y\n\n",
    b"POST /a HTTP/1.1\r\nContent-Length: 0005\r\n\r\nhelloPOST /b HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005;a=\"b c\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    b"GET /a HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
    b"CONNECT a:443 HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    b"GET /a HTTP/1.1\r\nX-A : b\r\n\r\n",
    b"GET /a HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n",
    b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 300 + b"\r\nx\r\n0\r\n\r\n",
    b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nOPTIONS * HTTP/1.1\r\n\r\nGET http://h/x HTTP/1.1\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nokGET /b HTTP/1.1\r\n\r\n",
]
for i, c in enumerate(conns):
    write("guard_multi", f"raw{i:02}", bytes([2 * (i % 4)]) + struct.pack("<I", 0x9E3779B9 * (i + 1) & 0xFFFFFFFF) + c)
for i in range(12):
    # n requests, then template bytes
    payload = bytes([i % 9] + [(i * 7 + k * 13) % 256 for k in range(120)])
    write("guard_multi", f"t{i:02}", bytes([2 * i + 1]) + struct.pack("<I", 0x85EBCA6B * (i + 3) & 0xFFFFFFFF) + payload)

# config_parse
configs = sorted(glob.glob("../proxy.toml") + glob.glob("../deploy/**/*.toml", recursive=True))
for i, path in enumerate(configs):
    with open(path, "rb") as f:
        write("config_parse", f"repo{i:02}", f.read())
small = [
    '[upstreams.app]\nurl = "echo:"\n[[issuers]]\nname = "t"\nissuer = "t"\nsecret = "0123456789abcdef0123456789abcdef"\n[[routes]]\npath = "/**"\nupstream = "app"\n',
    '[server]\nlisten = "127.0.0.1:0"\nheader_timeout = "1s"\nmax_header_bytes = -1\n',
    '[[routes]]\npath = "/a/**/b"\nupstream = "x"\n[[routes]]\npath = "/**"\naccess = "deny"\n[[routes]]\npath = "/z"\n',
    '[upstreams.a]\nurl = "${NOPE}"\ntimeout = "10x"\n',
    '[identity]\nheader = "X User"\nclaim = ""\n[identity.claims_to_headers]\n"Bad Header" = "email"\n',
    '[[issuers]]\nname = "j"\nissuer = "https://idp/"\njwks_url = "https://idp/jwks"\nalgorithms = ["none", "RS256"]\nleeway = "99999999d"\n',
    '[[routes]]\nhost = "*.example.com"\npath = "/a/*/c"\nmethods = ["GET", "BREW"]\nscopes = ["a"]\nclaims = { groups = ["x"] }\ntoken_from = ["query:t", "cookie:", "header"]\nupstream = "app"\n',
    '[server]\nmax_connections = 0\nh2_max_concurrent_streams = 4294967296\n[cache]\ntokens = -5\n',
    "a = \n[[[",
    '[token_endpoint]\npath = "/token"\nissuer = "missing"\nusers = "../../etc/passwd"\n',
]
for i, t in enumerate(small):
    write("config_parse", f"c{i:02}", t)
print({t: len(os.listdir(f"corpus/{t}")) for t in os.listdir("corpus")})
