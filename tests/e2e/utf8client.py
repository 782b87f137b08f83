#!/usr/bin/env python3
"""An SMTP client for the SMTPUTF8 and missing-header tests (smtplib).

  utf8client.py send PORT FROM TO FILE [--smtputf8]
      EHLO, prints "features: KEYWORDS", then sends FILE's bytes as the
      message with smtplib's sendmail (MAIL ... SMTPUTF8 with --smtputf8:
      smtplib refuses that when the server does not offer SMTPUTF8).
      Prints "sent" and exits 0 when queued, prints the refusal and
      exits 1 when refused, 2 on connection errors.
  utf8client.py raw PORT LINE...
      EHLO, then each LINE as one command (its bytes as given, so that
      malformed UTF-8 can be sent); prints "CODE TEXT" per reply.
All timeouts are 20 s.
"""
import os
import smtplib
import sys


def connect(port):
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
    s.ehlo("client.test")
    return s


def cmd_send(args):
    port, frm, to, path = args[:4]
    opts = ["SMTPUTF8"] if "--smtputf8" in args[4:] else []
    with open(path, "rb") as f:
        msg = f.read()
    try:
        s = connect(port)
    except OSError as e:
        print("connect error:", e)
        return 2
    print("features:", " ".join(sorted(k.upper() for k in s.esmtp_features)))
    try:
        s.sendmail(frm, [to], msg, mail_options=opts)
    except smtplib.SMTPRecipientsRefused as e:
        for _, (code, text) in e.recipients.items():
            print("refused", code, text.decode("utf-8", "replace"))
        return 1
    except smtplib.SMTPResponseException as e:
        print("refused", e.smtp_code, e.smtp_error.decode("utf-8", "replace"))
        return 1
    except smtplib.SMTPNotSupportedError as e:
        print("not supported:", e)
        return 1
    print("sent")
    s.quit()
    return 0


def cmd_raw(args):
    s = connect(args[0])
    for line in args[1:]:
        s.sock.sendall(os.fsencode(line) + b"\r\n")
        code, text = s.getreply()
        print(code, text.decode("utf-8", "replace"))
    s.quit()
    return 0


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "send" and len(sys.argv) >= 6:
        return cmd_send(sys.argv[2:])
    if sys.argv[1] == "raw":
        return cmd_raw(sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
