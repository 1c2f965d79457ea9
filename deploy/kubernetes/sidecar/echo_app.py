"""Demo app for the sidecar pattern: answers every request with a JSON dump of it.

It stands in for your application: it listens on 127.0.0.1 only (so nothing outside
the Pod reaches it except through portcullis), trusts X-User as set by portcullis, and
answers GET /health for probes. Standard library only, so `python:3-slim` runs it.
tests/deploy.rs runs this same file behind the sidecar's proxy.toml.

usage: python3 echo_app.py [PORT]   (default 8000; PORT 0 picks a free one and prints it)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "user": self.headers.get("X-User"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, fmt, *args):  # one line per request on stderr
        sys.stderr.write("echo_app: " + (fmt % args) + "\n")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = ThreadingHTTPServer(("127.0.0.1", port), Echo)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
