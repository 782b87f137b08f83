#!/usr/bin/env python3
"""Hostile and ordinary SMTP clients for the listener's limits (t_abuse.sh).

Every client binds its own loopback source address (--src), so that one
test can play an outsider (say 127.0.0.2) and a relay client (127.0.0.1)
against the same listener.  Every wait is bounded (--max seconds, 60 at
most by default): nothing here can hang a test.

  abuse.py hold PORT --src A --count N --stop FILE [--max S]
      Open N connections, print "greet I CODE TEXT" for each greeting (or
      "greet I eof"), then watch them until FILE exists: print "closed I
      CODE TEXT" for a line the server sends before it closes, and "eof I"
      when it closes.  Ends with "held K" (connections still open).
  abuse.py send PORT --src A --to RCPT
      One message with smtplib: prints "CMD CODE TEXT"; exit 0 when queued.
  abuse.py junk PORT --src A --cmd LINE[,LINE...] --count N
          [--mail-every K --to R]
      Send N command lines (e.g. NOOP), one at a time, each after the reply
      to the last, taking the LINEs in turn; with --mail-every K, a whole
      message after every K of them.
      Prints "replies N" (replies to LINE), "queued M" and the last line
      the server sent, as "last CODE TEXT" (or "last eof").
  abuse.py trickle PORT --src A --interval S [--max S] [--data --to R]
      After the greeting, send "NOOP\\r\\n" one byte every S seconds, for
      ever (--data: EHLO, MAIL, RCPT and DATA first, then trickle a body).
      Prints "end SECONDS CODE TEXT" when the server sends a line that is
      not a reply to a finished NOOP (or "end SECONDS eof"), or "end
      SECONDS still-open" after --max.
  abuse.py idle PORT --src A [--max S] [--starttls] [--ehlo] [--mail]
      Connect (with --ehlo say EHLO; with --mail EHLO and MAIL FROM:<>;
      with --starttls EHLO and STARTTLS, and then never start the
      handshake), then wait in silence.  Prints
      "end SECONDS CODE TEXT" or "end SECONDS eof" when the server speaks
      or closes, or "end SECONDS still-open" after --max.
"""
import argparse
import os
import select
import smtplib
import socket
import sys
import time

TIMEOUT = 20


def connect(port, src):
    s = socket.create_connection(("127.0.0.99", port), timeout=TIMEOUT,
                                 source_address=(src, 0))
    return s


