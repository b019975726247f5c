"""What several test modules share that is not a fixture: where the test inputs are, how a
launch is run as a user runs it, which traceback frames are ours, waiting on the test cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from ttlaunch.inputs.schema import ComputeConfig
    from ttlaunch.job.job_plan import JobPlan
    from ttlaunch.records.ledger import Ledger

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# The tests' own experiments, payloads and rules, for `--config-dir`.
TEST_CONFIGS = str(TESTS / "configs")


def cli_invocation(tmp_path: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of `python -m ttlaunch.launch ARGS` with sweeps under tmp_path/work."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    # Hydra's argparse wants every override in one run: flags, overrides, then --multirun.
    flags = [arg for arg in args if arg != "--multirun"]
    multirun = ["--multirun"] if "--multirun" in args else []
    return [sys.executable, "-m", "ttlaunch.launch", *flags, f"paths.work_root={tmp_path / 'work'}", *multirun], env


def plan_from_saved_config(job_dir: Path) -> JobPlan:
    """The job's plan worked out from the config Hydra saved in its dir and the copies its
    submission took, as a job without a saved plan works its own out."""
    from omegaconf import OmegaConf

    from ttlaunch.job.plan_from_inputs import plan_from_inputs

    saved = job_dir / "hydra_configs"
    return plan_from_inputs(OmegaConf.load(saved / "config.yaml"), OmegaConf.load(saved / "hydra.yaml").hydra, job_dir)


def frames_of_ours(stderr: str) -> list[str]:
    """The traceback frames in `stderr` that come from ttlaunch's or Hydra's code, wherever
    they are installed (not every line that happens to contain the word "ttlaunch")."""
    import hydra

    import ttlaunch

    homes = [str(Path(ttlaunch.__file__).resolve().parent), str(Path(hydra.__file__).resolve().parent)]
    homes += [str(Path(ttlaunch.__file__).parent), str(Path(hydra.__file__).parent)]
    return [line for line in stderr.splitlines() if line.lstrip().startswith("File \"") and any(home in line for home in homes)]


def submissions_by_name(jobs: dict, since: datetime, timeout_s: float = 30) -> dict[str, int]:
    """How many jobs SLURM accounted under each of jobs.json's names since `since`, once
    accounting shows every job id jobs.json knows (earlier ones included): slurmctld passes
    its records to slurmdbd in order, so a submission made before those is accounted too."""
    known = {str(job_id) for job in jobs.values() for job_id in [job["job_id"], *job.get("previous_job_ids", [])]}
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run(
            ["sacct", "-X", "-P", "-n", "-S", since.strftime("%Y-%m-%dT%H:%M:%S"), "--name", ",".join(sorted(jobs)),
             "--format=JobID,JobName"],
            capture_output=True, text=True, check=True,
        ).stdout
        rows = [line.split("|") for line in out.splitlines()]
        if known <= {row[0] for row in rows}:
            break
        assert time.monotonic() < deadline, f"accounting never showed {sorted(known - {row[0] for row in rows})}"
        time.sleep(0.2)
    counts = {name: 0 for name in jobs}
    for row in rows:
        counts[row[1]] += 1
    return counts


def epochs_script(seconds: int, then_s: int = 0) -> str:
    """A command payload (`sh SCRIPT <output dir>`) that saves two epochs the way torchtune
    lays them out (adapter_config.json last), one every `seconds`, then runs `then_s` more."""
    return f"""#!/bin/sh
out="$1"
for epoch in 0 1; do
  sleep {seconds}
  mkdir -p "$out/epoch_$epoch" && echo weights > "$out/epoch_$epoch/adapter_model.pt"
  echo '{{}}' > "$out/epoch_$epoch/adapter_config.json"
done
sleep {then_s}
"""



def cuda_devices() -> int:
    """The CUDA GPUs this machine's torch sees (none without torch, or with a CPU build)."""
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no torch, or a CPU build
        return 0


def merge_errors(epoch_dir: Path, base_dir: Path) -> dict[str, float]:
    """For each weight a LoRA run adapts, how far the merged weights torchtune saved in
    `epoch_dir` are from the base model's (`base_dir`) plus (alpha/rank)·B·A of the adapter
    saved beside them (or in `adapter_weights/`, where cruijff_kit's post step moves it): the
    largest absolute difference (all in Hugging Face's layout, the adapter as PEFT's file)."""
    import json

    from safetensors.torch import load_file

    adapter_dir = epoch_dir / "adapter_weights" if (epoch_dir / "adapter_weights").is_dir() else epoch_dir
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    adapter = load_file(adapter_dir / "adapter_model.safetensors")
    merged = {key: value for path in epoch_dir.glob("model-*.safetensors") for key, value in load_file(path).items()}
    base = {key: value for path in base_dir.glob("model*.safetensors") for key, value in load_file(path).items()}
    errors = {}
    for key, a in adapter.items():
        if key.endswith(".lora_A.weight"):
            b = adapter[key.replace(".lora_A.", ".lora_B.")]
            weight = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
            errors[weight] = float((merged[weight] - (base[weight] + scale * b @ a)).abs().max())
    return errors


