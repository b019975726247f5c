"""A small PyTorch DDP training on CPU (gloo), started by torchrun: each rank trains a
linear model on its shard of a fixed dataset, and writes what it ended with.

    ddp_train.py OUT_DIR [--fail-rank R]

Every rank writes OUT_DIR/rank<R>.json: world size, steps, final loss and a checksum of the
weights (equal on all ranks when DDP kept them in sync).
"""

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--fail-rank", type=int, default=None)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank == args.fail_rank:
        raise SystemExit(f"rank {rank}: failing on purpose")
    torch.manual_seed(0)
    inputs = torch.randn(64, 8)
    targets = inputs @ torch.arange(1.0, 9.0) + 0.5
    shard = slice(rank, None, world)
    model = DistributedDataParallel(torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    steps = 50
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs[shard]).squeeze(1), targets[shard])
        loss.backward()
        optimizer.step()
    checksum = float(sum(parameter.detach().sum() for parameter in model.parameters()))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    result = {"rank": rank, "world_size": world, "steps": steps, "loss": float(loss.detach()), "checksum": checksum,
              "node_rank": int(os.environ.get("GROUP_RANK", -1))}
    (args.out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    # Leave together, then at once: with torch 2.13 on CPU, gloo's teardown at interpreter exit
    # sometimes aborts a rank ("terminate called without an active exception", SIGABRT)
    # after it finished, and torchrun then fails the node. The results are written: skip it.
    dist.barrier()
    os._exit(0)


if __name__ == "__main__":
    main()
