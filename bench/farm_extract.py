#!/usr/bin/env python3
"""Single-page extraction quality on feed-farm pages (no learned boilerplate).

    farm_extract.py GLEANER_BIN SITE_DIR [N]

Extracts N pages (default 1000, a fixed sample) with `gleaner extract --out-dir`
and scores each body against truth.json with the farm scorer's bag-of-words
F1 and boilerplate list, per layout. A development set that is not the
extraction benchmark.
"""
import json, os, random, re, subprocess, sys, tempfile
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench", "feedfarm"))
WORD = re.compile(r"\w+", re.UNICODE)
BOILERPLATE = ["Download our app", "Available for Android and iOS", "Google Play", "Accept all",
               "cookies", "Share this", "READ MORE", "ADVERTISEMENT", "Related stories", "You may also like",
               "Sign up", "All rights reserved", "thoughts on", "Top stories", "More from The"]


def prf(got, want):
    g, w = Counter(WORD.findall(got.lower())), Counter(WORD.findall(want.lower()))
    hit = sum((g & w).values())
    p, r = hit / max(1, sum(g.values())), hit / max(1, sum(w.values()))
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main():
    binary, site = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    truth = json.load(open(os.path.join(site, "truth.json"), encoding="utf-8"))["articles"]
    urls = sorted(truth)
    random.Random(7).shuffle(urls)
    urls = urls[:n]
    with tempfile.TemporaryDirectory() as out:
        inputs = {}
        for u in urls:
            path = os.path.join(site, u.split("/", 3)[3])
            inputs[os.path.basename(path)[:-5]] = (u, path)
        subprocess.run([binary, "extract", "--out-dir", out] + [p for _, p in inputs.values()], check=True,
                       stderr=subprocess.DEVNULL)
        by = {}
        for stem, (u, _) in inputs.items():
            got = open(os.path.join(out, stem + ".txt"), encoding="utf-8").read()
            p, r, f = prf(got, truth[u]["body"])
            leak = any(b in got for b in BOILERPLATE)
            t = by.setdefault(truth[u]["template"], [0, 0.0, 0])
            t[0] += 1; t[1] += f; t[2] += leak
    total = sum(v[0] for v in by.values())
    print(f"pages {total}  F1 {sum(v[1] for v in by.values()) / total:.4f}  leak {sum(v[2] for v in by.values()) / total:.3f}")
    for k, (c, f, l) in sorted(by.items()):
        print(f"  {k:12} n={c:4}  F1 {f / c:.4f}  leak {l / c:.3f}")


if __name__ == "__main__":
    main()
