"""`pruning=halving`'s settings, checked at launch against what the sweep trains and evaluates:
one error naming the group and the field."""

import pytest

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.launch_inputs import read_pruning
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import EvaluationConfig, RungUnit
from ttlaunch.inputs.summary import parse_experiment

SUMMARY = {
    "experiment": {"name": "x"},
    "controls": {"epochs": 3},
    "runs": [{"name": "a", "type": "fine-tuned"}, {"name": "b", "type": "fine-tuned"}],
    "evaluation": {
        "tasks": [{"name": "cap"}],
        "matrix": [{"run": "a", "tasks": ["cap"], "epochs": [0, 1]}, {"run": "b", "tasks": ["cap"], "epochs": [0]}],
    },
}
EXPERIMENT = parse_experiment(SUMMARY, "summary.yaml")


def pruning(**settings):
    return read_pruning({"enabled": True, **settings}, "pruning=halving", EXPERIMENT, EvaluationConfig(), PayloadKind.torchtune)


def test_the_defaults_and_a_score_the_matrix_has_at_every_rung_are_read():
    assert pruning().rungs == [1, 2] and pruning().minimizes
    scored = pruning(metric="cap/match", rungs=[1])
    assert scored.metric == "cap/match" and not scored.minimizes and scored.unit is RungUnit.epochs


@pytest.mark.parametrize(
    "settings, parameters, field, words",
    [
        ({"rungs": [2, 1]}, {}, "pruning.rungs", "expected rising whole numbers of epochs"),
        ({"rungs": [1, 3]}, {}, "pruning.rungs", "rung 3 is not before the last epoch of run a (3 epochs)"),
        ({"rungs": [1, 2]}, {"epochs": 2}, "pruning.rungs", "rung 2 is not before the last epoch of run a (2 epochs)"),
        ({"eta": 1}, {}, "pruning.eta", "expected at least 2"),
        ({"metric": "cap"}, {}, "pruning.metric", "expected loss or <task>/<scorer>"),
        ({"metric": "other/match"}, {}, "pruning.metric", "has no evaluation task 'other' (it has: cap)"),
        ({"metric": "cap/match"}, {}, "pruning.metric", "does not evaluate cap at every rung (rung N is epoch N-1): missing b epoch 1"),
    ],
)
def test_a_setting_the_sweep_cannot_honour_is_one_error_naming_it(settings, parameters, field, words):
    with pytest.raises(InputError) as caught:
        read_pruning(
            {"enabled": True, **settings}, "pruning=halving", EXPERIMENT, EvaluationConfig(), PayloadKind.torchtune, parameters,
        )
    message = str(caught.value)
    assert "pruning=halving" in message and field in message and words in message, message


def test_epoch_rungs_need_a_payload_that_saves_epochs_and_a_score_needs_evaluations():
    with pytest.raises(InputError, match="pruning.unit.*payload that saves epochs"):
        read_pruning({"enabled": True}, "pruning=halving", EXPERIMENT, EvaluationConfig(), PayloadKind.command)
    steps = read_pruning(
        {"enabled": True, "unit": "steps", "rungs": [100]}, "pruning=halving", EXPERIMENT, EvaluationConfig(), PayloadKind.command,
    )
    assert steps.unit is RungUnit.steps
    with pytest.raises(InputError, match="evaluation.enabled=false"):
        read_pruning({"enabled": True, "metric": "cap/match", "rungs": [1]}, "pruning=halving", EXPERIMENT,
                     EvaluationConfig(enabled=False), PayloadKind.torchtune)
