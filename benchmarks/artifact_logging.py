"""Time and memory of logging one payload: log_text, log_artifact, log_artifacts, and boto3.

    .venv/bin/python benchmarks/artifact_logging.py

starts the same local stack the tests use (PostgreSQL database, an S3 server, and
`mlflow server` as docker-compose.yml configures it; PostgreSQL on 127.0.0.1:5432 or
TEST_POSTGRES_URL), measures, prints a Markdown table, and stops the stack. `--s3 seaweedfs`
runs SeaweedFS (docker-compose.seaweedfs.yml) instead of moto, and also prints the S3
server's own peak memory. Against the compose stack instead (keys of the bucket-only user,
as in .env.example):

    AWS_ACCESS_KEY_ID=mlflow-artifacts AWS_SECRET_ACCESS_KEY=mlflow-artifacts-dev-secret \\
    .venv/bin/python benchmarks/artifact_logging.py \\
        --tracking-uri http://localhost:5000 --s3-endpoint http://localhost:9000

Each case runs in a process of its own, so peak memory (RSS) belongs to that case alone.
The time is that of the logging call only; the payload is made before it.

On the local stack a second table shows which MLflow settings change `log_artifact` of the
largest size: the multipart chunk size in direct mode, and proxied mode (docker-compose.proxied.yml,
a second tracking server beside the first): with MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=false as
the compose trainer sets it, with MLflow's defaults (the server tells the client that multipart
uploads are on, from MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE, 500 MiB, up), and with the
threshold lowered to 100 MiB, so the client uploads the parts itself through presigned URLs.
"S3 parts" is the number of parts the stored object was uploaded in (from its ETag).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ["boto3 upload_file", "log_artifact", "log_artifacts (100 files)", "log_text"]
SIZES = {"1KiB": 1 << 10, "1MiB": 1 << 20, "64MiB": 64 << 20, "256MiB": 256 << 20}
CHUNK = 8 << 20
# (mode, setting, environment): the settings table, log_artifact only. The proxied client starts
# from the proxied trainer's environment, which sets MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD and
# _DOWNLOAD to false; None removes a setting (MLflow's default).
MLFLOW_DEFAULTS = {"MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": None, "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": None}
SETTINGS = [
    ("direct", "defaults", {}),
    ("direct", "MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE=5242880", {"MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE": str(5 << 20)}),
    ("proxied", "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=false (as the compose trainer)", {}),
    # Unset, the client asks the server, and a server with an S3 destination turns multipart on,
    # from MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE (500 MiB) up: below it, one request.
    ("proxied", "MLflow's defaults (multipart on, from 500 MiB)", MLFLOW_DEFAULTS),
    (
        "proxied",
        "MLflow's defaults, and MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE=104857600",
        {**MLFLOW_DEFAULTS, "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(100 << 20)},
    ),
]


def write_file(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        for start in range(0, size, CHUNK):
            out.write(os.urandom(min(CHUNK, size - start)))


def measure(method: str, size: int) -> dict:
    """One case, in this process: seconds in the call and peak RSS."""
    import boto3
    import mlflow

    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # An experiment keeps the artifact location it was made with: one per mode.
    mlflow.set_experiment(os.environ.get("BENCHMARK_EXPERIMENT", "benchmark"))
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        if method == "log_text":
            text = "a" * size
            started = time.perf_counter()
            mlflow.log_text(text, artifact_file="bench/payload.txt")
        elif method == "log_artifact":
            write_file(Path(tmp) / "payload.bin", size)
            started = time.perf_counter()
            mlflow.log_artifact(str(Path(tmp) / "payload.bin"), artifact_path="bench")
        elif method == "log_artifacts (100 files)":
            for i in range(100):
                write_file(Path(tmp) / f"part-{i:03d}.bin", size // 100)
            started = time.perf_counter()
            mlflow.log_artifacts(tmp, artifact_path="bench")
        else:  # the floor: the same upload with boto3 alone, into the run's folder
            write_file(Path(tmp) / "payload.bin", size)
            bucket, _, prefix = mlflow.get_artifact_uri().removeprefix("s3://").partition("/")
            s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
            started = time.perf_counter()
            s3.upload_file(str(Path(tmp) / "payload.bin"), bucket, f"{prefix}/bench/payload.bin")
        seconds = time.perf_counter() - started
        artifact_uri = mlflow.get_artifact_uri()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_rss_mb": peak_mb, "baseline_rss_mb": baseline_mb, "artifact_uri": artifact_uri}


def run_case(method: str, size_name: str, env: dict[str, str], repeat: int) -> dict | None:
    """The median of `repeat` fresh processes; None if the case fails (its error is printed)."""
    results = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, __file__, "--case", method, size_name], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1]  # the exception; MLflow's lists every part
            print(f"({method}, {size_name}: failed: {last[:300]}{'...' if len(last) > 300 else ''})", file=sys.stderr)
            return None
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    median = {key: statistics.median(r[key] for r in results) for key in results[0] if key != "artifact_uri"}
    return dict(median, artifact_uri=results[-1]["artifact_uri"])


def machine() -> str:
    import boto3
    import mlflow

    memory_kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
    return (
        f"{os.cpu_count()} cores, {memory_kb / 1024**2:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}, mlflow {mlflow.__version__}, boto3 {boto3.__version__}"
    )


def report(env: dict[str, str], sizes: list[str], repeat: int, where: str) -> None:
    print(f"Machine: {machine()}")
    print(f"Stack: {where}; median of {repeat} process(es) per case\n")
    print("| size | method | seconds in the call | MiB/s | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|")
    table = {}
    for size_name in sizes:
        for method in METHODS:
            result = run_case(method, size_name, env, repeat)
            if result is None:
                print(f"| {size_name} | {method} | failed | | |", flush=True)
                continue
            table[size_name, method] = result
            mib_s = SIZES[size_name] / 2**20 / result["seconds"]
            print(
                f"| {size_name} | {method} | {result['seconds']:.3f} | {mib_s:.1f} | {result['peak_rss_mb']:.0f} |",
                flush=True,
            )
    baseline = statistics.median(r["baseline_rss_mb"] for r in table.values())
    print(f"\nPeak RSS includes about {baseline:.0f} MB for Python with mlflow and boto3 imported.")
    if ("256MiB", "log_artifact") in table and ("256MiB", "boto3 upload_file") in table:
        floor = table["256MiB", "boto3 upload_file"]["seconds"]
        artifact = table["256MiB", "log_artifact"]
        print(
            f"Targets at 256 MiB: log_artifact / boto3 floor = {artifact['seconds'] / floor:.2f}x (target <= 1.3x); "
            f"log_artifact peak RSS = {artifact['peak_rss_mb']:.0f} MB (target < 300 MB)"
        )


def s3_parts(stack, artifact_uri: str, destination: str) -> str:
    """How many parts the case's payload was uploaded in, from the stored object's ETag."""
    if artifact_uri.startswith("mlflow-artifacts:/"):  # proxied: stored under --artifacts-destination
        artifact_uri = destination.rstrip("/") + "/" + artifact_uri.removeprefix("mlflow-artifacts:/")
    key = artifact_uri.removeprefix(f"s3://{stack.bucket}/") + "/bench/payload.bin"
    etag = stack.s3().head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
    return etag.partition("-")[2] or "1"


def report_settings(stack, proxied, size_name: str, repeat: int) -> None:
    """log_artifact of `size_name` under each of SETTINGS."""
    from support.stack import argument, clean_env

    destination = argument(proxied.server_command, "--artifacts-destination")
    print(f"\nSettings, log_artifact of {size_name}:\n")
    print("| mode | setting | seconds in the call | peak RSS (MB) | S3 parts |")
    print("|---|---|---:|---:|---:|")
    for mode, setting, extra in SETTINGS:
        env = dict(clean_env((stack if mode == "direct" else proxied).trainer_env), **extra)
        env = {name: value for name, value in env.items() if value is not None}
        env["BENCHMARK_EXPERIMENT"] = f"benchmark-{mode}"
        result = run_case("log_artifact", size_name, env, repeat)
        if result is None:
            print(f"| {mode} | {setting} | failed | | |", flush=True)
            server = (stack if mode == "direct" else proxied).server
            print("(the tracking server's log ends:)\n" + server.log_tail(15), flush=True)
            continue
        parts = s3_parts(stack, result["artifact_uri"], destination)
        print(f"| {mode} | {setting} | {result['seconds']:.3f} | {result['peak_rss_mb']:.0f} | {parts} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", help="a running tracking server (default: start a local stack)")
    parser.add_argument("--s3-endpoint", help="its S3 endpoint, with --tracking-uri")
    parser.add_argument("--s3", choices=["moto", "seaweedfs"], default="moto", help="the S3 server of the local stack")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=1, help="processes per case; the median is shown")
    parser.add_argument("--case", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        print(json.dumps(measure(args.case[0], SIZES[args.case[1]])))
        return
    if args.tracking_uri:
        env = dict(os.environ, MLFLOW_TRACKING_URI=args.tracking_uri, MLFLOW_S3_ENDPOINT_URL=args.s3_endpoint)
        report(env, args.sizes, args.repeat, f"given: {args.tracking_uri}, S3 at {args.s3_endpoint}")
        return
    sys.path.insert(0, str(REPO / "tests"))
    from support.stack import COMPOSE_FILE, PROXIED_FILE, clean_env, local_stack

    admin_url = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with tempfile.TemporaryDirectory() as workdir, local_stack(Path(workdir), admin_url, args.s3) as stack:
        where = f"local: mlflow server from the compose files + PostgreSQL + {args.s3} S3 server, on loopback"
        report(clean_env(stack.trainer_env), args.sizes, args.repeat, where)
        with stack.other_server(Path(workdir), (COMPOSE_FILE, PROXIED_FILE)) as proxied:
            report_settings(stack, proxied, args.sizes[-1], args.repeat)
        # The S3 server's own high-water mark (VmHWM), for the memory it needs beside the client.
        status = Path(f"/proc/{stack.s3_server.process.popen.pid}/status").read_text()
        peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
        print(f"\nPeak RSS of the {args.s3} S3 server process: {peak_kb / 1024:.0f} MB")


if __name__ == "__main__":
    main()
