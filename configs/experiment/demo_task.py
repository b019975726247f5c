"""The demo's evaluation: capitalize words no run trained on, asked of a checkpoint (or of
the base model) with inspect-ai (`inspect eval demo_task.py@capitalize --model hf/<dir>`).
An answer counts only when it is the word in capitals, exactly: the base model, which
repeats the word as it is, scores 0."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match
from inspect_ai.solver import generate

from ttlaunch.job.demo_assets import held_out_prompts


@task
def capitalize(samples: int = 20) -> Task:
    dataset = [Sample(input=instruction, target=output) for instruction, output in held_out_prompts(int(samples))]
    return Task(dataset=dataset, solver=[generate()], scorer=match(location="exact", ignore_case=False))
