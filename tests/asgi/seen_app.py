"""A tiny ASGI app run under real Hypercorn by tests/security_upgrade.rs.

Every HTTP request (`/public/x`, `/admin/secret`, any path) is answered 200 with a
JSON dump of what the app saw: method, path, HTTP version, the `x-user` values and
the `upgrade` / `http2-settings` / `connection` headers. The same line is appended to
the file named by `$SEEN_LOG`, so a test can tell whether a request ever reached the
backend, whichever protocol carried it (an h2c-upgraded tunnel included).
"""

import json
import os


def _values(scope, name):
    return [v.decode("latin-1") for k, v in scope["headers"] if k.decode("latin-1") == name]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "http_version": scope["http_version"],
        "x_user": _values(scope, "x-user"),
        "upgrade": _values(scope, "upgrade"),
        "http2_settings": _values(scope, "http2-settings"),
        "connection": _values(scope, "connection"),
    }
    line = json.dumps(seen)
    with open(os.environ["SEEN_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")
    body = line.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
