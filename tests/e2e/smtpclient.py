#!/usr/bin/env python3
"""A real SMTP client for the listener tests (Python's smtplib and ssl).

  smtpclient.py send PORT --to ADDR [--from ADDR] [--subject S] [--body-size N]
      [--starttls --cafile F] [--auth USER:PASS] [--size-param N]
      [--upload FILE] [--mail-param P]...
      One message; prints every reply as "CMD CODE TEXT"; exit 0 when the
      message was queued, 1 when refused (the refusal is printed), 2 on
      connection errors.  --upload sends FILE's bytes as the message, as
      `curl --upload-file` does (an LF-only file stays LF-only).
      --mail-param adds P to MAIL FROM (BODY=8BITMIME).
  smtpclient.py burst PORT --count N --conns C --to-domain D --acked FILE
      N messages over C sequential connections (each message on its own
      transaction); after each 250 to DATA, "N ID" is appended to FILE
      (flushed), where N is the message number carried in its Subject.
      Stops quietly at the first connection error (the daemon was killed).
  smtpclient.py raw PORT FILE [--tls-after-starttls --cafile F]
      Send the bytes of FILE in one write (after the greeting), read
      replies until the server closes or is quiet for 2 s, print them.
      With --tls-after-starttls, FILE must hold "EHLO..STARTTLS..<more>"
      in one piece: after the 220 to STARTTLS the TLS handshake is made
      and "EHLO x\\r\\nRCPT TO:<a@b>\\r\\nQUIT\\r\\n" is sent over TLS, to
      show whether the bytes pipelined after STARTTLS were executed.
  smtpclient.py auth-clear PORT USER:PASS
      EHLO, then AUTH PLAIN in clear; prints the EHLO keywords and the
      AUTH reply.
All timeouts are 20 s or less: nothing here can hang a test.
"""
import argparse
import base64
import smtplib
import socket
import ssl
import sys

TIMEOUT = 20


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    return ctx


def message(subject, to, body_size):
    body = ("x" * 70 + "\r\n") * (body_size // 72 + 1) if body_size else "hello\r\n"
    return ("From: <app@client.test>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@client.test>\r\n\r\n%s" % (to, subject, subject, body))


def cmd_send(a):
    try:
        s = smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.test",
                         timeout=TIMEOUT)
    except OSError as e:
        print("connect error", e)
        return 2
    try:
        code, text = s.ehlo()
        print("EHLO", code, text.decode().replace("\n", " | "))
        if a.starttls:
            code, text = s.starttls(context=tls_context(a.cafile))
            print("STARTTLS", code, text.decode())
            code, text = s.ehlo()
            print("EHLO", code, text.decode().replace("\n", " | "))
        if a.auth:
            user, pw = a.auth.split(":", 1)
            try:
                code, text = s.login(user, pw)
                print("AUTH", code, text.decode())
            except smtplib.SMTPException as e:
                print("AUTH refused", e)
                return 1
        opts = ["SIZE=%d" % a.size_param] if a.size_param else []
        opts += a.mail_param
        code, text = s.mail(getattr(a, "from"), opts)
        print("MAIL", code, text.decode())
        if code != 250:
            return 1
        code, text = s.rcpt(a.to)
        print("RCPT", code, text.decode())
        if code not in (250, 251):
            return 1
        try:
            if a.upload:
                code, text = upload(s, a.upload)
            else:
                code, text = s.data(message(a.subject, a.to, a.body_size))
        except smtplib.SMTPDataError as e:
            print("DATA", e.smtp_code, e.smtp_error.decode())
            return 1
        print("DATA", code, text.decode())
        s.quit()
        return 0 if code == 250 else 1
    except (OSError, smtplib.SMTPException) as e:
        print("error", e)
        return 2


def upload(s, path):
    """DATA with FILE's bytes as curl sends them (smtplib's data() would
    turn bare LFs into CRLF): a dot is doubled only at the start and after
    CRLF, and CRLF "." CRLF ends it, after a CRLF of its own when the file
    does not end in one."""
    body = open(path, "rb").read()
    code, text = s.docmd("DATA")
    if code != 354:
        raise smtplib.SMTPDataError(code, text)
    wire = body.replace(b"\r\n.", b"\r\n..")
    if wire.startswith(b"."):
        wire = b"." + wire
    wire += b".\r\n" if wire.endswith(b"\r\n") or not wire else b"\r\n.\r\n"
    s.send(wire)
    return s.getreply()


