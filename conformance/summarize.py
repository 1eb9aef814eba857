#!/usr/bin/env python3
"""Summarises Autobahn fuzzingclient reports (index.json) as Markdown and
fails when a case is judged anything but OK, NON-STRICT or INFORMATIONAL.

Usage: summarize.py INDEX.json [--close-only INDEX.json ...]

--close-only judges the paths after it by their close behaviour alone: an
endpoint that is not an echo (a real `pytake serve` answers with Welcome
and Error frames) fails every case's message expectations by design, while
its closing handshake is what the run is for.
"""
import json
import sys
from collections import Counter, OrderedDict

PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
# In the compression cases, UNIMPLEMENTED means the server declined an
# offer, which RFC 7692 lets it do: 13.3.x and 13.5.x ask for
# server_max_window_bits=9, and miniz_oxide deflates with a 32 KiB window
# only, so the gateway answers without the extension and runs plain.
DECLINABLE = {"12": ("UNIMPLEMENTED",), "13": ("UNIMPLEMENTED",)}
CATEGORIES = OrderedDict([
    ("1", "Framing"), ("2", "Pings and pongs"), ("3", "Reserved bits"),
    ("4", "Opcodes"), ("5", "Fragmentation"), ("6", "UTF-8 handling"),
    ("7", "Close handling"), ("9", "Limits and performance"),
    ("10", "Miscellaneous"), ("12", "Compression"), ("13", "Compression"),
])
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "other")


def case_key(case):
    return [int(part) for part in case.split(".")]


def verdict(result, fields, passing):
    """The worst of the case's judged behaviours."""
    for field in fields:
        if result[field] not in passing:
            return result[field]
    for field in fields:
        if result[field] != "OK":
            return result[field]
    return "OK"


def main(args):
    failed = []
    fields = ("behavior", "behaviorClose")
    for path in args:
        if path == "--close-only":
            fields = ("behaviorClose",)
            continue
        with open(path) as f:
            index = json.load(f)
        for agent, results in sorted(index.items()):
            counts = OrderedDict()
            notes = []
            for case in sorted(results, key=case_key):
                category = case.split(".")[0]
                passing = PASSING + DECLINABLE.get(category, ())
                v = verdict(results[case], fields, passing)
                column = v if v in passing else "other"
                counts.setdefault(category, Counter())[column] += 1
                if v != "OK":
                    notes.append((case, v, results[case]))
                if v not in passing:
                    failed.append((agent, case, v))
            judged = "" if len(fields) == 2 else " (closing handshake judged)"
            print("### %s%s\n" % (agent, judged))
            print("| cases | " + " | ".join(COLUMNS) + " |")
            print("|---" * (len(COLUMNS) + 1) + "|")
            total = Counter()
            for category, c in counts.items():
                total.update(c)
                name = "%s.x %s" % (category, CATEGORIES.get(category, ""))
                print("| %s | %s |" % (name.strip(), " | ".join(str(c[k]) for k in COLUMNS)))
            print("| **all %d** | %s |\n" % (
                sum(total.values()), " | ".join("**%d**" % total[k] for k in COLUMNS)))
            for case, v, r in notes:
                print("- %s: %s (behavior %s, close %s, remote close code %s)" % (
                    case, v, r["behavior"], r["behaviorClose"], r.get("remoteCloseCode")))
            if notes:
                print("")
    if failed:
        for agent, case, v in failed:
            sys.stderr.write("autobahn: %s case %s: %s\n" % (agent, case, v))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
