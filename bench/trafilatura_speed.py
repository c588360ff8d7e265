#!/usr/bin/env python3
"""Extraction speed of trafilatura on DIR/html/*.html.gz (same protocol as benches/extract.rs).

Usage: python3 bench/trafilatura_speed.py [DIR]   (default ../shared/bench/extraction)

Pages are decompressed and decoded in memory first; one untimed warm-up call,
then all pages are extracted in this process, 3 runs; the median is printed.
"""
import gzip
import pathlib
import statistics
import sys
import time

import trafilatura

RUNS = 3
SETTINGS = [
    ("favor_precision", dict(include_comments=False, favor_precision=True)),
    ("default", dict(include_comments=False)),
]


def main():
    d = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench/extraction")
    html_dir = d / "html" if (d / "html").is_dir() else d
    paths = sorted(html_dir.glob("*.html.gz"))
    if not paths:
        sys.exit(f"no *.html.gz in {html_dir}")
    pages = [gzip.decompress(p.read_bytes()).decode("utf-8", errors="replace") for p in paths]
    n = len(pages)
    print(f"trafilatura {trafilatura.__version__}")
    for name, kw in SETTINGS:
        trafilatura.extract(pages[0], **kw)  # warm-up
        times = []
        for run in range(1, RUNS + 1):
            t = time.perf_counter()
            for html in pages:
                trafilatura.extract(html, **kw)
            s = time.perf_counter() - t
            print(f"  run {run}: {s:.3f} s, {n / s:.1f} pages/s")
            times.append(s)
        med = statistics.median(times)
        print(f"trafilatura({name}): {n} pages, {med:.3f} s, {n / med:.1f} pages/s", flush=True)


if __name__ == "__main__":
    main()
