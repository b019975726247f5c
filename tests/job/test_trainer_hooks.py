"""A torchtune trainer's start-up hooks, and which jobs get which: torchtune's LoRA merge on
the CPU, given copies of the weights it adds into (a trainer without GPUs); the tracker hook
(a training job)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.job.job_payloads import job_payload
from ttlaunch.job.trainer_hooks import HOOK_DIR, MERGE_ON_COPIES, with_hooks
from ttlaunch.job.trainer_hooks.ttlaunch_merge_on_copies import affected, merge_on_copies

from support import TEST_CONFIGS, cuda_devices, merge_errors

# A LoRA model on the CPU saved as torchtune's recipes save it: the state dict "copied" with
# .cpu(), then merged. Prints whether the model kept its base weight and whether the merge is right.
SAVE_AS_A_RECIPE_DOES = """
import torch
from torchtune.models.llama2 import lora_llama2
from torchtune.modules.peft import get_merged_lora_ckpt

torch.manual_seed(0)
model = lora_llama2(
    lora_attn_modules=["q_proj", "v_proj"], vocab_size=64, num_layers=1, num_heads=2, num_kv_heads=1, embed_dim=16,
    max_seq_len=32, lora_rank=2, lora_alpha=4,
)
q_proj = model.layers[0].attn.q_proj
torch.nn.init.normal_(q_proj.lora_b.weight)  # LoRA's B starts at zero: as after some training
base = q_proj.weight.detach().clone()
merged = get_merged_lora_ckpt({k: v.cpu() for k, v in model.state_dict().items()}, rank=2, alpha=4)
print("model kept its weights:", torch.equal(q_proj.weight, base))
delta = 2 * q_proj.lora_b.weight @ q_proj.lora_a.weight
print("merged is base + delta:", torch.allclose(merged["layers.0.attn.q_proj.weight"], base + delta))
"""


@pytest.mark.parametrize(
    "version, needs_copies",
    [("0.6.1+cpu", True), ("0.6.1", True), ("0.6.0", True), ("0.5.0", True), ("0.1.1", True), ("0.7.0", False),
     ("1.0", False), ("unknown", False)],
)
def test_every_release_to_0_6_1_needs_its_merge_given_copies(version: str, needs_copies: bool):
    assert affected(version) is needs_copies


def test_a_torchtune_job_starts_its_trainer_with_the_hooks_it_needs_first_on_its_python_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/job")
    torchtune = job_payload(PayloadKind.torchtune)
    env = {"HF_HOME": "/hf"}
    hooked = {"HF_HOME": "/hf", "PYTHONPATH": f"{HOOK_DIR}{os.pathsep}/job", "TTLAUNCH_TRAINER_HOOKS": "merge_on_copies"}
    assert torchtune.started_env(env, gpus=0) == hooked
    tracked = {**env, "TTLAUNCH_TRACKER_ID": "3f9c"}  # a training job (ttlaunch.job.tracker)
    assert torchtune.started_env(tracked, gpus=0)["TTLAUNCH_TRAINER_HOOKS"] == "merge_on_copies,tracker"
    assert torchtune.started_env(tracked, gpus=1)["TTLAUNCH_TRAINER_HOOKS"] == "tracker"
    assert sorted(path.name for path in HOOK_DIR.glob("*.py")) == [
        "__init__.py", "sitecustomize.py", "ttlaunch_merge_on_copies.py", "ttlaunch_tracker.py",
    ]
    # With GPUs the recipe's .cpu() copies, and outside a training job nothing is tracked:
    # nothing is added. Other payloads never get hooks.
    assert torchtune.started_env(env, gpus=1) == env
    assert job_payload(PayloadKind.command).started_env(tracked, gpus=0) == tracked
    assert job_payload(PayloadKind.evaluation).started_env(env, gpus=0) == env


def test_the_hooks_go_before_the_python_path_the_payload_or_the_job_sets():
    hooks = [MERGE_ON_COPIES]
    assert with_hooks({"PYTHONPATH": "/mine"}, hooks, {"PYTHONPATH": "/job"})["PYTHONPATH"] == f"{HOOK_DIR}{os.pathsep}/mine"
    assert with_hooks({}, hooks, {"PYTHONPATH": "/a:/b"})["PYTHONPATH"] == f"{HOOK_DIR}{os.pathsep}/a:/b"
    assert with_hooks({"X": "1"}, hooks, {}) == {"X": "1", "PYTHONPATH": str(HOOK_DIR), "TTLAUNCH_TRAINER_HOOKS": "merge_on_copies"}
    assert with_hooks({"X": "1"}, [], {"PYTHONPATH": "/a"}) == {"X": "1"}


@pytest.mark.torchtune
def test_torchtunes_merge_given_copies_leaves_the_state_dict_it_was_given_as_it_was():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchtune")
    from torchtune.modules.peft import get_merged_lora_ckpt

    generator = torch.Generator().manual_seed(0)
    weight, a, b = (torch.randn(*shape, generator=generator) for shape in ((6, 4), (2, 4), (6, 2)))
    other = torch.randn(3, generator=generator)

    def state() -> dict:
        return {"l.weight": weight, "l.lora_a.weight": a, "l.lora_b.weight": b, "norm.scale": other}

    original = weight.clone()
    given = state()
    merged = merge_on_copies(get_merged_lora_ckpt)(given, rank=2, alpha=4)
    assert torch.equal(weight, original) and given == state(), "the tensors and the dict given are as they were"
    assert torch.allclose(merged["l.weight"], original + 2 * b @ a)
    assert sorted(merged) == ["l.weight", "norm.scale"] and merged["norm.scale"] is other
    # torchtune's own merge adds into the tensor it is given: the model's own, on the CPU.
    get_merged_lora_ckpt(state(), rank=2, alpha=4)
    assert not torch.equal(weight, original), "torchtune 0.6.1 merges in place (else the hook is not needed)"


@pytest.mark.torchtune
@pytest.mark.cli
def test_a_trainer_started_with_the_hook_saves_without_changing_its_model_says_so_once_and_runs_the_sitecustomize_it_hides(
    tmp_path: Path,
):
    pytest.importorskip("torchtune")
    script = tmp_path / "save.py"
    script.write_text(SAVE_AS_A_RECIPE_DOES)
    site = tmp_path / "site"  # an environment's own sitecustomize, further down the path
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nprint('the environment\\'s sitecustomize ran', file=sys.stderr)\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

    plain = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert "model kept its weights: False" in plain.stdout, "without the hook torchtune changes the model on the CPU"

    hooked = subprocess.run(
        [sys.executable, str(script)], env=with_hooks(env, [MERGE_ON_COPIES], {"PYTHONPATH": str(site)}),
        capture_output=True, text=True, timeout=120,
    )
    assert hooked.returncode == 0, hooked.stderr
    assert "model kept its weights: True" in hooked.stdout and "merged is base + delta: True" in hooked.stdout
    assert hooked.stderr.count("ttlaunch: torchtune 0.6.1") == 1 and "merges LoRA into copies" in hooked.stderr
    assert "the environment's sitecustomize ran" in hooked.stderr


@pytest.mark.gpu
@pytest.mark.skipif(cuda_devices() < 1, reason="needs a CUDA GPU")
def test_a_run_on_a_gpu_gets_nothing_and_its_recipe_saves_right_on_its_own(run_cli, tmp_path: Path):
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=resume1", "compute.gpus_per_node=1", 'payload.overrides=["device=cuda"]',
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "resume1"
    job = json.loads((sweep / "jobs.json").read_text())["jobs"]["r1"]
    assert "ttlaunch: torchtune" not in Path(job["stderr"]).read_text(), "nothing applied with a GPU"
    # On the GPU the recipe's .cpu() copies before the merge: each epoch is right without ttlaunch.
    for epoch in range(2):
        errors = merge_errors(Path(job["output_dir"]) / f"epoch_{epoch}", sweep / "demo_assets" / "model")
        assert errors and max(errors.values()) < 1e-4, f"epoch {epoch}: {errors}"
