"""Each cause from the real messages that tell it (torch, NCCL, the kernel, SLURM 20 to 24),
and no code error taken for a cluster fault."""

import math

import pytest

from ttlaunch.inputs.failure_causes import CausePattern, FailureCause, classify, error_signature
from ttlaunch.scheduler.states import JobState

TRACEBACK = 'Traceback (most recent call last):\n  File "/opt/venv/lib/python3.11/site-packages/torchtune/_cli/run.py", line 208, in _run_cmd\n    runpy.run_path(...)\n'

GPU_OOM = [
    # torch 2.3 and later
    TRACEBACK + "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB. GPU 0 has a total capacity of 79.10 GiB "
    "of which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.03 GiB memory in use. Of the allocated memory "
    "75.87 GiB is allocated by PyTorch, and 1.50 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory "
    "is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
    "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)",
    # torch 1.13 to 2.2
    TRACEBACK + "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total capacity; "
    "14.65 GiB already allocated; 4.75 MiB free; 14.71 GiB reserved in total by PyTorch) If reserved memory is >> allocated "
    "memory try setting max_split_size_mb to avoid fragmentation.",
    TRACEBACK + "RuntimeError: CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at some other "
    "API call, so the stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1.",
    TRACEBACK + "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    TRACEBACK + "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 63.98 GiB",
    "gpu001:1234:1290 [0] include/alloc.h:48 NCCL WARN Cuda failure 'out of memory'\n"
    "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/NCCLUtils.hpp:275, unhandled cuda error",
]
HOST_OOM = [
    # SLURM enforcing memory by accounting (JobAcctGatherParams=OverMemoryKill), 22.05
    "slurmstepd: error: Job 1234 exceeded memory limit (1056596 > 1048576), being killed\n"
    "slurmstepd: error: Exceeded job memory limit\n",
    # by the cgroup: SLURM 23.02 and 24.05
    "slurmstepd: error: Detected 1 oom_kill event in StepId=5678.batch. Some of the step tasks have been OOM Killed.",
    # by the cgroup: SLURM 20.11 and 21.08
    "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=5678.batch cgroup. Some of your processes may have been "
    "killed by the cgroup out-of-memory handler.",
    "[ 8123.456789] Out of memory: Killed process 41235 (python) total-vm:98765432kB, anon-rss:65432100kB, file-rss:0kB",
    TRACEBACK + "MemoryError",
    TRACEBACK + "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 7.45 GiB for an array with shape (1000000000,) "
    "and data type float64",
]
NODE_FAILURE = [
    "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.",
    "NVRM: Xid (PCI:0000:c1:00): 48, pid=5678, name=python, An uncorrectable double bit error (DBE) has been detected on GPU",
    TRACEBACK + "RuntimeError: CUDA error: uncorrectable ECC error encountered\nCUDA kernel errors might be asynchronously "
    "reported at some other API call, so the stacktrace below might be incorrect.",
    TRACEBACK + "RuntimeError: CUDA error: unspecified launch failure\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
    "slurmstepd: error: *** JOB 1234 ON gpu042 CANCELLED AT 2026-12-07T10:00:00 DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***",
    "srun: error: Node failure on gpu042",
]
COMMUNICATION = [
    "[rank0]:[E1207 10:00:00.123456 1234 ProcessGroupNCCL.cpp:616] [Rank 0] Watchdog caught collective operation timeout: "
    "WorkNCCL(SeqNum=2, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600039 milliseconds before timing out.",
    TRACEBACK + "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, "
    "unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.20.5\nncclSystemError: System call (e.g. "
    "socket, malloc) or external library call failed or device error.",
    TRACEBACK + "RuntimeError: NCCL communicator was aborted on rank 1.  Original reason for failure was: [Rank 1] Watchdog "
    "caught collective operation timeout",
    TRACEBACK + "torch.distributed.DistNetworkError: Connection reset by peer",
    TRACEBACK + "torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError",
]
NUMERICAL = [
    TRACEBACK + "RuntimeError: Function 'LogSoftmaxBackward0' returned nan values in its 0th output.",
    TRACEBACK + "FloatingPointError: Minimum loss scale reached (0.0001). Your loss is probably exploding. Try lowering the "
    "learning rate, using gradient clipping or increasing the batch size.",
]
CODE = [
    TRACEBACK + "KeyError: 'labels'",
    TRACEBACK + "ModuleNotFoundError: No module named 'peft'",
    TRACEBACK + "FileNotFoundError: [Errno 2] No such file or directory: '/project/data/capitalization/train.jsonl'",
    '  File "/project/train.py", line 12\n    def train(cfg)\n                 ^\nSyntaxError: expected \':\'',
    # A device-side assert is the code's (an index out of range on the GPU), not the hardware's.
    TRACEBACK + "RuntimeError: CUDA error: device-side assert triggered\nCUDA kernel errors might be asynchronously reported "
    "at some other API call, so the stacktrace below might be incorrect.",
    TRACEBACK + "omegaconf.errors.ConfigAttributeError: Key 'datset' is not in struct\n    full_key: datset\n    object_type=dict",
    TRACEBACK + "ValueError: lr must be positive, got -0.001",
    TRACEBACK + "torch._dynamo.exc.BackendCompilerFailed: backend='inductor' raised:\nAssertionError: expected size 4==8",
]


