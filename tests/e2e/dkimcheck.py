#!/usr/bin/env python3
"""Verify the DKIM signatures of a message with real verifiers, for the
DKIM tests.  Needs dkimpy (Debian python3-dkim; run it with a python3 that
imports dkim); opendkim-testmsg (opendkim-tools) is the optional second
verifier.

  dkimcheck.py verify --dns ADDR:PORT [--count N] [--alg ALG]...
          [--domain D] [--first] [--fail] [--opendkim PREFIX] FILE
      FILE: a message as smtpsink stores it (envelope lines, an empty
      line, the message) or a bare message.  Every DKIM-Signature field,
      in header order, is verified by dkimpy, whose key lookup (dnsfunc)
      is a DNS query for the TXT record to ADDR:PORT (the test DNS
      server), over UDP and then TCP when truncated.  With --opendkim,
      each signature is verified again by opendkim-testmsg, run as
      PREFIX opendkim-testmsg (PREFIX: the words that put it where the
      test DNS server answers its resolver, e.g. "nsenter -t PID -n";
      "-" for none), on the message with that one DKIM-Signature field
      (the others removed: the signatures do not sign one another), as
      opendkim-testmsg reports only one result per message.
      One line per signature: "sig N: a=ALG d=D s=S dkimpy=RESULT
      [opendkim=RESULT] [(why)]", RESULT pass, fail (the signature does
      not match the message) or error (it could not be checked: no key,
      a malformed field).  Exit 0 when every check holds:
        --count N   exactly N signatures (default: at least one; 0: none)
        --alg ALG   the signatures' a= values are these, in this order
                    (repeatable: --alg rsa-sha256 --alg ed25519-sha256)
        --domain D  every signature has d=D
        --first     the signatures are the first header fields, before
                    the first Received: field
        --fold N    no line of a signature field is longer than N octets
                    (CRLF not counted)
        --oversign  h= names each field mxrelay signs (From, To, Cc, Subject,
                    Date, Message-ID, Reply-To, MIME-Version, Content-Type,
                    List-Unsubscribe, List-Unsubscribe-Post) once more than
                    the message has fields of that name
                    fields (RFC 6376 8.15: an added From: breaks it; both
                    verifiers refuse a second From: anyway, so this is
                    checked on h= itself)
        --fail      every signature fails with every verifier (a changed
                    message; an error is no failure); without it, every
                    one must pass
        --not-pass  every signature fails or is refused (error) by every
                    verifier (opendkim-testmsg refuses a message with two
                    From: fields before it checks any signature)
      Exit 1 otherwise (the reason on stderr), 2 on usage errors.
  dkimcheck.py record SELECTOR DOMAIN KEYFILE
      The test DNS server's zone line for KEYFILE's public key (a PEM
      private key, RSA or Ed25519; read with the openssl command):
      SELECTOR._domainkey.DOMAIN TXT v=DKIM1;k=rsa;p=... in words of at
      most 255 octets (RFC 8463: an Ed25519 p= is the bare 32-octet key).
  dkimcheck.py seed KEYFILE
      An Ed25519 PEM private key in the form dkimsign takes (base64 of
      the 32-octet seed).
"""
import argparse
import base64
import random
import re
import shlex
import socket
import struct
import subprocess
import sys


OVERSIGNED = ["from", "to", "cc", "subject", "date", "message-id", "reply-to",
              "mime-version", "content-type", "list-unsubscribe",
              "list-unsubscribe-post"]

try:
    import dkim
except ImportError:
    dkim = None

TIMEOUT = 5


# --- DNS: one TXT query to the test server, stdlib only ---------------------

def dns_query(name):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode("ascii")
    return qid, q + b"\0" + struct.pack(">HH", 16, 1)


def dns_name_skip(buf, off):
    while True:
        n = buf[off]
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1
        if n == 0:
            return off
        off += n


