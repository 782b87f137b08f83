#!/usr/bin/python3
# stsd.py: an HTTPS server of MTA-STS policies (RFC 8461 section 3.2) for
# the tests.  README in this folder.
#
#   stsd.py -c CERT -k KEY -p POLICY [-m MODE] [-l ADDR] [-L LOG] [-t SECONDS]
#
# Listens on ADDR (default 127.0.0.1, port 0: a free one) and prints
# "port N" on stdout, flushed.  GET /.well-known/mta-sts.txt answers the
# file POLICY, read again for every request, so a test can change it.
# Every request is logged to LOG (default stderr) as one line
#   get path=PATH host=HOST sni=NAME mode=MODE
# flushed at once: count lines to count fetches.  MODE:
#   ok        200, text/plain, Content-Length
#   big       the policy padded to 65537 bytes, over the 64 KiB limit
#   redirect  301 to another host, which must not be followed
#   ctype     200 with Content-Type text/html
#   e500      500 Internal Server Error
#   slow      the answer 30 s late (a fetch timeout)
# Exits after SECONDS (default 600), or at SIGTERM/SIGINT.
import argparse
import http.server
import signal
import ssl
import sys
import threading
import time

MODES = ("ok", "big", "redirect", "ctype", "e500", "slow")
WELL_KNOWN = "/.well-known/mta-sts.txt"
BIG = 65537

ap = argparse.ArgumentParser(description="MTA-STS policy server for tests")
ap.add_argument("-c", dest="cert", required=True, help="PEM certificate chain")
ap.add_argument("-k", dest="key", required=True, help="PEM private key")
ap.add_argument("-p", dest="policy", required=True, help="policy file")
ap.add_argument("-m", dest="mode", default="ok", choices=MODES)
ap.add_argument("-l", dest="addr", default="127.0.0.1")
ap.add_argument("-L", dest="log", help="request log (default stderr)")
ap.add_argument("-t", dest="lifetime", type=float, default=600)
opt = ap.parse_args()

log = open(opt.log, "a") if opt.log else sys.stderr
log_lock = threading.Lock()
sni_of = {}     # id(SSLObject) -> server name the client sent


def log_line(text):
    with log_lock:
        log.write(text + "\n")
        log.flush()


def field(v):
    """A log value: no spaces or control characters."""
    if v is None:
        return "-"
    return "".join(c if 32 < ord(c) < 127 else "\\x%02x" % ord(c) for c in v)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stsd/1"

    def do_GET(self):
        sni = sni_of.get(id(self.connection))
        log_line("get path=%s host=%s sni=%s mode=%s" % (field(self.path),
                 field(self.headers.get("Host")), field(sni), opt.mode))
        if self.path != WELL_KNOWN:
            self.send_error(404)
            return
        if opt.mode == "slow":
            time.sleep(30)
        if opt.mode == "e500":
            self.send_error(500)
            return
        if opt.mode == "redirect":
            self.send_response(301)
            self.send_header("Location", "https://elsewhere.test" + WELL_KNOWN)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            with open(opt.policy, "rb") as f:
                body = f.read()
        except OSError:
            self.send_error(404)
            return
        if opt.mode == "big":
            # The policy first, so that a client that read only the first
            # 64 KiB would still see (and obey) it.
            body += b"#" * max(0, BIG - len(body))
        ctype = "text/html" if opt.mode == "ctype" else "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        log_line("error peer=%s:%d what=%s" % (client_address[0],
                 client_address[1], field(str(sys.exc_info()[1]))))


def on_sni(sslobj, name, ctx):
    sni_of[id(sslobj)] = name
    return None


def on_signal(signum, frame):
    sys.exit(0)


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(opt.cert, opt.key)
ctx.sni_callback = on_sni
srv = Server((opt.addr, 0), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGALRM, on_signal)
signal.alarm(max(1, int(opt.lifetime)))
print("port %d" % srv.server_address[1], flush=True)
try:
    srv.serve_forever()
except SystemExit:
    pass
