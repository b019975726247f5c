"""Why a job failed, from the end of its stderr (the payload's error, not the wrapper's)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from ttlaunch.job.failure import PAYLOAD_EXIT, failure_reason, without_wrapper

WRAPPER = """\
Traceback (most recent call last):
  File "/venv/ttlaunch/job.py", line 81, in finish_command
    raise PayloadFailed(run_name, code, [str(arg) for arg in process.args])
ttlaunch.base.errors.PayloadFailed: payload of run 'r' exited with code 3: python train.py
Error executing job with overrides: ['experiment=x', 'run_name=r']
submitit ERROR (2026-11-23 21:49:50,207) - Submitted job triggered an exception
"""
PAYLOAD = """\
step 1 loss 2.3
Traceback (most recent call last):
  File "train.py", line 9, in <module>
    raise ValueError("lr must be positive")
ValueError: lr must be positive
"""


def test_the_payloads_exception_not_the_wrappers():
    assert failure_reason(PAYLOAD + f"{PAYLOAD_EXIT} 3\n" + WRAPPER) == "payload exited with code 3: ValueError: lr must be positive"
    assert failure_reason(f"{PAYLOAD_EXIT} 137\n" + WRAPPER) == "payload exited with code 137"
    quiet = "loading\nsaving\n" + f"{PAYLOAD_EXIT} 2\n"
    assert failure_reason(quiet) == "payload exited with code 2: saving", "no error line: its last words"
    oom = "step 3\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n" + f"{PAYLOAD_EXIT} 1\n"
    assert failure_reason(oom).endswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")


def test_a_wrapper_failure_before_the_payload_ran_names_the_wrappers_error():
    text = "Traceback (most recent call last):\n  File \"x.py\", line 1\nttlaunch.base.errors.InputError: x.yaml: runs: missing\n"
    assert failure_reason(text) == "ttlaunch.base.errors.InputError: x.yaml: runs: missing"
    assert failure_reason("") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.integers(-300, 300), st.booleans())
def test_any_stderr_gives_one_line_or_nothing(noise, code, marked):
    text = noise + (f"\n{PAYLOAD_EXIT} {code}\n" if marked else "")
    reason = failure_reason(text)
    assert reason is None or ("\n" not in reason and len(reason) <= 340)
    if marked:
        assert reason is not None and reason.startswith(f"payload exited with code {code}")


def test_without_the_wrapper_the_payloads_error_and_slurms_lines_stay():
    killed = f"step 3\n{PAYLOAD_EXIT} 137\n{WRAPPER}slurmstepd: error: Job 7 exceeded memory limit (2000 > 1000), being killed\n"
    assert without_wrapper(killed) == "step 3\nslurmstepd: error: Job 7 exceeded memory limit (2000 > 1000), being killed"
    assert "PayloadFailed" not in without_wrapper(PAYLOAD + f"{PAYLOAD_EXIT} 3\n" + WRAPPER)
    assert without_wrapper(PAYLOAD) == PAYLOAD, "no mark: all of it is the payload's"