@pytest.mark.parametrize(
    ("cause", "messages"),
    [
        (FailureCause.gpu_oom, GPU_OOM), (FailureCause.host_oom, HOST_OOM), (FailureCause.node_failure, NODE_FAILURE),
        (FailureCause.communication, COMMUNICATION), (FailureCause.numerical, NUMERICAL), (FailureCause.code, CODE),
    ],
)
def test_each_message_of_a_failed_job_tells_its_cause(cause, messages):
    for message in messages:
        assert classify(JobState.FAILED, message) is cause, message


def test_no_code_error_is_taken_for_a_fault_of_the_cluster():
    for message in [*CODE, *NUMERICAL]:
        cause = classify(JobState.FAILED, message)
        assert not cause.cluster_fault and cause.code_fault, (message, cause)


def test_the_schedulers_state_tells_the_cause_where_it_can():
    assert classify(JobState.TIMEOUT, "") is FailureCause.time_limit
    assert classify(JobState.NODE_FAIL, TRACEBACK + "KeyError: 'x'") is FailureCause.node_failure
    assert classify(JobState.OUT_OF_MEMORY, "") is FailureCause.host_oom, "SLURM's own OUT_OF_MEMORY"
    assert classify(JobState.CANCELLED, "slurmstepd: error: *** JOB 7 ON node1 CANCELLED AT 2026-12-07T10:00:00 ***") is (
        FailureCause.cancelled
    )
    assert classify(JobState.FAILED, TRACEBACK + "KeyError: 'x'", stopped_by_ttlaunch=True) is FailureCause.cancelled
    assert classify(JobState.FAILED, "ttlaunch: the payload exited with code 139") is FailureCause.unknown


def test_a_loss_that_became_nan_or_infinite_is_numerical_whatever_the_log_says():
    assert classify(JobState.FAILED, TRACEBACK + "ValueError: x", last_loss=math.nan) is FailureCause.numerical
    assert classify(JobState.FAILED, "", last_loss=math.inf) is FailureCause.numerical
    assert classify(JobState.FAILED, "", last_loss=1.5) is FailureCause.unknown


def test_a_users_patterns_come_before_the_table():
    own = [CausePattern(FailureCause.node_failure, r"^ERROR: GPU \d+ health check failed")]
    log = TRACEBACK + "ERROR: GPU 3 health check failed\nRuntimeError: CUDA error: invalid argument"
    assert classify(JobState.FAILED, log, own_patterns=own) is FailureCause.node_failure
    assert classify(JobState.FAILED, log) is FailureCause.code


def test_slurms_warning_that_memory_was_exceeded_at_some_point_is_not_a_kill():
    log = TRACEBACK + "KeyError: 'x'\nslurmstepd: error: Exceeded step memory limit at some point."
    assert classify(JobState.FAILED, log) is FailureCause.code


def test_the_same_bug_in_two_runs_has_one_signature_and_another_bug_another():
    first = TRACEBACK + "FileNotFoundError: [Errno 2] No such file or directory: '/scratch/u1/sweep/r8/data/train.jsonl'"
    second = TRACEBACK + "FileNotFoundError: [Errno 2] No such file or directory: '/scratch/u1/sweep/r16__seed-2/data/train.jsonl'"
    assert error_signature(first) == error_signature(second) == (
        "FileNotFoundError: [Errno <n>] No such file or directory: '<path>'"
    )
    assert error_signature(TRACEBACK + "KeyError: 'labels'") != error_signature(TRACEBACK + "KeyError: 'label'")
    assert error_signature(TRACEBACK + "ValueError: step 12 at 0x7f3a loss 3.5e-2") == "ValueError: step <n> at <hex> loss <n>"
    assert error_signature("ttlaunch: the payload exited with code 139") is None