def cmd_burst(a):
    n = 0
    out = open(a.acked, "a")
    per = (a.count + a.conns - 1) // a.conns
    for c in range(a.conns):
        try:
            s = smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.test",
                             timeout=TIMEOUT)
            s.ehlo()
            for _ in range(per):
                if n >= a.count:
                    break
                subject = "burst-%d" % n
                to = "r%d@%s" % (n, a.to_domain)
                code, _ = s.mail("app@client.test")
                if code != 250:
                    return 1
                code, _ = s.rcpt(to)
                if code != 250:
                    return 1
                code, text = s.data(message(subject, to, 0))
                if code == 250:
                    qid = text.decode().split()[-1]
                    out.write("%d %s\n" % (n, qid))
                    out.flush()
                n += 1
            s.quit()
        except (OSError, smtplib.SMTPException) as e:
            print("burst stopped after %d messages: %s" % (n, e))
            return 0
    print("burst done: %d messages" % n)
    return 0


def read_replies(sock, quiet=2.0):
    sock.settimeout(quiet)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def read_reply(sock):
    """One whole (possibly multi-line) reply."""
    sock.settimeout(TIMEOUT)
    data = b""
    while True:
        chunk = sock.recv(1)
        if not chunk:
            return data
        data += chunk
        if data.endswith(b"\r\n"):
            last = data.split(b"\r\n")[-2]
            if len(last) >= 4 and last[3:4] == b" ":
                return data


def cmd_raw(a):
    payload = open(a.file, "rb").read()
    sock = socket.create_connection(("127.0.0.1", a.port), timeout=TIMEOUT)
    sys.stdout.write(read_reply(sock).decode(errors="replace"))
    sock.sendall(payload)
    if not a.tls_after_starttls:
        sys.stdout.write(read_replies(sock).decode(errors="replace"))
        return 0
    # Replies up to and including the 220 to STARTTLS, nothing after it.
    got = b""
    while b"\r\n220 " not in b"\r\n" + got:
        r = read_reply(sock)
        if not r:
            break
        got += r
        if r.startswith(b"220"):
            break
    sys.stdout.write(got.decode(errors="replace"))
    tls = tls_context(a.cafile).wrap_socket(sock)
    print("-- TLS", tls.version())
    tls.sendall(b"EHLO x.test\r\nRCPT TO:<a@up.test>\r\nQUIT\r\n")
    sys.stdout.write(read_replies(tls).decode(errors="replace"))
    return 0


def cmd_auth_clear(a):
    sock = socket.create_connection(("127.0.0.1", a.port), timeout=TIMEOUT)
    read_reply(sock)
    sock.sendall(b"EHLO client.test\r\n")
    sys.stdout.write(read_reply(sock).decode())
    user, pw = a.cred.split(":", 1)
    tok = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode())
    sock.sendall(b"AUTH PLAIN " + tok + b"\r\n")
    sys.stdout.write(read_reply(sock).decode())
    sock.sendall(b"QUIT\r\n")
    read_replies(sock, 1.0)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("port", type=int)
    s.add_argument("--to", required=True)
    s.add_argument("--from", default="app@client.test")
    s.add_argument("--subject", default="test")
    s.add_argument("--body-size", type=int, default=0)
    s.add_argument("--starttls", action="store_true")
    s.add_argument("--cafile")
    s.add_argument("--auth")
    s.add_argument("--size-param", type=int, default=0)
    s.add_argument("--upload")
    s.add_argument("--mail-param", action="append", default=[])
    b = sub.add_parser("burst")
    b.add_argument("port", type=int)
    b.add_argument("--count", type=int, required=True)
    b.add_argument("--conns", type=int, default=4)
    b.add_argument("--to-domain", required=True)
    b.add_argument("--acked", required=True)
    r = sub.add_parser("raw")
    r.add_argument("port", type=int)
    r.add_argument("file")
    r.add_argument("--tls-after-starttls", action="store_true")
    r.add_argument("--cafile")
    c = sub.add_parser("auth-clear")
    c.add_argument("port", type=int)
    c.add_argument("cred")
    a = p.parse_args()
    return {"send": cmd_send, "burst": cmd_burst, "raw": cmd_raw,
            "auth-clear": cmd_auth_clear}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