class Lines:
    """Lines from a socket, with a deadline per read."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(4096)
            except socket.timeout:
                return None
            except OSError:
                d = b""
            if not d:
                self.eof = True
                if not self.buf:
                    return None
                break
            self.buf += d
        if b"\n" in self.buf:
            ln, self.buf = self.buf.split(b"\n", 1)
        else:
            ln, self.buf = self.buf, b""
        return ln.rstrip(b"\r").decode("ascii", "replace")

    def reply(self, timeout=TIMEOUT):
        """A whole (multiline) reply: its last line, or None."""
        while True:
            ln = self.line(timeout)
            if ln is None or len(ln) < 4 or ln[3] != "-":
                return ln


def show(ln):
    return "eof" if ln is None else ln


def cmd_hold(a):
    conns = []
    for i in range(a.count):
        try:
            s = connect(a.port, a.src)
        except OSError as e:
            print("greet", i, "connect-error", e, flush=True)
            continue
        lr = Lines(s)
        print("greet", i, show(lr.reply()), flush=True)
        if lr.eof:
            s.close()
            continue
        conns.append((i, s, lr))
    end = time.monotonic() + a.max
    while conns and not os.path.exists(a.stop) and time.monotonic() < end:
        r, _, _ = select.select([c[1] for c in conns], [], [], 0.1)
        for i, s, lr in list(conns):
            if s not in r:
                continue
            ln = lr.line(1)
            if ln is not None:
                print("closed", i, ln, flush=True)
                if not lr.eof:
                    continue
            print("eof", i, flush=True)
            s.close()
            conns.remove((i, s, lr))
    print("held", len(conns), flush=True)
    for _, s, _ in conns:
        s.close()
    return 0


def message(to):
    return ("From: <app@client.test>\r\nTo: <%s>\r\nSubject: abuse test\r\n"
            "\r\nhello\r\n" % to)


def cmd_send(a):
    try:
        s = smtplib.SMTP("127.0.0.99", a.port, local_hostname="client.test",
                         timeout=TIMEOUT, source_address=(a.src, 0))
    except (OSError, smtplib.SMTPException) as e:
        print("connect error", e)
        return 2
    try:
        code, text = s.ehlo()
        print("EHLO", code)
        code, text = s.mail("app@client.test")
        print("MAIL", code, text.decode())
        code, text = s.rcpt(a.to)
        print("RCPT", code, text.decode())
        if code != 250:
            return 1
        code, text = s.data(message(a.to))
        print("DATA", code, text.decode())
        s.quit()
        return 0 if code == 250 else 1
    except (OSError, smtplib.SMTPException) as e:
        print("error", e)
        return 2


def transaction(s, lr, to):
    for line in ("MAIL FROM:<app@client.test>", "RCPT TO:<%s>" % to, "DATA"):
        s.sendall(line.encode() + b"\r\n")
        ln = lr.reply()
        if ln is None or ln[0] not in "23":
            return ln, False
    s.sendall(message(to).encode() + b".\r\n")
    ln = lr.reply()
    return ln, ln is not None and ln.startswith("250")


def cmd_junk(a):
    s = connect(a.port, a.src)
    lr = Lines(s)
    last = lr.reply()
    s.sendall(b"EHLO client.test\r\n")
    last = lr.reply()
    replies = queued = 0
    cmds = a.cmd.split(",")
    end = time.monotonic() + a.max
    for n in range(a.count):
        if time.monotonic() > end:
            break
        s.sendall(cmds[n % len(cmds)].encode() + b"\r\n")
        last = lr.reply()
        if last is None or last.startswith("421"):
            break
        replies += 1
        if a.mail_every and (n + 1) % a.mail_every == 0:
            last, ok = transaction(s, lr, a.to)
            if not ok:
                break
            queued += 1
    else:
        s.sendall(b"QUIT\r\n")
        last = lr.reply(5)
    print("replies", replies)
    print("queued", queued)
    print("last", show(last))
    s.close()
    return 0


def cmd_trickle(a):
    s = connect(a.port, a.src)
    lr = Lines(s)
    start = time.monotonic()
    lr.reply()
    if a.data:
        s.sendall(b"EHLO client.test\r\n")
        lr.reply()
        ln, ok = None, True
        for line in ("MAIL FROM:<app@client.test>", "RCPT TO:<%s>" % a.to,
                     "DATA"):
            s.sendall(line.encode() + b"\r\n")
            ln = lr.reply()
            if ln is None or ln[0] not in "23":
                print("end", "%.1f" % (time.monotonic() - start), show(ln))
                return 1
        payload = b"Subject: trickle\r\n\r\n" + b"x" * 100000
    else:
        payload = b"NOOP\r\n" * 100000
    pos = 0
    while time.monotonic() - start < a.max:
        try:
            s.sendall(payload[pos:pos + 1])
        except OSError:
            break
        pos += 1
        r, _, _ = select.select([s], [], [], a.interval)
        if not r:
            continue
        ln = lr.line(1)
        if ln is not None and ln.startswith("250") and not a.data:
            continue
        print("end", "%.1f" % (time.monotonic() - start), show(ln))
        return 0
    print("end", "%.1f" % (time.monotonic() - start),
          "eof" if lr.eof else "still-open")
    return 0


def cmd_idle(a):
    s = connect(a.port, a.src)
    lr = Lines(s)
    lr.reply()
    if a.ehlo or a.starttls or a.mail:
        s.sendall(b"EHLO client.test\r\n")
        lr.reply()
    if a.mail:
        s.sendall(b"MAIL FROM:<>\r\n")
        print("mail", show(lr.reply()))
    if a.starttls:
        s.sendall(b"STARTTLS\r\n")
        print("starttls", show(lr.reply()))
    start = time.monotonic()
    ln = lr.line(a.max)
    el = time.monotonic() - start
    if ln is None and not lr.eof:
        print("end", "%.1f" % el, "still-open")
    else:
        print("end", "%.1f" % el, show(ln))
    s.close()
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="sub", required=True)
    for name in ("hold", "send", "junk", "trickle", "idle"):
        p = sub.add_parser(name)
        p.add_argument("port", type=int)
        p.add_argument("--src", required=True)
        p.add_argument("--max", type=float, default=60)
        p.add_argument("--to", default="rcpt@dest.test")
        if name == "hold":
            p.add_argument("--count", type=int, required=True)
            p.add_argument("--stop", required=True)
        if name == "junk":
            p.add_argument("--cmd", required=True)
            p.add_argument("--count", type=int, required=True)
            p.add_argument("--mail-every", type=int, default=0)
        if name == "trickle":
            p.add_argument("--interval", type=float, default=0.5)
            p.add_argument("--data", action="store_true")
        if name == "idle":
            p.add_argument("--starttls", action="store_true")
            p.add_argument("--ehlo", action="store_true")
            p.add_argument("--mail", action="store_true")
    a = ap.parse_args()
    a.max = min(a.max, 60)
    return {"hold": cmd_hold, "send": cmd_send, "junk": cmd_junk,
            "trickle": cmd_trickle, "idle": cmd_idle}[a.sub](a)


if __name__ == "__main__":
    sys.exit(main())
