"""How much each way of counting the whole blacklist holds the lookups of another client (performance issue, item 1).

    .tools/mongo/bin/python benches/count_candidates.py MONGODB_URI [ENTRIES]

Seeds ENTRIES (default 200,000) entries of about 400 bytes into `jtc_count_candidates.bl` (half expired, indexes on
`expires_at` and `jti`), then, while a second client looks up a random `jti` every 2 ms, runs each candidate:
the `$collStats` count, `estimatedDocumentCount`, the `count` command with a filter, and counts in index windows of
the expiry (the lane from its floor to past the newest entry, `$match` range + `$count`, and the same windows
measured with `$bsonSize` as the sweep measures a batch). Prints the time each took and the lookups' p99 and worst
meanwhile. The database is dropped at the end.
"""

import datetime as dt
import random
import sys
import threading
import time

from pymongo import MongoClient

uri = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
client = MongoClient(uri)
db = client.jtc_count_candidates
col = db.bl
now = dt.datetime.now(dt.timezone.utc)
STEP_S = 3  # seconds between expiries, each half

col.drop()
col.create_index("expires_at")
col.create_index("jti")
for start in range(0, N, 10_000):
    docs = []
    for i in range(start, min(N, start + 10_000)):
        offset = dt.timedelta(seconds=(i // 2) * STEP_S + 60)
        docs.append({"jti": f"j{i}", "user": "u", "token": "x" * 300, "expires_at": now + offset if i % 2 else now - offset})
    col.insert_many(docs, ordered=False)
print(f"seeded {N} entries", flush=True)

latencies = []
stop = False


def lookups():
    other = MongoClient(uri).jtc_count_candidates.bl
    while not stop:
        started = time.perf_counter()
        other.find_one({"jti": f"j{random.randrange(N)}"})
        latencies.append(time.perf_counter() - started)
        time.sleep(0.002)


def trial(name, run):
    time.sleep(0.5)
    latencies.clear()
    started = time.perf_counter()
    result = run()
    took = time.perf_counter() - started
    time.sleep(0.3)
    seen = sorted(latencies)
    p99 = seen[int(len(seen) * 0.99)] if seen else 0
    worst = seen[-1] if seen else 0
    print(f"| {name} | {took * 1000:.0f} ms | {p99 * 1000:.1f} ms | {worst * 1000:.1f} ms | {result} |", flush=True)


def windows(width_s, measure):
    def run():
        total, calls = 0, 0
        lo = now - dt.timedelta(seconds=N // 2 * STEP_S + 120)
        hi = now + dt.timedelta(seconds=N // 2 * STEP_S + 120)
        while lo < hi:
            up = lo + dt.timedelta(seconds=width_s)
            match = {"$match": {"expires_at": {"$gte": lo, "$lt": up}}}
            size = {"$sum": {"$bsonSize": "$$ROOT"}}
            pipeline = [match, {"$group": {"_id": None, "n": {"$sum": 1}, "b": size}}] if measure else [match, {"$count": "n"}]
            rows = list(col.aggregate(pipeline))
            total += rows[0]["n"] if rows else 0
            calls += 1
            lo = up
        return f"{total} counted in {calls} calls"

    return run


looker = threading.Thread(target=lookups)
looker.start()
time.sleep(1)
print("| candidate | took | lookup p99 | worst lookup | result |\n|---|---|---|---|---|")
trial("idle, 2 s", lambda: time.sleep(2) or "")
trial("`$collStats` count", lambda: list(col.aggregate([{"$collStats": {"count": {}}}]))[0].get("count"))
trial("`estimatedDocumentCount`", col.estimated_document_count)
trial("`count` command, a filter matching all", lambda: db.command("count", "bl", query={"_id": {"$exists": True}})["n"])
for entries in (50, 100, 250, 500, 1000, 2500):
    # Windows of `entries` entries at this density (two per STEP_S seconds).
    trial(f"count in index windows of about {entries}", windows(entries * STEP_S // 2, False))
for entries in (50, 250):
    trial(f"measure ($bsonSize) in index windows of about {entries}", windows(entries * STEP_S // 2, True))
stop = True
looker.join()
client.drop_database("jtc_count_candidates")
