"""Output recorded from real tools, for the parser tests: SLURM 22.05 on the project's test
cluster (squeue, sacct, sacct -D, seff), nvidia-smi on a two-GPU node."""

from ttlaunch.job.gpu_sampler import HEADER

# `squeue -h -O 'JobID:|,State:|,RestartCnt:|,Name:'`; the last name holds the separator.
SQUEUE = """\
5|RUNNING|0|long_name_run
6|PENDING|1|rank8_lr1e-5
7|COMPLETING|0|rank16_lr1e-5
8|RUNNING|0|a|name|with|bars
"""

# `sacct -X -P -n --format=JobID,JobName,State,ExitCode,Submit,Start,End,Elapsed`
SACCT = """\
1|wrap|COMPLETED|0:0|2026-11-22T23:31:38|2026-11-22T23:31:39|2026-11-22T23:31:41|00:00:02
3|wrap|CANCELLED by 0|0:0|2026-11-22T23:31:46|2026-11-22T23:31:46|2026-11-22T23:31:49|00:00:03
4|failing|FAILED|3:0|2026-11-22T23:34:00|2026-11-22T23:34:01|2026-11-22T23:34:01|00:00:00
4.batch|batch|FAILED|3:0|2026-11-22T23:34:01|2026-11-22T23:34:01|2026-11-22T23:34:01|00:00:00
5|long_name_run|RUNNING|0:0|2026-11-22T23:34:00|2026-11-22T23:34:01|Unknown|00:00:03
8|slow|TIMEOUT|0:0|2026-11-22T23:40:00|2026-11-22T23:40:01|2026-11-22T23:41:15|00:01:14
9|big|OUT_OF_MEMORY|0:125|2026-11-22T23:40:00|2026-11-22T23:40:01|2026-11-22T23:40:09|00:00:08
"""

# `sacct -D` of a job requeued once by `scontrol requeue`, running again.
HISTORY = """\
361|wrap|REQUEUED|0:0|2026-11-23T01:08:35|2026-11-23T01:08:37|2026-11-23T01:08:39|00:00:02
361.batch|batch|CANCELLED|0:15|2026-11-23T01:08:37|2026-11-23T01:08:37|2026-11-23T01:08:39|00:00:02
361|wrap|RUNNING|0:0|2026-11-23T01:08:35|2026-11-23T01:08:51|Unknown|00:00:04
"""

# `seff` of a completed job, and of one that ended before any sample was taken.
SEFF_COMPLETED = """\
Job ID: 28
Cluster: ttlaunch
User/Group: root/root
State: COMPLETED (exit code 0)
Nodes: 1
Cores per node: 2
CPU Utilized: 00:00:06
CPU Efficiency: 50.00% of 00:00:12 core-walltime
Job Wall-clock time: 00:00:06
Memory Utilized: 214.49 MB
Memory Efficiency: 42.90% of 500.00 MB
"""

SEFF_NO_SAMPLES = """\
Job ID: 29
Cluster: ttlaunch
User/Group: root/root
State: FAILED (exit code 2)
Cores: 1
CPU Utilized: 00:00:00
CPU Efficiency: 0.00% of 00:00:00 core-walltime
Job Wall-clock time: 00:00:00
Memory Utilized: 0.00 MB (estimated maximum)
Memory Efficiency: 0.00% of 1000.00 MB (1000.00 MB/core)
"""

# seff of a job that ended a moment before (the test cluster, sbatch --mem=1G --wrap true):
# slurmdbd has its state but not yet what it asked for; half a second later: "of 1.00 GB".
SEFF_ACCOUNTING_LAGS = """\
Job ID: 11429
Cluster: ttlaunch
User/Group: root/root
State: COMPLETED (exit code 0)
Cores: 1
CPU Utilized: 00:00:00
CPU Efficiency: 0.00% of 00:00:00 core-walltime
Job Wall-clock time: 00:00:00
Memory Utilized: 0.00 MB (estimated maximum)
Memory Efficiency: 0.00% of 0.00 MB (0.00 MB/node)
"""

# `sacct -P -n --format=JobID,Elapsed,Timelimit,TotalCPU,AllocCPUS,ReqMem,MaxRSS` of job 28.
USAGE = """\
28|00:00:06|00:10:00|00:06.238|2|500M|
28.batch|00:00:06||00:06.238|2||219636K
"""

# Our header, then `nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used,memory.total
# --format=csv,noheader,nounits -l 30` on a two-GPU node: two samples.
TWO_GPU_SAMPLES = HEADER + """
2026/11/23 10:00:00.000, 0, 10, 1024, 81920
2026/11/23 10:00:00.000, 1, 0, 0, 81920
2026/11/23 10:00:30.000, 0, 95, 30720, 81920
2026/11/23 10:00:30.000, 1, 25, 10240, 81920
"""
