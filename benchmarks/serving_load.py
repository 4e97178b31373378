"""Load test for `slopeft serve`: N requests at concurrency C from this (second) process.

Each request goes to a random loaded adapter with one real SloBench input of its task (validation
rows of the SuperGLUE tasks, a MultiRC passage with one of its answers, SI-NLI pairs, FLORES
sources for translation adapters, which go to /v1/completions). A 429 is retried after its Retry-After (the server's deliberate back-pressure);
anything else that is not a 200 counts as an error. The run is bounded in count (--requests) and
time (--timeout: requests not finished by then count as errors).

    python benchmarks/serving_load.py --url http://127.0.0.1:8000 --requests 2000 --concurrency 64

Prints a JSON summary: counts by final status, 429s seen, errors, throughput, and latency
percentiles of successful requests (first attempt to answer, retries included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

FOLDERS = {"boolq": "BoolQ", "cb": "CB", "copa": "COPA", "multirc": "MultiRC", "rte": "RTE", "wsc": "WSC"}


def inputs_for(task: str, data_dir: Path) -> list[dict]:
    """Real input rows of ``task`` (a few hundred at most)."""
    if task.startswith("slo-superglue/"):
        folder = FOLDERS[task.rsplit("/", 1)[1]]
        path = data_dir / "slo-superglue" / "human-translated" / folder / "val.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if folder == "MultiRC":  # a passage row holds dozens of answers: one question and answer per request
            rows = [
                {"idx": row["idx"], "passage": {"text": row["passage"]["text"], "questions": [
                    {"idx": question["idx"], "question": question["question"], "answers": [answer]}]}}
                for row in rows for question in row["passage"]["questions"] for answer in question["answers"]
            ]
        return rows
    if task == "si-nli":
        import csv

        with open(data_dir / "si-nli" / "train.tsv", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))[:300]
        return [{"premise": r["premise"], "hypothesis": r["hypothesis"]} for r in rows]
    if task.startswith("mt/"):
        source = task.split("/")[1].split("-")[0]
        lines = (data_dir / "mt" / "flores200-dev-subset" / f"{source}.txt").read_text(encoding="utf-8").splitlines()
        return [{"source": line} for line in lines[:300] if line.strip()]
    raise SystemExit(f"no inputs known for task {task}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> dict:
    headers = {"Authorization": f"Bearer {os.environ[args.api_key_env]}"} if args.api_key_env else {}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    timeout = httpx.Timeout(args.timeout)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, limits=limits, timeout=timeout) as client:
        listing = (await client.get("/v1/adapters")).raise_for_status().json()["adapters"]
        pools = {a["name"]: (a["endpoint"], inputs_for(a["task"], args.data_dir)) for a in listing}
        if not pools:
            raise SystemExit("the server has no adapters")
        rng = random.Random(args.seed)
        plan = []
        for _ in range(args.requests):
            name = rng.choice(sorted(pools))
            endpoint, rows = pools[name]
            row = rng.choice(rows)
            if endpoint == "/v1/completions":
                plan.append((name, endpoint, {"model": name, "prompt": row["source"], "max_tokens": args.max_tokens}))
            else:
                plan.append((name, endpoint, {"adapter": name, "inputs": [row]}))
        queue: asyncio.Queue = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        latencies: list[float] = []
        finals: dict[str, int] = {}
        retried = [0]
        errors: list[str] = []
        deadline = time.monotonic() + args.timeout

        async def worker() -> None:
            while not queue.empty():
                name, endpoint, body = queue.get_nowait()
                started = time.perf_counter()
                status = "timeout"
                while time.monotonic() < deadline:
                    try:
                        response = await client.post(endpoint, json=body)
                    except httpx.HTTPError as err:
                        status = type(err).__name__
                        break
                    if response.status_code == 429:
                        retried[0] += 1
                        await asyncio.sleep(float(response.headers.get("Retry-After", "1")) * rng.uniform(0.5, 1.0))
                        continue
                    status = str(response.status_code)
                    if response.status_code == 200:
                        latencies.append(time.perf_counter() - started)
                    elif len(errors) < 5:
                        errors.append(f"{name} {endpoint}: {response.status_code} {response.text[:200]}")
                    break
                finals[status] = finals.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - started
    ok = finals.get("200", 0)
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "adapters": sorted(pools),
        "final_status": finals,
        "answers_429_retried": retried[0],
        "errors": args.requests - ok,
        "error_samples": errors,
        "wall_s": round(wall, 2),
        "requests_per_s": round(ok / wall, 2),
        "latency_ms": {
            "p50": round(1000 * percentile(latencies, 50), 1) if latencies else None,
            "p90": round(1000 * percentile(latencies, 90), 1) if latencies else None,
            "p99": round(1000 * percentile(latencies, 99), 1) if latencies else None,
            "mean": round(1000 * statistics.fmean(latencies), 1) if latencies else None,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds for the whole run.")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens of translation requests.")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SLOPEFT_DATA", "../shared/data")))
    parser.add_argument("--api-key-env", default=None, help="Environment variable holding the server's API key.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="Also write the summary here.")
    args = parser.parse_args(argv)
    summary = asyncio.run(run(args))
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
