"""The demo's evaluation: a handful of the demo's own prompts, asked of a checkpoint with
inspect-ai (`inspect eval demo_task.py@capitalize --model hf/<checkpoint>`)."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate

from ttlaunch.job.demo_assets import prompts


@task
def capitalize(samples: int = 4) -> Task:
    dataset = [Sample(input=instruction, target=output) for instruction, output in prompts(int(samples))]
    return Task(dataset=dataset, solver=[generate()], scorer=includes())
