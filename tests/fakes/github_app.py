#!/usr/bin/env python3
"""The strict fake GitHub (../shared/github/fake_github.py) with a GitHub App installed on its
repository: the three endpoints of the installation-token flow, judged like every other request
(route, body and answer against GitHub's REST description) and authenticated as GitHub does.

- `GET /repos/{owner}/{repo}/installation` and `POST /app/installations/{id}/access_tokens`
  take `Authorization: Bearer <JWT>`. The JWT is verified with PyJWT against the App's public
  key: RS256 only, `iss` the App's ID, `iat` and `exp` present, `exp` in the future, a lifetime
  of at most ten minutes and `iat` not in the future (60 s of drift allowed), as GitHub checks.
  A bad JWT is a 401 with GitHub's message and a logged problem.
- The token request must name only this repository and only permissions the installation was
  granted (`--app-permission name=read|write`), else GitHub's 422.
- The minted token is the fake's `--token`: before it is minted and after
  `DELETE /installation/token` revokes it, every API call and git request with it is a 401.
  The JWT works on the two App endpoints only.
- `--job-token` is the workflow's own `GITHUB_TOKEN`: it fetches (actions/checkout runs before
  the App token exists), but a push or an API call with it is a logged problem and refused
  (403 / 401): with an App configured, everything after the checkout must use the App's token.

Every other option is fake_github.py's; this adds --app-id, --app-public-key (PEM file),
--installation-id and --app-permission. The log records `app_event` lines (minted, revoked).
"""
import argparse
import base64
import os
import re
import sys
import threading
import time

import jwt  # PyJWT, with cryptography for RS256

SHARED = os.environ.get("SANDCRAB_SHARED_GITHUB") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "github")
sys.path.insert(0, SHARED)
import fake_github as fg  # noqa: E402

JWT_PATHS = (re.compile(r"^/repos/[^/]+/[^/]+/installation$"),
             re.compile(r"^/app/installations/\d+/access_tokens$"))
NEVER = "ghs_fake-app-token-not-valid-now"
LOCAL = threading.local()
APP = argparse.Namespace()


class AppState(fg.State):
    """The fake's state, whose accepted token is the minted one, only while it is valid."""

    @property
    def token(self):
        override = getattr(LOCAL, "token", None)
        if override is not None:
            return override
        return self._token if APP.minted and not APP.revoked else NEVER

    @token.setter
    def token(self, value):
        self._token = value


def record_app_event(event, **fields):
    fg.STATE.record({"kind": "app_event", "event": event, "problems": [], **fields})


def verify_jwt(auth):
    """None when `auth` carries a JWT GitHub would take for the App, else the reason."""
    m = re.fullmatch(r"(?i)bearer (\S+)", auth or "")
    if not m:
        return "no Bearer JWT"
    token = m.group(1)
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "RS256":
            return f"alg {header.get('alg')!r} is not RS256"
        claims = jwt.decode(token, APP.public_key, algorithms=["RS256"], issuer=str(APP.app_id),
                            leeway=60, options={"require": ["iat", "exp", "iss"]})
    except jwt.PyJWTError as e:
        return f"the JWT does not verify: {e}"
    now = time.time()
    if claims["exp"] - claims["iat"] > 600:
        return "'exp' is too far in the future (more than 10 minutes after 'iat')"
    if claims["iat"] > now + 60:
        return "'iat' is in the future"
    return None


def api(self, method, path, query, raw):
    LOCAL.token = None
    if APP.job_token and APP.job_token in (self.headers.get("Authorization") or ""):
        fg.STATE.record({"kind": "api", "method": method, "path": path, "status": 401,
                         "problems": ["app: an API call with the job's token, not the App's"]})
        return self.send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                               "status": "401"})
    if any(p.match(path) for p in JWT_PATHS):
        why = verify_jwt(self.headers.get("Authorization"))
        if why:
            fg.STATE.record({"kind": "api", "method": method, "path": path, "status": 401,
                             "headers": dict(self.headers), "problems": [f"app: {why}"]})
            return self.send(401, {"message": "A JSON web token could not be decoded",
                                   "documentation_url": "https://docs.github.com/rest",
                                   "status": "401"})
        LOCAL.token = re.fullmatch(r"(?i)bearer (\S+)", self.headers["Authorization"]).group(1)
    try:
        return ORIGINAL_API(self, method, path, query, raw)
    finally:
        LOCAL.token = None


