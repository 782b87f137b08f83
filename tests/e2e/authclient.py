#!/usr/bin/env python3
"""Clients for t_auth.sh (Python's smtplib and ssl), each bound to a
source address on loopback so that the listener sees several clients.

  authclient.py tries PORT --source ADDR --cafile F --cred USER:PASS ...
      For each --cred in turn, a new connection: EHLO, STARTTLS, EHLO,
      AUTH PLAIN.  Prints "try N CODE SECONDS TEXT" per try, SECONDS
      being the wait for the AUTH reply.
  authclient.py probe PORT --source ADDR --seconds S --to RCPT
      One connection: EHLO, then NOOP round trips for S seconds (one
      every 50 ms), then one message to RCPT.  Prints "noop n=N min=MS
      median=MS max=MS" and "DATA CODE TEXT"; exit 0 when the message
      was queued.
All socket timeouts are 30 s: nothing here can hang a test.
"""
import argparse
import base64
import smtplib
import ssl
import sys
import time

TIMEOUT = 30


def connect(port, source):
    return smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                        timeout=TIMEOUT, source_address=(source, 0))


def cmd_tries(a):
    ctx = ssl.create_default_context(cafile=a.cafile)
    ctx.check_hostname = False
    for n, cred in enumerate(a.cred, 1):
        user, pw = cred.split(":", 1)
        tok = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode())
        try:
            s = connect(a.port, a.source)
            s.ehlo()
            s.starttls(context=ctx)
            s.ehlo()
            t0 = time.monotonic()
            code, text = s.docmd("AUTH", "PLAIN " + tok.decode())
            dt = time.monotonic() - t0
            print("try %d %d %.2f %s" % (n, code, dt, text.decode()),
                  flush=True)
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass
        except (OSError, smtplib.SMTPException) as e:
            print("try %d error %s" % (n, e), flush=True)
            return 2
    return 0


def cmd_probe(a):
    s = connect(a.port, a.source)
    s.ehlo()
    rtts = []
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        code, _ = s.noop()
        rtts.append((time.monotonic() - t0) * 1000)
        if code != 250:
            print("NOOP", code)
            return 1
        time.sleep(0.05)
    rtts.sort()
    print("noop n=%d min=%.1f median=%.1f max=%.1f" % (
        len(rtts), rtts[0], rtts[len(rtts) // 2], rtts[-1]), flush=True)
    msg = ("From: <app@client.test>\r\nTo: <%s>\r\nSubject: during\r\n\r\n"
           "sent while AUTH was under attack\r\n" % a.to)
    code, _ = s.mail("app@client.test")
    if code == 250:
        code, _ = s.rcpt(a.to)
    if code == 250:
        code, text = s.data(msg)
        print("DATA", code, text.decode())
    else:
        print("refused", code)
    s.quit()
    return 0 if code == 250 else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tries")
    t.add_argument("port", type=int)
    t.add_argument("--source", required=True)
    t.add_argument("--cafile", required=True)
    t.add_argument("--cred", action="append", required=True)
    r = sub.add_parser("probe")
    r.add_argument("port", type=int)
    r.add_argument("--source", required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--to", required=True)
    a = p.parse_args()
    return {"tries": cmd_tries, "probe": cmd_probe}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
