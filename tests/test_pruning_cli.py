"""`pruning=halving` through the launch command on the local executor, with a command payload
whose points learn at known rates: replicates judged by their mean, PRUNED ends, exit 0, and
a re-launch with `pruning=off` that trains the pruned points and leaves the rest."""

import json
import re
from pathlib import Path

from support import TEST_CONFIGS

# One rung after 4 steps; every point is judged as it arrives (min_points=1), fast first.
HALVING = ["pruning=halving", "pruning.unit=steps", "pruning.rungs=[4]", "pruning.min_points=1", "+seed=1,2"]


def test_a_point_behind_is_pruned_replicates_by_their_mean_and_pruning_off_trains_it_later(run_cli, tmp_path: Path):
    result = run_cli("--config-dir", TEST_CONFIGS, "experiment=descent", *HALVING, "--multirun", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "descent"
    state = json.loads((sweep / "jobs.json").read_text())
    statuses = {name: job["status"] for name, job in state["jobs"].items()}
    assert statuses == {
        "fast__seed-1": "COMPLETED", "fast__seed-2": "COMPLETED", "mid__seed-1": "PRUNED", "mid__seed-2": "PRUNED",
        "slow__seed-1": "PRUNED", "slow__seed-2": "PRUNED",
    }
    decisions = {decision["point"]: decision for decision in state["rungs"]}
    # fast's seed 1 alone (4.97 over steps 1-4) is behind mid (4.75); the mean of its two is best.
    assert abs(decisions["fast"]["measure"] - 10 / 4 * (1 / 3 + 1 / 5 + 1 / 7 + 1 / 9)) < 1e-9  # 1.968
    assert decisions["fast"]["kept"] and decisions["fast"]["jobs"] == ["fast__seed-1", "fast__seed-2"]
    assert not decisions["mid"]["kept"] and not decisions["slow"]["kept"]
    for name in ("mid__seed-1", "slow__seed-2"):
        job = state["jobs"][name]
        assert job["pruned_at"] == 4 and job["cause"] is None and job["training"]["steps_done"] < 30
    summary = (sweep / "summary.md").read_text()
    assert "All 6 jobs completed or were pruned, 4 pruned" in summary
    assert re.search(r"\| fast \| 4 \| 1.968 \| 1 of [12] \| kept \|", summary)  # mid may arrive in the same poll
    assert "STATE_CHANGE: mid__seed-1\nPrevious: RUNNING\nCurrent: PRUNED" in (sweep / "run-torchtune.log").read_text()

    # The same launch, pruning on: nothing to do, nothing decided again.
    again = run_cli("--config-dir", TEST_CONFIGS, "experiment=descent", *HALVING, "--multirun", timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((sweep / "jobs.json").read_text())["rungs"] == state["rungs"]

    # pruning=off: the pruned points train to the end; the completed ones stay as they were.
    off = run_cli("--config-dir", TEST_CONFIGS, "experiment=descent", "pruning=off", "+seed=1,2", "--multirun", timeout=300)
    assert off.returncode == 0, off.stderr[-3000:]
    after = json.loads((sweep / "jobs.json").read_text())
    assert {job["status"] for job in after["jobs"].values()} == {"COMPLETED"}
    assert after["jobs"]["fast__seed-1"]["job_id"] == state["jobs"]["fast__seed-1"]["job_id"]
    assert after["jobs"]["mid__seed-1"]["previous_job_ids"] == [state["jobs"]["mid__seed-1"]["job_id"]]
    assert after["rungs"] == state["rungs"]
    assert "4 pruned and resumed with pruning off" in (sweep / "run-torchtune.log").read_text()