def installation(w):
    bot_account = w.user(w.owner, 21031067, "Organization")
    return {
        "id": APP.installation_id, "client_id": "Iv1.fakeclient", "account": bot_account,
        "repository_selection": "selected",
        "access_tokens_url": f"{w.api}/app/installations/{APP.installation_id}/access_tokens",
        "repositories_url": f"{w.api}/installation/repositories",
        "html_url": f"{w.server}/organizations/{w.owner}/settings/installations/{APP.installation_id}",
        "app_id": int(APP.app_id), "app_slug": "sandcrab-test", "target_id": 21031067,
        "target_type": "Organization", "permissions": dict(APP.permissions), "events": [],
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "single_file_name": None, "has_multiple_single_files": False, "single_file_paths": [],
        "suspended_by": None, "suspended_at": None,
    }


def answer(self, route, p, body, rec):
    w, op = fg.STATE.world, route["op"]
    if op == "apps/get-repo-installation":
        if f"{p.get('owner')}/{p.get('repo')}".lower() != f"{w.owner}/{w.name}".lower():
            return 404, fg.NOT_FOUND, []
        return 200, installation(w), []
    if op == "apps/create-installation-access-token":
        doc = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
        if int(p["installation_id"]) != APP.installation_id:
            return 404, fg.NOT_FOUND, []
        names = (body or {}).get("repositories")
        if names is not None and [n.lower() for n in names] != [w.name.lower()]:
            return 422, {"message": "There is at least one repository that does not exist or is not accessible to the parent installation.",
                         "documentation_url": doc, "status": "422"}, []
        asked = (body or {}).get("permissions") or dict(APP.permissions)
        for name, level in asked.items():
            granted = APP.permissions.get(name)
            if granted is None or (level == "write" and granted != "write"):
                return 422, {"message": "The permissions requested are not granted to this installation.",
                             "documentation_url": doc, "status": "422"}, []
        APP.minted, APP.revoked = True, False
        record_app_event("minted", repositories=names, permissions=asked)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        repo = w.repository()
        token = {"token": fg.STATE._token, "expires_at": expires, "permissions": asked,
                 "repository_selection": "selected", "repositories": [repo] if names else None}
        if token["repositories"] is None:
            token.pop("repositories")
        return 201, token, []
    if op == "apps/revoke-installation-access-token":
        APP.revoked = True
        record_app_event("revoked")
        return 204, None, []
    return ORIGINAL_ANSWER(self, route, p, body, rec)


def git(self, method, owner, name, tail, query, body):
    auth = self.headers.get("Authorization", "")
    password = None
    if auth.lower().startswith("basic "):
        try:
            password = base64.b64decode(auth[6:]).decode().partition(":")[2]
        except Exception:
            password = None
    if APP.job_token and password == APP.job_token:
        pushing = tail == "/git-receive-pack" or "service=git-receive-pack" in (query or "")
        if pushing:
            fg.STATE.record({"kind": "git", "method": method, "path": self.path, "status": 403,
                             "problems": ["app: a push with the job's token, not the App's"]})
            return self.send(403, raw=b"Permission denied to github-actions[bot].\n",
                             ctype="text/plain")
        LOCAL.token = APP.job_token
    try:
        return ORIGINAL_GIT(self, method, owner, name, tail, query, body)
    finally:
        LOCAL.token = None


ORIGINAL_GIT = fg.Handler.git
ORIGINAL_API = fg.Handler.api
ORIGINAL_ANSWER = fg.Handler.answer


def main():
    argv, rest = sys.argv[1:], []
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--app-id", required=True)
    p.add_argument("--app-public-key", required=True)
    p.add_argument("--installation-id", type=int, required=True)
    p.add_argument("--app-permission", action="append", default=[])
    p.add_argument("--job-token")
    a, rest = p.parse_known_args(argv)
    APP.app_id = a.app_id
    APP.public_key = open(a.app_public_key).read()
    APP.installation_id = a.installation_id
    APP.permissions = dict(x.split("=", 1) for x in a.app_permission)
    APP.job_token = a.job_token
    APP.minted = APP.revoked = False
    fg.State = AppState
    fg.Handler.api = api
    fg.Handler.answer = answer
    fg.Handler.git = git
    sys.argv = [sys.argv[0], *rest]
    fg.main()


if __name__ == "__main__":
    main()
