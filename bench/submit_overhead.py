"""What running a sweep as a Ray job costs: the same spec on the same local Ray cluster, through
``gradnorm-tune submit`` (the driver runs on the head as a job, its output streamed back) and
through ``gradnorm-tune sweep --ray-address`` (the driver runs here and joins the cluster), side by
side in one run, alternating.

    python bench/submit_overhead.py                    # toy_t2, 2 searches, 3 epochs, 2 rounds
    scripts/on-loopback python bench/submit_overhead.py --rounds 3 --epochs 5

It starts its own cluster (``ray start --head`` with the job server and token authentication, 2
CPUs) and stops it by PID at the end. For each command: its wall-clock from start to exit, the
trial phase (first trial start to last trial end, from the MLflow record) and the overhead
(command minus trial phase: start-up, checks, the job's set-up, the comparison); per search =
overhead / number of searches. The ratio is submit's over sweep's, medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from trainables import ROLE, ROLE_TRIAL

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spec(epochs: int) -> dict:
    data = yaml.safe_load((ROOT / "sweeps" / "specs" / "toy_t2.yaml").read_text())
    data["training"] |= {"epochs": epochs, "device": "cpu"}
    data["resources"] = {"cpu": 1, "max_concurrent": 2}
    return data


def start_cluster(folder: Path, env: dict) -> tuple[subprocess.Popen, str, str]:
    port, dashboard = free_port(), free_port()
    log = open(folder / "head.log", "w")  # noqa: SIM115 - lives as long as the head
    # its own temp folder: a job's driver finds its cluster through the temp folder's record of the
    # last `ray start` on the machine, which another cluster here would have overwritten
    head = subprocess.Popen([BIN / "ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             f"--temp-dir={folder / 'ray'}", f"--port={port}", "--num-cpus=2",
                             "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={dashboard}", "--disable-usage-stats"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    request = urllib.request.Request(f"http://127.0.0.1:{dashboard}/api/version",
                                     headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
    for _ in range(240):
        try:
            urllib.request.urlopen(request, timeout=2).close()
            return head, f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}"
        except OSError:
            if head.poll() is not None:
                raise SystemExit(f"ray start failed:\n{(folder / 'head.log').read_text()[-2000:]}") from None
            time.sleep(0.5)
    raise SystemExit("the Ray job server did not answer in 120 s")


def run(command: list[str], folder: Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:2])} failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def trial_phase(uri: str, experiment: str) -> float:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{ROLE}` = '{ROLE_TRIAL}'", max_results=1000)
    return (max(run.info.end_time for run in runs) - min(run.info.start_time for run in runs)) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3,
                        help="training.epochs of the toy_t2 spec (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each command, alternating (default: %(default)s)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-submit-"))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    head, address, jobs = start_cluster(folder, env)
    data = spec(args.epochs)
    searches = len(data["searches"]) + (1 if data.get("recommended_static") else 0)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    results: dict[str, list[tuple[float, float]]] = {"sweep": [], "submit": []}
    try:
        for index in range(args.rounds):
            for how in ("sweep", "submit"):
                experiment = f"bench-{how}-{index}"
                path = folder / f"{experiment}.yaml"
                path.write_text(yaml.safe_dump({**data, "experiment": experiment}, sort_keys=False))
                storage = ["--storage", str(folder / "runs"), "--tracking-uri", uri]
                if how == "sweep":
                    command = [str(BIN / "gradnorm-tune"), "sweep", str(path), "--ray-address", address, *storage]
                else:
                    command = [str(BIN / "gradnorm-tune"), "submit", str(path), "--address", jobs, *storage]
                seconds = run(command, folder, env)
                results[how].append((seconds, trial_phase(uri, experiment)))
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head and everything it started
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntoy_t2 spec: {searches} searches, {args.epochs} epochs, 2 trial slots on a 2-CPU local Ray cluster, "
          f"{os.cpu_count()} cores; medians of {args.rounds} rounds, alternating")
    print(f"{'':<8} {'command s':>10} {'trial phase s':>14} {'overhead s':>11} {'per search s':>13}")
    overheads = {}
    for how, runs in results.items():
        command = statistics.median(seconds for seconds, _ in runs)
        phase = statistics.median(phase for _, phase in runs)
        overheads[how] = statistics.median(seconds - phase for seconds, phase in runs)
        print(f"{how:<8} {command:>10.1f} {phase:>14.1f} {overheads[how]:>11.1f} {overheads[how] / searches:>13.1f}")
    commands = {how: statistics.median(seconds for seconds, _ in runs) for how, runs in results.items()}
    command_ratio = commands["submit"] / commands["sweep"]
    print(f"submit / sweep: {overheads['submit'] / overheads['sweep']:.2f}x the per-search overhead, "
          f"{command_ratio:.2f}x the whole command")


if __name__ == "__main__":
    main()
