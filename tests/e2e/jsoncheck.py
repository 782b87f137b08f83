"""Checks for t_json.sh: JSON delivery records and the JSON queue listing,
parsed with Python's json module and held field by field to the text form.

    jsoncheck.py log TEXTLOG JSONLOG
        Every delivery record of JSONLOG is one JSON object with the fields
        of the text record of the same recipient and outcome in TEXTLOG
        (two runs of the same mix: queue ids differ, each message is known
        by the set of its recipients).  JSONLOG has no text record left.
    jsoncheck.py records LOG MIN
        LOG has at least MIN JSON delivery records and no text record;
        prints each as "status to".
    jsoncheck.py queue TEXT JSON SPOOL
        mailq --json (JSON) against mailq (TEXT) and the envelopes in
        SPOOL (msg/ID.env, else the one inside msg/ID, else env/ID of the
        version 1 layout): one object per message, every field.
"""
import json
import os
import re
import sys
import time

# The text records (mxrelay(8), Log lines), after the program's "name: ".
DELIVERY = re.compile(
    r"^(?P<id>[0-9a-f]{20}): to=<(?P<to>[^>]*)>, relay=(?P<relay>\S+), "
    r"tls=(?P<tls>\S+), delay=(?P<delay>\d+)s, dsn=(?P<dsn>\S*), "
    r"status=(?P<status>sent|deferred|bounced) \((?P<reply>.*)\)$")
EXPIRED = re.compile(
    r"^(?P<id>[0-9a-f]{20}): to=<(?P<to>[^>]*)>, status=(?P<status>expired) "
    r"\((?P<reason>.*)\)$")
NOTIFY = re.compile(
    r"^(?P<id>[0-9a-f]{20}|-): (?P<event>sender non-delivery notification): "
    r"(?P<notification>[0-9a-f]{20}) \((?P<recipients>\d+) recipients?\)$")
KEYS = {
    "sent": ["id", "to", "relay", "tls", "delay", "dsn", "status", "reply"],
    "expired": ["id", "to", "status", "reason"],
    "notification": ["id", "event", "notification", "recipients"],
}
NUMBERS = ("delay", "recipients")


def fail(msg):
    sys.exit("jsoncheck: " + msg)


def escape(s):
    """util_escape(): what the text form shows of a string."""
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        if 0x20 <= b < 0x7F and b != 0x5C:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def strip_prefix(line):
    """The log line without "mxrelay: " or "mxrelayd: "."""
    m = re.match(r"^(mxrelay|mxrelayd): (.*)$", line)
    return m.group(2) if m else None


def text_records(path):
    recs = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            body = strip_prefix(line.rstrip("\n"))
            if body is None:
                continue
            for rx in (DELIVERY, EXPIRED, NOTIFY):
                m = rx.match(body)
                if m:
                    r = m.groupdict()
                    for k in NUMBERS:
                        if k in r:
                            r[k] = int(r[k])
                    recs.append(r)
                    break
            else:
                if "to=<" in body or "(1 recipient" in body or \
                        " recipients)" in body:
                    fail("%s: a record line that is not understood: %r" %
                         (path, body))
    return recs


def json_records(path):
    recs = []
    with open(path, encoding="utf-8", errors="strict") as f:
        for line in f:
            body = strip_prefix(line.rstrip("\n"))
            if body is None:
                continue
            if body.startswith("{"):
                try:
                    r = json.loads(body)
                except ValueError as e:
                    fail("%s: not JSON (%s): %r" % (path, e, body))
                if not isinstance(r, dict):
                    fail("%s: not an object: %r" % (path, body))
                recs.append((r, body))
            elif DELIVERY.match(body) or EXPIRED.match(body) or \
                    NOTIFY.match(body):
                fail("%s: a text record with log_format = json: %r" %
                     (path, body))
    return recs


def kind(r):
    if "event" in r:
        return "notification"
    return "expired" if r.get("status") == "expired" else "sent"


def check_shape(r, body):
    """Keys in the documented order, numbers as numbers, strings else."""
    want = KEYS[kind(r)]
    if list(r.keys()) != want:
        fail("keys %s, want %s: %r" % (list(r.keys()), want, body))
    for k, v in r.items():
        if k in NUMBERS:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                fail("%s is not a count: %r" % (k, body))
        elif not isinstance(v, str):
            fail("%s is not a string: %r" % (k, body))