def dns_txt(buf, qid):
    """The first TXT record of an answer (its strings joined), or None."""
    rid, flags, qd, an = struct.unpack(">HHHH", buf[:8])
    if rid != qid or flags & 0x000F != 0:
        return None
    off = 12
    for _ in range(qd):
        off = dns_name_skip(buf, off) + 4
    for _ in range(an):
        off = dns_name_skip(buf, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", buf[off:off + 10])
        off += 10
        rdata = buf[off:off + rdlen]
        off += rdlen
        if rtype != 16:
            continue
        out, i = b"", 0
        while i < len(rdata):
            out += rdata[i + 1:i + 1 + rdata[i]]
            i += 1 + rdata[i]
        return out
    return None


def dns_get_txt(server, name):
    host, port = server.rsplit(":", 1)
    qid, q = dns_query(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(TIMEOUT)
        s.sendto(q, (host, int(port)))
        buf = s.recv(65535)
    if struct.unpack(">H", buf[2:4])[0] & 0x0200:	# TC: again over TCP
        with socket.create_connection((host, int(port)), TIMEOUT) as s:
            s.sendall(struct.pack(">H", len(q)) + q)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                more = s.recv(65535)
                if not more:
                    break
                buf += more
            buf = buf[2:]
    return dns_txt(buf, qid)


# --- the message ------------------------------------------------------------

def read_message(path):
    data = open(path, "rb").read()
    if data.startswith(b"MAIL FROM:"):	# smtpsink's envelope lines
        data = data.split(b"\n\n", 1)[1]
    return data


def header_end(msg):
    """The length of the header section, up to its last field's newline."""
    m = re.search(b"\r?\n\r?\n", msg)
    return len(msg) if m is None else m.start() + m.group().index(b"\n") + 1


def header_fields(msg):
    """The header fields as [lower-case name, whole field with its folding]."""
    fields = []
    for line in re.findall(b"[^\n]*\n", msg[:header_end(msg)]):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += line
        else:
            fields.append([line.split(b":", 1)[0].strip().lower(), line])
    return fields


def tags(value):
    out = {}
    for part in re.sub(rb"\s+", b"", value).split(b";"):
        if b"=" in part:
            k, v = part.split(b"=", 1)
            out[k.decode()] = v.decode(errors="replace")
    return out


def without_other_sigs(msg, fields, keep):
    """msg with every DKIM-Signature field but the keep-th removed."""
    head_len = header_end(msg)
    sigs = [f for f in fields if f[0] == b"dkim-signature"]
    kept = [f[1] for f in fields if f[0] != b"dkim-signature" or f is sigs[keep]]
    return b"".join(kept) + msg[head_len:]


# --- the verifiers -----------------------------------------------------------

def dkimpy_verify(msg, idx, server):
    """("pass", ""), ("fail", why) when the signature does not match the
    message, ("error", why) when it could not be checked (no key, a
    malformed signature): a failure only counts as such."""
    def dnsfunc(name, timeout=TIMEOUT):
        return dns_get_txt(server, name.decode("ascii"))
    try:
        d = dkim.DKIM(msg, minkey=1024)
        return ("pass", "") if d.verify(idx=idx, dnsfunc=dnsfunc) else ("fail", "dkimpy: signature did not verify")
    except dkim.DKIMException as e:
        return ("fail" if str(e).startswith("body hash mismatch") else "error"), "dkimpy: %s" % e


def opendkim_verify(msg, prefix):
    """As dkimpy_verify, by opendkim-testmsg, which takes LF lines (CRLF
    ones are a syntax error to it) and says nothing on success."""
    cmd = ([] if prefix == "-" else shlex.split(prefix)) + ["opendkim-testmsg"]
    p = subprocess.run(cmd, input=msg.replace(b"\r\n", b"\n"), capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode(errors="replace").strip()
    if p.returncode == 0 and not out:
        return "pass", ""
    why = "opendkim: exit %d %s" % (p.returncode, out.replace("\n", " | "))
    return ("fail" if out.endswith("Bad signature") else "error"), why


def cmd_verify(a):
    if dkim is None:
        print("dkimcheck: dkimpy (import dkim) is missing", file=sys.stderr)
        return 2
    msg = read_message(a.file)
    fields = header_fields(msg)
    sigs = [tags(f[1].split(b":", 1)[1]) for f in fields if f[0] == b"dkim-signature"]
    bad = []
    for i, t in enumerate(sigs):
        line = "sig %d: a=%s d=%s s=%s" % (i + 1, t.get("a"), t.get("d"), t.get("s"))
        results = [("dkimpy",) + dkimpy_verify(msg, i, a.dns)]
        if a.opendkim:
            results.append(("opendkim",) + opendkim_verify(without_other_sigs(msg, fields, i), a.opendkim))
        for name, res, why in results:
            line += " %s=%s" % (name, res)
            if (res == "pass") if a.not_pass else res != ("fail" if a.fail else "pass"):
                bad.append("signature %d: %s says %s" % (i + 1, name, res))
        whys = [r[2] for r in results if r[2]]
        print(line + (" (%s)" % "; ".join(whys) if whys else ""))
    if a.count is not None and len(sigs) != a.count:
        bad.append("%d signatures, want %d" % (len(sigs), a.count))
    if a.count is None and not sigs:
        bad.append("no DKIM-Signature")
    if a.alg and [t.get("a") for t in sigs] != a.alg:
        bad.append("algorithms %s, want %s" % ([t.get("a") for t in sigs], a.alg))
    if a.domain:
        bad += ["signature %d: d=%s, want %s" % (i + 1, t.get("d"), a.domain)
                for i, t in enumerate(sigs) if t.get("d") != a.domain]
    if a.oversign:
        # Every name mxrelay signs is listed once more than the message
        # has fields of it: an added field of any of them, even one the
        # message lacked, breaks the signature.
        for i, t in enumerate(sigs):
            hs = [x.strip().lower() for x in t.get("h", "").split(":")]
            for name in OVERSIGNED:
                have = sum(1 for f in fields if f[0] == name.encode())
                if hs.count(name) != have + 1:
                    bad.append("signature %d: h= names %s %d times for %d %s: fields" % (i + 1, name, hs.count(name), have, name))
    if a.fold:
        for i, f in enumerate([f for f in fields if f[0] == b"dkim-signature"]):
            long = [len(l) for l in f[1].rstrip(b"\r\n").split(b"\n")
                    if len(l.rstrip(b"\r")) > a.fold]
            if long:
                bad.append("signature %d: lines of %s octets, want %d at most" % (i + 1, long, a.fold))
    if a.first:
        names = [f[0] for f in fields]
        if names[:len(sigs)] != [b"dkim-signature"] * len(sigs):
            bad.append("the signatures are not the first fields: %s" % [n.decode() for n in names[:len(sigs) + 1]])
        elif b"received" in names and names.index(b"received") < len(sigs):
            bad.append("a Received: before a signature")
    for b in bad:
        print("dkimcheck: %s: %s" % (a.file, b), file=sys.stderr)
    return 1 if bad else 0


# --- keys --------------------------------------------------------------------

def key_der(path, public):
    cmd = ["openssl", "pkey", "-in", path, "-outform", "DER"] + (["-pubout"] if public else [])
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def cmd_record(a):
    der = key_der(a.keyfile, True)
    text = subprocess.run(["openssl", "pkey", "-in", a.keyfile, "-noout", "-text"],
                          check=True, capture_output=True).stdout
    if text.startswith(b"ED25519"):
        k, p = "ed25519", base64.b64encode(der[-32:]).decode()
    else:
        k, p = "rsa", base64.b64encode(der).decode()
    rec = "v=DKIM1;k=%s;p=%s" % (k, p)
    words = [rec[i:i + 255] for i in range(0, len(rec), 255)]
    print("%s._domainkey.%s TXT %s" % (a.selector, a.domain, " ".join(words)))
    return 0


def cmd_seed(a):
    print(base64.b64encode(key_der(a.keyfile, False)[-32:]).decode())
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--dns", required=True)
    v.add_argument("--count", type=int)
    v.add_argument("--alg", action="append")
    v.add_argument("--domain")
    v.add_argument("--first", action="store_true")
    v.add_argument("--fold", type=int)
    v.add_argument("--oversign", action="store_true")
    v.add_argument("--fail", action="store_true")
    v.add_argument("--not-pass", action="store_true")
    v.add_argument("--opendkim")
    v.add_argument("file")
    r = sub.add_parser("record")
    r.add_argument("selector")
    r.add_argument("domain")
    r.add_argument("keyfile")
    s = sub.add_parser("seed")
    s.add_argument("keyfile")
    a = ap.parse_args()
    return {"verify": cmd_verify, "record": cmd_record, "seed": cmd_seed}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
