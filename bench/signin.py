#!/usr/bin/env python3
"""Sign in through portcullis at npm oidc-provider (tests/login_support/provider.mjs)
the way a browser does, and print the Cookie header of the session (for bench/session.sh).

  signin.py START_URL USER

Standard library only. Follows redirects by hand with a cookie jar keyed by name
(every server is on 127.0.0.1; cookies ignore ports), fills the provider's login
form (any password) and its consent form, and stops at the app's page. Prints
`portcullis_session=...` (with its chunks `_1`, ... when split), nothing else.
"""
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)
JAR = {}


def request(url, form=None):
    data = form.encode() if form is not None else None
    req = urllib.request.Request(url, data=data)
    req.add_header("Accept", "text/html")
    if JAR:
        req.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in JAR.items()))
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        resp = OPENER.open(req, timeout=10)
    except urllib.error.HTTPError as e:
        resp = e
    for c in resp.headers.get_all("Set-Cookie") or []:
        pair, _, attrs = c.partition(";")
        name, _, value = pair.strip().partition("=")
        if "max-age=0" in attrs.lower().replace(" ", "") or not value:
            JAR.pop(name, None)
        else:
            JAR[name] = value
    return resp.status, resp.headers.get("Location"), resp.read().decode("utf-8", "replace")


def navigate(url, form=None):
    for _ in range(20):
        status, location, body = request(url, form)
        form = None
        if 300 <= status < 400 and location:
            url = urllib.parse.urljoin(url, location)
            continue
        return url, status, body
    sys.exit("more than 20 redirects")


def action(base, html):
    m = re.search(r'action="([^"]+)"', html)
    if not m:
        sys.exit(f"no form at {base}")
    return urllib.parse.urljoin(base, m.group(1).replace("&amp;", "&").replace("&#x2F;", "/"))


def main():
    start, user = sys.argv[1], sys.argv[2]
    url, status, body = navigate(start)
    if 'name="login"' not in body:
        sys.exit(f"no login form at {url} ({status})")
    url, status, body = navigate(action(url, body), f"prompt=login&login={user}&password=pw")
    if 'name="prompt" value="consent"' in body:
        url, status, body = navigate(action(url, body), "prompt=consent")
    if status != 200 or not url.startswith(start.split("/", 3)[0] + "//" + start.split("/", 3)[2]):
        sys.exit(f"not back at the app: {url} ({status})")
    session = [(k, v) for k, v in JAR.items() if re.fullmatch(r"portcullis_session(_\d+)?", k)]
    if not session:
        sys.exit("no session cookie")
    print("; ".join(f"{k}={v}" for k, v in session))


if __name__ == "__main__":
    main()