def canonical(recs):
    """Records with each queue id replaced by its message's recipients."""
    rcpts = {}
    for r in recs:
        if "to" in r:
            rcpts.setdefault(r["id"], set()).add(r["to"])
    out = []
    for r in recs:
        c = dict(r)
        if c["id"] not in rcpts:
            fail("a record of a message without recipient records: %r" % r)
        c["id"] = ",".join(sorted(rcpts[c["id"]]))
        c.pop("delay", None)  # seconds since arrival: may differ by a run
        if "notification" in c:
            c["notification"] = "DSN"  # a new queue id in each run
        if "reply" in c:
            # smtpsink's "queued as CONNECTION.MESSAGE": counts of its run
            c["reply"] = re.sub(r"queued as \d+\.\d+", "queued as N.N",
                                c["reply"])
        out.append(c)
    return sorted(out, key=lambda c: json.dumps(c, sort_keys=True))


def cmd_log(textlog, jsonlog):
    text = text_records(textlog)
    pairs = json_records(jsonlog)
    for r, body in pairs:
        check_shape(r, body)
    js = [r for r, _ in pairs]
    if not text:
        fail("%s: no text records" % textlog)
    # The reply is escaped in text and as it was in JSON.
    for r in js:
        if "reply" in r and not re.fullmatch(r"[0-9a-f]{20}", r["id"]):
            fail("not a queue id: %r" % r)
    jt = []
    for r in js:
        c = dict(r)
        if "reply" in c:
            c["reply"] = escape(c["reply"])
        jt.append(c)
    a, b = canonical(text), canonical(jt)
    if a != b:
        fail("text and JSON records differ:\n only text %s\n only JSON %s" %
             (json.dumps([r for r in a if r not in b], indent=1),
              json.dumps([r for r in b if r not in a], indent=1)))
    for r in text:
        if "delay" in r:
            m = [j for j in js if j.get("to") == r["to"] and
                 j.get("status") == r["status"]]
            if any(abs(j["delay"] - r["delay"]) > 60 for j in m):
                fail("delay far from the text run's: %r" % r)
    print("%d records alike in text and JSON" % len(text))


def cmd_records(log, minimum):
    pairs = json_records(log)
    for r, body in pairs:
        check_shape(r, body)
        print("%s %s" % (r.get("status", "notification"), r.get("to", "")))
    if len(pairs) < int(minimum):
        fail("%s: %d JSON records, want at least %s" %
             (log, len(pairs), minimum))


# The queue listing.

def unescape_env(s):
    """An envelope <str>: None for "-", else "=" and %XX-escaped bytes."""
    if s == "-":
        return None
    if not s.startswith("="):
        fail("envelope string %r" % s)
    b = re.sub(rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
               s[1:].encode("ascii"))
    return b.decode("utf-8", "surrogateescape")


QUEUE_ID = re.compile(r"^[0-9a-f]{20}$")
# The trailer that ends a message file msg/ID (queue/spool.c).
TRAILER = re.compile(rb"^mxrelay-msg 1 ([0-9]{20}) ([0-9]{20}) *\n$")
TRAILER_LEN = 64


def spool_ids(spool):
    """The ids of the messages in SPOOL: msg/ID, and env/ID (version 1)."""
    ids = set()
    for d in ("msg", "env"):
        path = os.path.join(spool, d)
        if os.path.isdir(path):
            ids.update(n for n in os.listdir(path) if QUEUE_ID.match(n))
    return sorted(ids)


def envelope_text(spool, qid):
    """The envelope of message qid as it stands: msg/ID.env (an update),
    else the one inside msg/ID (through its trailer, which must match the
    file's size), else env/ID (version 1 layout)."""
    msg = os.path.join(spool, "msg", qid)
    if not os.path.exists(msg):
        path = os.path.join(spool, "env", qid)
        if not os.path.exists(path):
            fail("%s: no message in %s" % (qid, spool))
        with open(path, "rb") as f:
            return f.read().decode("ascii")
    if os.path.exists(msg + ".env"):
        with open(msg + ".env", "rb") as f:
            return f.read().decode("ascii")
    with open(msg, "rb") as f:
        data = f.read()
    m = TRAILER.match(data[-TRAILER_LEN:])
    if len(data) < TRAILER_LEN or not m:
        fail("msg/%s: no valid trailer: %r" % (qid, data[-TRAILER_LEN:]))
    blen, elen = int(m.group(1)), int(m.group(2))
    if blen + elen + TRAILER_LEN != len(data):
        fail("msg/%s: trailer says %d + %d bytes, the file has %d" %
             (qid, blen, elen, len(data)))
    return data[blen:blen + elen].decode("ascii")


def read_envelope(spool, qid):
    env = {"rcpts": [], "flags": []}
    for line in envelope_text(spool, qid).splitlines(True):
        w = line.rstrip("\n").split(" ")
        if w[0] in ("id",):
            env["id"] = w[1]
        elif w[0] == "sender":
            env["sender"] = unescape_env(w[1])
        elif w[0] in ("arrival", "size"):
            env[w[0]] = int(w[1])
        elif w[0] == "flags":
            env["flags"] = w[1:]
        elif w[0] == "rcpt":
            env["rcpts"].append({
                "address": unescape_env(w[1]),
                "original": unescape_env(w[2]),
                "state": w[3],
                "attempts": int(w[4]),
                "next_attempt": int(w[5]) if w[3] == "pending" else None,
                "last_attempt": int(w[6]) or None,
                "last_reply": unescape_env(w[7]),
                "status": unescape_env(w[8]),
                "remote_mta": unescape_env(w[9]),
            })
    return env