def commit_all(directory: Path) -> str:
    """Put `directory` in a git repository of its own, everything committed, as its user keeps
    it; the commit."""
    git = ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "as launched"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def app_in_git(directory: Path) -> Path:
    """tests/hydra_app/snapshot_app, committed at `directory`: its script (app.py, which
    imports helper.py)."""
    shutil.copytree(TESTS / "hydra_app" / "snapshot_app", directory)
    commit_all(directory)
    return directory / "app.py"


@contextmanager
def full_cluster() -> Iterator[None]:
    """The test cluster, full while the block runs: one job holds the whole node, so what is
    submitted meanwhile waits in the queue (PENDING) until the block ends."""
    blocker = subprocess.run(
        ["sbatch", "--parsable", "--exclusive", "--partition=debug", "--job-name=ttlaunch-test-blocker", "--output=/dev/null",
         "--wrap", "sleep 600"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    try:
        yield
    finally:
        subprocess.run(["scancel", blocker], check=True)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def queued(job_id: str) -> tuple[str, int] | None:
    """squeue's state and restart count of the job; None once it left the queue."""
    state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    if not state:
        return None
    restarts = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True
    ).stdout.split("Restarts=")[1].split()[0]
    return state, int(restarts)


def accounted_end(job_id: str, timeout: float = 30) -> str:
    """The state accounting gives the job once it shows an end: slurmdbd lags slurmctld, so a
    job gone from squeue can still read RUNNING in sacct for a moment."""
    from ttlaunch.scheduler.states import parse_state

    def state() -> str:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-j", job_id, "--format=State"], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0] if out and parse_state(out[0]).terminal else ""

    wait_for(state, timeout, f"accounting to show job {job_id}'s end")
    return state()


class InlineExecutor(Executor):
    """Runs each call as it is submitted: a monitor on a test's clock collects metrics in the
    same look that starts the collection, as its worker threads would a moment later."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def cluster_without_accounting(completion_log: str, asked: list[list[str]]) -> Callable[..., str]:
    """A stand-in for ttlaunch.scheduler.slurm.execute on a cluster that keeps no accounting
    (sacct refuses as SLURM does) but a job completion log, whose `sacct -c` answers
    `completion_log`; nothing is queued. Each command's first two words go to `asked`."""
    from ttlaunch.scheduler import slurm

    def execute(argv: list[str], timeout: float = 60) -> str:
        asked.append(argv[:2])
        if argv[0] == "squeue":
            return ""
        if "-c" in argv:
            return completion_log
        raise slurm.AccountingDisabled(argv, 1, "", "Slurm accounting storage is disabled")

    return execute


class Recorder:
    """Stands in for the launching side of the monitor's reactions (their Capabilities):
    records what they ask it to submit (a new record per submission, as the submitter makes)
    and cancel; every job asks for `compute`."""

    def __init__(self, ledger: Ledger, compute: ComputeConfig | None = None, partition_nodes: int | None = None) -> None:
        from ttlaunch.inputs.schema import ComputeConfig

        self.ledger, self.submitted, self.cancelled = ledger, [], []
        self.memory: list[float | None] = []  # each submission's mem_gb
        self.compute = compute or ComputeConfig()
        self.nodes: dict[str, list[str]] = {}  # job id -> the nodes it ran on
        self.partition_nodes = partition_nodes

    def submit(self, job_name, run_name, template_job, overrides, evaluation=False, mem_gb=None):
        from ttlaunch.records.jobs_file import JobRecord

        self.submitted.append((job_name, run_name, template_job, list(overrides)))
        self.memory.append(mem_gb)
        previous = self.ledger.state.jobs.get(job_name)
        record = JobRecord(name=job_name, run_name=run_name, job_id=f"new{len(self.submitted)}")
        if previous is not None:
            record.previous_job_ids = [*previous.previous_job_ids, previous.job_id]
            record.restarts = list(previous.restarts)
            record.output_dir, record.job_dir, record.stderr = previous.output_dir, previous.job_dir, previous.stderr
        self.ledger.state.jobs[job_name] = record
        return record.job_id

    def cancel(self, job_name):
        self.cancelled.append(job_name)
        self.ledger.state.jobs[job_name].stopped_by_ttlaunch = True

    def compute_of(self, template_job, run_name, evaluation):
        return self.compute

    def nodes_of(self, job_name):
        return self.nodes.get(self.ledger.state.jobs[job_name].job_id, [])

    def partition_size(self, partition):
        return self.partition_nodes
