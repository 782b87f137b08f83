"""Checks for t_json.sh: JSON delivery records, parsed with Python's json
module and held field by field to the text form.

    jsoncheck.py log TEXTLOG JSONLOG
        Every delivery record of JSONLOG is one JSON object with the fields
        of the text record of the same recipient and outcome in TEXTLOG
        (two runs of the same mix: queue ids differ, each message is known
        by the set of its recipients).  JSONLOG has no text record left.
    jsoncheck.py records LOG MIN
        LOG has at least MIN JSON delivery records and no text record;
        prints each as "status to".
"""
import json
import re
import sys

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


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "log":
        cmd_log(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "records":
        cmd_records(sys.argv[2], sys.argv[3])
    else:
        fail("usage: see the top of the file")


if __name__ == "__main__":
    main()
