#!/usr/bin/env python3
"""Local OAuth2 token endpoint + GCE metadata server on 127.0.0.1 for trainyard-gcp's auth tests.
The service-account JWT is verified by Google's own google-auth library (signature with the
key's certificate, iat/exp with clock skew, audience), so a wrongly signed or shaped assertion
is refused the way Google would refuse it.

  fake_auth.py make-key DIR PORT   throwaway RSA key (cryptography) -> DIR/sa.json, sa_cert.pem,
                                   sa_short.json (tokens live 2 s), sa_wrong.json (same key id,
                                   another key), user.json (gcloud authorized_user)
  fake_auth.py serve DIR PORT      POST /token  (jwt-bearer or refresh_token grant)
                                   GET  /computeMetadata/v1/instance/service-accounts/default/token
                                        (needs Metadata-Flavor: Google)
                                   GET  /stats  counters, for the tests
"""
import datetime, json, os, sys, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def make_key(d, port):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    os.makedirs(d, exist_ok=True)

    def pem(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trainyard-test-sa")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    open(os.path.join(d, "sa_cert.pem"), "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    base = f"http://127.0.0.1:{port}"
    sa = {"type": "service_account", "project_id": "test-project", "private_key_id": "trainyard-kid-1",
          "private_key": pem(key), "client_email": "trainer@test-project.iam.gserviceaccount.com",
          "client_id": "1234567890", "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": f"{base}/token", "universe_domain": "googleapis.com"}
    json.dump(sa, open(os.path.join(d, "sa.json"), "w"), indent=1)
    json.dump(dict(sa, token_uri=f"{base}/token?expires_in=2"), open(os.path.join(d, "sa_short.json"), "w"))
    json.dump(dict(sa, private_key=pem(other)), open(os.path.join(d, "sa_wrong.json"), "w"))
    user = {"type": "authorized_user", "client_id": "764086051850-test.apps.googleusercontent.com",
            "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty", "refresh_token": "1//0refresh-token-for-tests",
            "token_uri": f"{base}/token"}
    json.dump(user, open(os.path.join(d, "user.json"), "w"))
    print("wrote", d)


def serve(d, port):
    from google.auth import jwt

    cert = open(os.path.join(d, "sa_cert.pem")).read()
    sa = json.load(open(os.path.join(d, "sa.json")))
    user = json.load(open(os.path.join(d, "user.json")))
    stats = {"jwt_grants": 0, "refresh_grants": 0, "metadata": 0, "rejected": 0, "last_error": ""}
    by_tag = {}  # ?tag= on the token URL -> counters, so parallel tests can count their own
    lock = threading.Lock()

    def bump(key, tag):
        stats[key] += 1
        if tag:
            t = by_tag.setdefault(tag, {"jwt_grants": 0, "refresh_grants": 0, "rejected": 0})
            t[key] = t.get(key, 0) + 1
        return stats[key]

    class H(BaseHTTPRequestHandler):
        def _json(self, code, obj):
            b = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def _reject(self, code, error, desc):
            tag = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query).get("tag", [""])[0]
            with lock:
                bump("rejected", tag)
                stats["last_error"] = f"{error}: {desc}"
            self._json(code, {"error": error, "error_description": desc})

        def do_POST(self):
            url = urllib.parse.urlparse(self.path)
            if url.path != "/token":
                return self._json(404, {"error": "not_found"})
            q = urllib.parse.parse_qs(url.query)
            expires_in = int(q.get("expires_in", ["3599"])[0])
            tag = q.get("tag", [""])[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            f = urllib.parse.parse_qs(body)
            grant = f.get("grant_type", [""])[0]
            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                assertion = f.get("assertion", [""])[0]
                audience = f"http://{self.headers['Host']}{self.path}"
                try:
                    claims = jwt.decode(assertion, certs={sa["private_key_id"]: cert}, audience=audience)
                    hdr = jwt.decode_header(assertion)
                except Exception as e:  # google-auth's verdict
                    return self._reject(400, "invalid_grant", f"google-auth: {e}")
                problems = []
                if hdr.get("alg") != "RS256": problems.append("alg is not RS256")
                if hdr.get("kid") != sa["private_key_id"]: problems.append("kid")
                if claims.get("iss") != sa["client_email"]: problems.append("iss")
                if SCOPE not in claims.get("scope", "").split(): problems.append("scope")
                if claims["exp"] - claims["iat"] > 3600: problems.append("exp - iat > 3600")
                if problems:
                    return self._reject(400, "invalid_grant", ", ".join(problems))
                with lock:
                    n = bump("jwt_grants", tag)
                return self._json(200, {"access_token": f"ya29.sa-token-{n}", "expires_in": expires_in, "token_type": "Bearer"})
            if grant == "refresh_token":
                for k in ("client_id", "client_secret", "refresh_token"):
                    if f.get(k, [""])[0] != user[k]:
                        return self._reject(400, "invalid_grant", f"bad {k}")
                with lock:
                    n = bump("refresh_grants", tag)
                return self._json(200, {"access_token": f"ya29.user-token-{n}", "expires_in": expires_in,
                                        "token_type": "Bearer", "scope": SCOPE})
            return self._reject(400, "unsupported_grant_type", grant)

        def do_GET(self):
            p = urllib.parse.urlparse(self.path).path
            if p == "/stats":
                with lock:
                    return self._json(200, dict(stats, by_tag=by_tag))
            if p == "/computeMetadata/v1/instance/service-accounts/default/token":
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self._reject(403, "forbidden", "Missing Metadata-Flavor:Google header")
                with lock:
                    stats["metadata"] += 1
                    n = stats["metadata"]
                return self._json(200, {"access_token": f"ya29.mds-token-{n}", "expires_in": 3599, "token_type": "Bearer"})
            self._json(404, {"error": "not_found"})

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", int(port)), H)
    print(f"fake auth on 127.0.0.1:{port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    {"make-key": lambda: make_key(sys.argv[2], sys.argv[3]),
     "serve": lambda: serve(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
