#!/usr/bin/env python3
"""Diff an Autobahn|Testsuite fuzzingclient report against expected results.

usage: autobahn-compare.py INDEX_JSON EXPECTED_JSON [--agent NAME] [--partial] [--update]

INDEX_JSON is reports/servers/index.json written by wstest:
    {agent: {case_id: {"behavior": ..., "behaviorClose": ..., ...}}}
EXPECTED_JSON maps each case id to the class the server is expected to reach:
    {"1.1.1": "OK", "6.4.1": "NON-STRICT", ...}

A case's class is its `behavior` (OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED),
except that a lax close (behaviorClose WRONG CODE or FAILED BY CLIENT, which
the Autobahn report colours yellow) lowers OK to NON-STRICT: otherwise a
server that stopped sending the right close code would not show up as a
regression. A case is FAILED when its behavior is FAILED (or unknown) or its
close is FAILED or UNCLEAN.

The run fails on any FAILED case, on any case whose class is worse than
expected (OK < NON-STRICT < INFORMATIONAL < UNIMPLEMENTED), on a case that has
no expectation, and, unless --partial (a run of a subset of the cases), on an
expected case that did not run. A class better than expected is reported as
an improvement to record with --update.

--update writes the run's classes into EXPECTED_JSON (after a --partial run,
keeping the expectations for cases that did not run) and is refused while any case is FAILED: the file
records what pawl reaches, and a failure is never what it should reach.

Exit: 0 pass, 1 failure or regression, 2 unreadable input.
"""

import argparse
import json
import os
import sys
from collections import Counter

# Ordered best first: a higher index is a worse result.
CLASSES = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"]
FAILED = "FAILED"
LAX_CLOSE = ("WRONG CODE", "FAILED BY CLIENT")
FAILED_CLOSE = ("FAILED", "UNCLEAN")


def case_key(case_id):
    return [int(p) for p in case_id.split(".")]


def classify(result):
    behavior, close = result.get("behavior"), result.get("behaviorClose")
    if behavior not in CLASSES or close in FAILED_CLOSE:
        return FAILED
    if behavior == "OK" and close in LAX_CLOSE:
        return "NON-STRICT"
    return behavior


def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("autobahn-compare: cannot read %s %s: %s" % (what, path, e))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("index")
    ap.add_argument("expected")
    ap.add_argument("--agent", default=None, help="agent in index.json (default: the only one)")
    ap.add_argument("--partial", action="store_true", help="only a subset of the cases ran")
    ap.add_argument("--update", action="store_true", help="write the results as the new expectations")
    args = ap.parse_args()

    index = load_json(args.index, "report")
    agent = args.agent if args.agent is not None else next(iter(index), None)
    results = index.get(agent) or {}
    if not results:
        print("autobahn-compare: %s has no results for agent %r" % (args.index, agent), file=sys.stderr)
        return 2
    if os.path.exists(args.expected):
        expected = load_json(args.expected, "expected results")
    elif args.update:
        expected = {}
    else:
        print("autobahn-compare: no %s; create it with scripts/autobahn --update-expected" % args.expected,
              file=sys.stderr)
        return 1
    bad = [c for c, v in expected.items() if v not in CLASSES]
    if bad:
        print("autobahn-compare: %s: unknown class for %s (allowed: %s)"
              % (args.expected, " ".join(sorted(bad, key=case_key)), " ".join(CLASSES)), file=sys.stderr)
        return 2

    actual = {c: classify(r) for c, r in results.items()}
    counts = Counter(actual.values())
    print("autobahn: %d cases: " % len(actual)
          + " / ".join("%s %d" % (k, counts[k]) for k in CLASSES + [FAILED]))

    failed, regressed, improved, unexpected = [], [], [], []
    for case in sorted(actual, key=case_key):
        got, want = actual[case], expected.get(case)
        if got == FAILED:
            failed.append(case)
        elif want is None:
            unexpected.append(case)
        elif CLASSES.index(got) > CLASSES.index(want):
            regressed.append(case)
        elif CLASSES.index(got) < CLASSES.index(want):
            improved.append(case)
    not_run = [] if args.partial else sorted(set(expected) - set(actual), key=case_key)

    report_dir = os.path.dirname(args.index)
    for case in failed:
        r = results[case]
        # The per-case report says why; index.json has only the verdicts.
        detail = ""
        try:
            with open(os.path.join(report_dir, r["reportfile"])) as f:
                full = json.load(f)
            detail = " (%s / %s)" % (full.get("result"), full.get("resultClose"))
        except (OSError, ValueError, KeyError):
            pass
        print("FAILED     %-8s behavior=%s close=%s%s" % (case, r.get("behavior"), r.get("behaviorClose"), detail))
    for case in regressed:
        r = results[case]
        print("REGRESSED  %-8s expected %s, got %s (behavior=%s close=%s)"
              % (case, expected[case], actual[case], r.get("behavior"), r.get("behaviorClose")))
    # When updating, new and improved cases are what gets written: listing
    # hundreds of them on a first run would hide the failures above.
    if not args.update:
        for case in unexpected:
            print("NEW        %-8s %s, not in %s" % (case, actual[case], args.expected))
        for case in not_run:
            print("NOT RUN    %-8s expected %s" % (case, expected[case]))
        for case in improved:
            print("IMPROVED   %-8s expected %s, got %s" % (case, expected[case], actual[case]))

    if args.update:
        if failed:
            print("autobahn-compare: not updating %s while %d case(s) fail" % (args.expected, len(failed)),
                  file=sys.stderr)
            return 1
        # A full run replaces the file, so cases the suite dropped go too.
        merged = dict(expected) if args.partial else {}
        merged.update(actual)
        with open(args.expected, "w") as f:
            json.dump({c: merged[c] for c in sorted(merged, key=case_key)}, f, indent=1)
            f.write("\n")
        print("autobahn-compare: wrote %d expectations to %s (%d new, %d improved, %d regressed)"
              % (len(merged), args.expected, len(unexpected), len(improved), len(regressed)))
        return 0

    if improved:
        print("%d case(s) better than expected: record with scripts/autobahn --update-expected" % len(improved))
    problems = [("failed", failed), ("regressed", regressed),
                ("without expectation", unexpected), ("expected but not run", not_run)]
    problems = ["%d %s" % (len(cases), name) for name, cases in problems if cases]
    if problems:
        print("autobahn: FAIL: " + ", ".join(problems), file=sys.stderr)
        return 1
    print("autobahn: pass (matches %s)" % args.expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