def text_listing(path):
    """mailq's text: {id: {size, when, sender, rcpts: [(addr, rest, reply)]}}"""
    msgs, cur = {}, None
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\n")
            # A held message has "!" after its id.
            m = re.match(r"^([0-9a-f]{20})(!?) +(\d+) (.{20})  (.*)$", line)
            if m:
                cur = {"held": m.group(2) == "!", "size": int(m.group(3)),
                       "when": m.group(4).rstrip(),
                       "sender": m.group(5), "rcpts": []}
                msgs[m.group(1)] = cur
            elif line.startswith(" " * 56) and cur and cur["rcpts"]:
                a, r, _ = cur["rcpts"][-1]
                cur["rcpts"][-1] = (a, r, line[56:])
            elif line.startswith(" " * 52) and cur is not None:
                m = re.match(r"^(.*) \((.*)\)$", line[52:])
                cur["rcpts"].append((m.group(1), m.group(2), None))
    return msgs


def cmd_queue(textpath, jsonpath, spool):
    text = text_listing(textpath)
    objs = []
    with open(jsonpath, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                objs.append(json.loads(line))
            except ValueError as e:
                fail("%s:%d: not JSON (%s): %r" % (jsonpath, n, e, line))
    top = ["queue_id", "arrival_time", "message_size", "sender", "held",
           "recipients"]
    rkeys = ["address", "original", "state", "attempts", "next_attempt",
             "last_attempt", "last_reply", "status", "remote_mta"]
    ids = spool_ids(spool)
    if sorted(o["queue_id"] for o in objs) != ids:
        fail("JSON ids %s, spool %s" % ([o["queue_id"] for o in objs], ids))
    if sorted(text) != ids:
        fail("text ids %s, spool %s" % (sorted(text), ids))
    nrcpt = 0
    for o in objs:
        if list(o.keys()) != top:
            fail("keys %s: %r" % (list(o.keys()), o))
        qid = o["queue_id"]
        env = read_envelope(spool, qid)
        t = text[qid]
        # Against the envelope, every field.
        if (o["arrival_time"], o["message_size"], o["sender"]) != \
                (env["arrival"], env["size"], env["sender"]):
            fail("%s: header fields %r, envelope %r" % (qid, o, env))
        if o["held"] is not ("hold" in env["flags"]):
            fail("%s: held %r, flags %r" % (qid, o["held"], env["flags"]))
        got = o["recipients"]
        for r in got:
            if list(r.keys()) != rkeys:
                fail("recipient keys %s" % list(r.keys()))
        if got != env["rcpts"]:
            fail("%s: recipients\n %r\nenvelope\n %r" %
                 (qid, got, env["rcpts"]))
        # Against the text listing.
        when = time.strftime("%a %b %e %H:%M:%S",
                             time.localtime(o["arrival_time"]))
        if t["held"] is not o["held"]:
            fail("%s: held in text %r, JSON %r" % (qid, t["held"], o["held"]))
        if t["size"] != o["message_size"] or t["when"] != when or \
                t["sender"] != (escape(o["sender"]) or "<>"):
            fail("%s: text %r, JSON %r" % (qid, t, o))
        if len(t["rcpts"]) != len(got):
            fail("%s: %d recipients in text" % (qid, len(t["rcpts"])))
        for (addr, rest, reply), r in zip(t["rcpts"], got):
            # mailq shows a held message's pending recipients as held,
            # without a next try.
            held = o["held"] and r["state"] == "pending"
            want = "%s, %d attempt%s" % ("held" if held else r["state"],
                                         r["attempts"],
                                         "" if r["attempts"] == 1 else "s")
            if r["next_attempt"] and not o["held"]:
                want += time.strftime(", next try %b %e %H:%M:%S",
                                      time.localtime(r["next_attempt"]))
            if addr != escape(r["address"]) or rest != want:
                fail("%s: text %r (%s), JSON %r" % (qid, addr, rest, r))
            if reply != (None if r["last_reply"] is None
                         else escape(r["last_reply"])):
                fail("%s: text reply %r, JSON %r" % (qid, reply, r))
            nrcpt += 1
    print("%d messages, %d recipients alike in JSON, text and spool" %
          (len(objs), nrcpt))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "log":
        cmd_log(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "records":
        cmd_records(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "queue":
        cmd_queue(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        fail("usage: see the top of the file")


if __name__ == "__main__":
    main()
