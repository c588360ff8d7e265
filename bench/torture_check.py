#!/usr/bin/env python3
"""Invariants after a crash-torture run (see bench/torture.sh).

    torture_check.py OUT_DIR STATE_DIR [TRUTH_JSON SCORE_PY]

Checks, printing one line per failure and exiting 1 if any:
  * no `.gleaner-tmp-*` file anywhere under OUT_DIR;
  * every story is a complete pair: each .txt has its .json and vice versa,
    the .txt is "title\\n\\nbody\\n" with the .json's title, nothing empty;
  * every .json parses, has the contract's keys, and a `duplicates` list of
    {url, feed, seen_at} objects with no sighting listed twice;
  * no URL is written twice (as two stories, or as a story and a duplicate);
  * the state store passes `PRAGMA integrity_check`, has no pending writes,
    and holds exactly as many stories as there are pairs on disk;
  * with TRUTH_JSON: score.py says coverage 1.0 and written_twice 0.
Prints a one-line JSON summary on success.
"""
import json
import os
import sqlite3
import subprocess
import sys

REQUIRED = ["id", "url", "canonical_url", "feed", "title", "author", "published",
            "fetched_at", "words", "duplicates"]


def main():
    out_dir, state_dir = sys.argv[1], sys.argv[2]
    truth = sys.argv[3] if len(sys.argv) > 3 else None
    score_py = sys.argv[4] if len(sys.argv) > 4 else None
    errors = []
    stems = {}
    for root, _, files in os.walk(out_dir):
        for fn in files:
            path = os.path.join(root, fn)
            if fn.startswith(".gleaner-tmp-"):
                errors.append(f"temp file left: {path}")
                continue
            stem, ext = os.path.splitext(path)
            if ext not in (".txt", ".json"):
                errors.append(f"unexpected file: {path}")
                continue
            stems.setdefault(stem, set()).add(ext)

    written_urls = {}
    dup_urls = {}
    for stem, exts in sorted(stems.items()):
        if exts != {".txt", ".json"}:
            errors.append(f"incomplete pair: {stem} has only {sorted(exts)}")
            continue
        try:
            with open(stem + ".json", encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError) as e:
            errors.append(f"bad json: {stem}.json: {e}")
            continue
        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            errors.append(f"{stem}.json lacks {missing}")
            continue
        dups = meta["duplicates"]
        if not isinstance(dups, list):
            errors.append(f"{stem}.json: duplicates is not a list")
            continue
        seen = set()
        for d in dups:
            if not (isinstance(d, dict) and isinstance(d.get("url"), str)
                    and isinstance(d.get("feed"), str) and isinstance(d.get("seen_at"), str)):
                errors.append(f"{stem}.json: bad duplicate entry {d!r}")
                continue
            if (d["url"], d["feed"]) in seen:
                errors.append(f"{stem}.json: sighting listed twice: {d['url']} ({d['feed']})")
            seen.add((d["url"], d["feed"]))
            dup_urls.setdefault(d["url"], []).append(stem)
        try:
            with open(stem + ".txt", encoding="utf-8") as f:
                text = f.read()
        except (OSError, ValueError) as e:
            errors.append(f"bad txt: {stem}.txt: {e}")
            continue
        head, sep, body = text.partition("\n\n")
        if not sep or head != meta["title"] or not body.strip() or not text.endswith("\n"):
            errors.append(f"{stem}.txt is not 'title, blank line, body' for its .json")
        written_urls.setdefault(meta["url"], []).append(stem)

    for url, where in written_urls.items():
        if len(where) > 1:
            errors.append(f"written twice: {url}: {where}")
    for url, where in dup_urls.items():
        # A page listed as a duplicate of another story must not also be a story
        # (its own .json lists it only when a feed re-posted the same URL).
        if url in written_urls and any(s not in written_urls[url] for s in where):
            errors.append(f"{url} is both a story ({written_urls[url]}) and a duplicate of {where}")

    pairs = sum(1 for e in stems.values() if e == {".txt", ".json"})
    db = os.path.join(state_dir, "state.sqlite")
    stories = pending = None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            errors.append(f"integrity_check: {ok}")
        stories = con.execute("SELECT count(*) FROM stories").fetchone()[0]
        pending = con.execute("SELECT count(*) FROM pending").fetchone()[0]
        con.close()
        if pending:
            errors.append(f"{pending} pending writes left in the store")
        if stories != pairs:
            errors.append(f"store has {stories} stories, disk has {pairs} pairs")
    except sqlite3.Error as e:
        errors.append(f"state store {db}: {e}")

    summary = {"pairs": pairs, "store_stories": stories, "pending": pending}
    if truth and score_py:
        r = subprocess.run([sys.executable, score_py, out_dir, truth],
                           capture_output=True, text=True, check=False)
        try:
            score = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            errors.append(f"score.py failed: {r.stderr.strip()}")
            score = {}
        for k in ("coverage", "written_twice", "f1", "dedupe_precision", "dedupe_recall"):
            summary[k] = score.get(k)
        if score and score.get("written_twice") != 0:
            errors.append(f"score.py: written_twice = {score.get('written_twice')}")
        if score and score.get("coverage") != 1.0:
            errors.append(f"score.py: coverage = {score.get('coverage')}")

    for e in errors[:50]:
        print("FAIL:", e)
    if len(errors) > 50:
        print(f"FAIL: ... and {len(errors) - 50} more")
    print(json.dumps(summary))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
