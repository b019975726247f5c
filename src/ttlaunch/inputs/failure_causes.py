"""Why a job ended without completing: one cause per end, from its state and its log.

The scheduler's state says it where it can (a time limit, a node failure, SLURM's own memory
kill, a cancel); otherwise the end of the job's log does, through one table of patterns in
the order below, a user's own (`remediation.patterns`) checked first. Pure: text in, a
cause out; the monitor reads the logs and records the cause (ttlaunch.monitor.state_changes).

The order matters where one failure prints several messages: memory before the exception
that carries it (torch.OutOfMemoryError is an exception), hardware and interconnect before
the generic exception line of the code (DistBackendError is one too).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

from ttlaunch.scheduler.states import JobState


class FailureCause(str, Enum):
    """Why a job ended without completing (jobs.json's `cause`, a rule's `state:` word).
    Members are named by their words: OmegaConf reads an Enum setting by member name."""

    gpu_oom = "gpu_oom"  # the GPU ran out of memory (CUDA/HIP out of memory)
    host_oom = "host_oom"  # the node's memory: SLURM's or the kernel's kill, Python's MemoryError
    node_failure = "node_failure"  # the node or its GPU broke (NODE_FAIL, Xid, ECC)
    communication = "communication"  # NCCL, c10d: the collective or its rendezvous failed
    preempted = "preempted"
    time_limit = "time_limit"
    cancelled = "cancelled"  # by a person, or by ttlaunch (a rule, the early stop)
    numerical = "numerical"  # the loss became NaN or infinite
    code = "code"  # an exception raised by the payload or the task function
    unknown = "unknown"

    @property
    def cluster_fault(self) -> bool:
        """The cluster broke it, not the run's code: the same run may well succeed again."""
        return self in _CLUSTER_FAULTS

    @property
    def code_fault(self) -> bool:
        """The run's code or its settings broke it: running it again fails again."""
        return self in (FailureCause.code, FailureCause.numerical)


_CLUSTER_FAULTS = {FailureCause.gpu_oom, FailureCause.host_oom, FailureCause.node_failure, FailureCause.communication}

# The scheduler's own word for the end, where it says why.
_BY_STATE = {
    JobState.TIMEOUT: FailureCause.time_limit,
    JobState.PREEMPTED: FailureCause.preempted,
    JobState.NODE_FAIL: FailureCause.node_failure,
    JobState.OUT_OF_MEMORY: FailureCause.host_oom,
    JobState.CANCELLED: FailureCause.cancelled,
}


@dataclass(frozen=True)
class CausePattern:
    """A message that tells a cause: a regular expression searched in the end of a job's log
    (multi-line: ^ and $ match at each line)."""

    cause: FailureCause
    pattern: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # re.error for a pattern that is none (the config reader names the field)
        object.__setattr__(self, "regex", re.compile(self.pattern, re.M))


def _table(cause: FailureCause, *patterns: str) -> list[CausePattern]:
    return [CausePattern(cause, pattern) for pattern in patterns]


# The built-in table, in the order it is searched. Each line is a message torch, NCCL, the
# kernel or SLURM (22 to 24) prints; tests/inputs/test_failure_causes.py holds them whole.
PATTERNS: tuple[CausePattern, ...] = (
    *_table(
        FailureCause.gpu_oom,
        r"(CUDA|HIP) out of memory",  # torch.OutOfMemoryError (2.x), torch.cuda.OutOfMemoryError (1.x)
        r"CUDA error: out of memory",
        r"CUBLAS_STATUS_ALLOC_FAILED",
        r"Cuda failure 'out of memory'",  # NCCL's own CUDA call
    ),
    *_table(
        FailureCause.host_oom,
        r"exceeded memory limit \(\d+ > \d+\), being killed",  # slurmstepd, memory enforced by accounting
        r"Exceeded (job|step) memory limit(?! at some point)",  # that one is a warning: the job went on
        r"oom[-_]kill event",  # slurmstepd, memory enforced by the cgroup
        r"OOM Killed",
        r"Out of memory: Kill(ed)? process",  # the kernel
        r"^(\w+\.)*\w*MemoryError\b",  # Python's own, numpy's
    ),
    *_table(
        FailureCause.node_failure,
        r"\bXid\b.*?: \d+",  # NVRM: Xid (PCI:0000:3b:00): 79, ... GPU has fallen off the bus
        r"fallen off the bus",
        r"uncorrectable ECC error",
        r"ECC error",
        r"unspecified launch failure",
        r"GPU is lost",
        r"DUE TO NODE FAILURE",  # slurmstepd's cancel line
        r"srun: error: Node failure",
    ),
    *_table(
        FailureCause.communication,
        r"Watchdog caught collective operation timeout",
        r"NCCL error",
        r"nccl(Internal|System|Remote)Error",
        r"NCCL communicator was aborted",
        r"NCCL WARN .*(timeout|Timeout|Connection|socket)",
        r"(DistNetworkError|DistStoreError|RendezvousTimeoutError|RendezvousConnectionError)",
        r"c10d.*(timed out|Connection reset|Connection refused|Broken pipe)",
    ),
    *_table(
        FailureCause.preempted,
        r"DUE TO PREEMPTION",
    ),
    *_table(
        FailureCause.time_limit,
        r"DUE TO TIME LIMIT",
    ),
    *_table(
        FailureCause.numerical,
        r"(?i)\bloss\b[^\n]{0,40}\b(is|became|=|:)\s*[-+]?(nan|inf)\b",
        r"returned nan values in its \d+(st|nd|rd|th) output",  # torch.autograd's anomaly mode
        r"(?i)non-finite loss",
        r"FloatingPointError",
    ),
    *_table(
        FailureCause.code,
        r"^Traceback \(most recent call last\):",
        r"^(\w+\.)*\w*(Error|Exception)(: |$)",
    ),
)


def classify(
    state: JobState, log_tail: str, stopped_by_ttlaunch: bool = False, last_loss: float | None = None,
    own_patterns: Sequence[CausePattern] = (),
) -> FailureCause:
    """The cause of an end that was not COMPLETED: the scheduler's state where it tells
    (a cancel by ttlaunch is one too), else a non-finite last loss, else the first pattern
    (the user's, then the table's) found in the end of the job's log; `unknown` otherwise."""
    if stopped_by_ttlaunch:
        return FailureCause.cancelled
    by_state = _BY_STATE.get(state)
    if by_state is not None:
        return by_state
    if last_loss is not None and not math.isfinite(last_loss):
        return FailureCause.numerical
    for pattern in (*own_patterns, *PATTERNS):
        if pattern.regex.search(log_tail):
            return pattern.cause
    return FailureCause.unknown


# An exception's last line: `KeyError: 'labels'`, `torch.OutOfMemoryError: CUDA out of ...`.
_EXCEPTION_LINE = re.compile(r"^((?:\w+\.)*\w*(?:Error|Exception|Interrupt|Exit))(?::\s*(.*))?$", re.M)
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[^\s'\",:()\[\]]+)+")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def error_signature(payload_text: str) -> str | None:
    """The error a run died of, as one line that is the same wherever the same bug struck:
    the last exception's type and message, its paths, addresses and numbers normalised
    (`FileNotFoundError: [Errno <n>] No such file or directory: '<path>'`); None without one."""
    found = list(_EXCEPTION_LINE.finditer(payload_text))
    if not found:
        return None
    kind, message = found[-1].group(1), (found[-1].group(2) or "").strip()
    message = _NUMBER.sub("<n>", _HEX.sub("<hex>", _PATH.sub("<path>", message)))
    return f"{kind}: {message}" if message else kind
