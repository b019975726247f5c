"""Build the demo's assets locally, with no hub access: a tiny Llama as a complete Hugging
Face model dir (safetensors weights, config.json, and a character-level sentencepiece
tokenizer trained here with the files transformers reads it by), a JSON instruction dataset,
and the torchtune LoRA config that uses them. torchtune copies the model dir's other files
into every epoch_N/ it saves, so each checkpoint loads in transformers (and inspect's hf/
provider) as it is.

The demo's story: the base model has learnt to repeat a two-letter word ("Repeat: ab" ->
"ab", trained here for a few seconds), and the sweep's LoRA runs teach it to capitalize one
("Capitalize: ab" -> "AB"). The base answers in lower case, so it scores 0 on the
capitalization of words no run trained on (held_out_prompts); a run with a good learning
rate learns it in a couple of hundred steps.

    python -m ttlaunch.job.demo_assets <dir>

Idempotent and safe when several jobs start at once: the first builds under a file lock,
into a temporary dir renamed into place when complete; the others find it done.
Needs the `torchtune` extra (torch, torchtune, sentencepiece, safetensors).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Any

from filelock import FileLock

CONFIG_NAME = "lora_tiny_llama.yaml"
_COMPLETE_MARKER = ".complete"
# ~140k parameters: trains two short epochs on CPU in seconds.
MODEL_DIMS = dict(
    vocab_size=512, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=64, max_seq_len=256, intermediate_dim=128
)


# Words the demo's task is asked of and no run trains on (held_out_prompts).
HELD_OUT = 20
# The pretraining that teaches the base model to repeat a word: steps of a batch, its lr.
PRETRAIN_STEPS, PRETRAIN_BATCH, PRETRAIN_LR = 600, 16, 3e-3


def _words(seed: int = 0) -> list[str]:
    """Every two-letter word, in an order of their own."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [first + second for first in letters for second in letters]
    random.Random(seed).shuffle(words)
    return words


def prompts(count: int | None = None) -> list[tuple[str, str]]:
    """The demo's training data (all of it, or its first `count` rows), (instruction,
    expected output): 'Capitalize: ab' -> 'AB'."""
    return [(f"Capitalize: {word}", word.upper()) for word in _words()[HELD_OUT:][:count]]


def held_out_prompts(count: int) -> list[tuple[str, str]]:
    """The same task on words no run trained on: what the demo's evaluation asks."""
    return [(f"Capitalize: {word}", word.upper()) for word in _words()[:min(count, HELD_OUT)]]


def write_dataset(path: Path) -> None:
    data = [{"instruction": instruction, "input": "", "output": output} for instruction, output in prompts()]
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def train_tokenizer(prefix: Path) -> Path:
    """A tokenizer whose pieces are single characters (BPE with no room for a merge: the
    character model type is one transformers cannot convert): a word's letters are tokens
    of their own, so what the model learns of one letter serves every word, and torchtune's
    and transformers' tokenizations of a prompt and its answer agree."""
    # sentencepiece loads only where the demo's tokenizer is built.
    import sentencepiece as spm

    corpus = prefix.with_suffix(".txt")
    lines = [f"Capitalize: {word} {word.upper()} Repeat: {word} {word}" for word in _words()]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    characters = set("".join(lines).replace(" ", "")) | {"\u2581"}  # sentencepiece's word boundary
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=3 + 256 + len(characters),  # the special pieces, the bytes, the characters
        model_type="bpe",
        byte_fallback=True,  # any other character still encodes
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    corpus.unlink()
    return prefix.with_suffix(".model")


def write_model(model_dir: Path, tokenizer_path: Path, seed: int = 0) -> None:
    """The base model: a tiny Llama that has learnt to repeat a word (pretrain), saved as
    transformers saves one."""
    # torch loads only where the demo's model is built.
    import torch
    from safetensors.torch import save_file

    # torchtune loads only where the demo's model is built.
    from torchtune.models.convert_weights import tune_to_hf
    from torchtune.models.llama2 import llama2

    torch.manual_seed(seed)
    model = llama2(**MODEL_DIMS)
    pretrain(model, tokenizer_path, seed)
    state = tune_to_hf(
        model.state_dict(),
        num_heads=MODEL_DIMS["num_heads"],
        num_kv_heads=MODEL_DIMS["num_kv_heads"],
        dim=MODEL_DIMS["embed_dim"],
    )
    save_file({key: value.contiguous() for key, value in state.items()}, str(model_dir / "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": MODEL_DIMS["embed_dim"],
        "intermediate_size": MODEL_DIMS["intermediate_dim"],
        "num_attention_heads": MODEL_DIMS["num_heads"],
        "num_key_value_heads": MODEL_DIMS["num_kv_heads"],
        "num_hidden_layers": MODEL_DIMS["num_layers"],
        "vocab_size": MODEL_DIMS["vocab_size"],
        "max_position_embeddings": MODEL_DIMS["max_seq_len"],
        "rms_norm_eps": 1e-5,
        "torch_dtype": "float32",
    }
    (model_dir / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")


def pretrain(model: Any, tokenizer_path: Path, seed: int) -> None:  # a torchtune model: torchtune is untyped
    """Teach the model to repeat every two-letter word, tokenized as torchtune's instruct
    dataset tokenizes the runs' data (the user's message masked, the answer and EOS learnt)."""
    # torch loads only where the demo's model is built.
    import torch

    # torchtune loads only where the demo's model is built.
    from torchtune.data import Message, padded_collate_sft
    from torchtune.models.llama2 import llama2_tokenizer

    tokenizer = llama2_tokenizer(str(tokenizer_path), max_seq_len=MODEL_DIMS["max_seq_len"], prompt_template=None)
    samples = []
    for word in [*_words(), *(word.upper() for word in _words())]:
        messages = [Message("user", f"Repeat: {word}", masked=True), Message("assistant", word)]
        tokens, mask = tokenizer.tokenize_messages(messages)
        samples.append({"tokens": tokens, "labels": [-100 if masked else token for token, masked in zip(tokens, mask)]})
    optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LR, weight_decay=0.01)
    rng = random.Random(seed)
    for _ in range(PRETRAIN_STEPS):
        batch = padded_collate_sft(rng.sample(samples, PRETRAIN_BATCH), padding_idx=0)
        logits = model(batch["tokens"])[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["labels"][:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # torch's backward is untyped
        optimizer.step()


def write_tokenizer_config(model_dir: Path) -> None:
    """What transformers needs beside tokenizer.model to load it (the ids train_tokenizer set),
    and a chat template that joins the messages as torchtune does without a prompt template:
    inspect asks a checkpoint exactly what its run trained on."""
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    config = {
        "tokenizer_class": "LlamaTokenizer", **special, "add_bos_token": True, "add_eos_token": False,
        "legacy": True, "model_max_length": MODEL_DIMS["max_seq_len"],
        "chat_template": "{% for message in messages %}{{ message['content'] }}{% endfor %}",
    }
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (model_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=1), encoding="utf-8")


def torchtune_config(assets: Path) -> str:
    """A LoRA single-device config on CPU; output_dir is set per run by ttlaunch."""
    dims = "\n".join(f"  {key}: {value}" for key, value in MODEL_DIMS.items())
    return f"""\
# Written by ttlaunch.job.demo_assets: LoRA on a tiny random Llama, CPU, fp32.
output_dir: {assets}/unused_output
model:
  _component_: torchtune.models.llama2.lora_llama2
  lora_attn_modules: [q_proj, v_proj]
  apply_lora_to_mlp: false
  apply_lora_to_output: true  # the answer's tokens are not the prompt's: the output layer learns them
{dims}
  lora_rank: 8
  lora_alpha: 16
  lora_dropout: 0.0
tokenizer:
  _component_: torchtune.models.llama2.llama2_tokenizer
  path: {assets}/model/tokenizer.model
  max_seq_len: {MODEL_DIMS["max_seq_len"]}
  prompt_template: null  # the messages joined as they are, as the model's chat template joins them
checkpointer:
  _component_: torchtune.training.FullModelHFCheckpointer
  checkpoint_dir: {assets}/model
  checkpoint_files: [model.safetensors]
  recipe_checkpoint: null
  output_dir: ${{output_dir}}
  model_type: LLAMA2
resume_from_checkpoint: false
save_adapter_weights_only: false
dataset:
  _component_: torchtune.datasets.instruct_dataset
  source: json
  data_files: {assets}/train.json
  column_map: {{input: instruction, output: output}}
  split: train
  packed: false
seed: 0
shuffle: true
batch_size: 2
optimizer:
  _component_: torch.optim.AdamW
  fused: false
  weight_decay: 0.01
  lr: 3.0e-4
lr_scheduler:
  _component_: torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup
  num_warmup_steps: 1
loss:
  _component_: torchtune.modules.loss.CEWithChunkedOutputLoss
epochs: 2
max_steps_per_epoch: 3
gradient_accumulation_steps: 1
clip_grad_norm: null
compile: false
metric_logger:
  _component_: torchtune.training.metric_logging.DiskLogger
  log_dir: ${{output_dir}}/logs
log_every_n_steps: 1
log_peak_memory_stats: false
device: cpu
dtype: fp32
enable_activation_checkpointing: false
enable_activation_offloading: false
profiler:
  _component_: torchtune.training.setup_torch_profiler
  enabled: false
"""


def build(assets: Path) -> Path:
    """Build the assets in `assets` unless they are there; return the config's path."""
    assets = assets.resolve()
    assets.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(assets) + ".lock"):
        if (assets / _COMPLETE_MARKER).exists():
            return assets / CONFIG_NAME
        staging = assets.with_name(assets.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(assets, ignore_errors=True)  # left by a build that died half-way
        staging.mkdir()
        write_dataset(staging / "train.json")
        (staging / "model").mkdir()
        tokenizer = train_tokenizer(staging / "model" / "tokenizer")
        write_model(staging / "model", tokenizer)
        write_tokenizer_config(staging / "model")
        # The config names the final paths, valid once the staging dir is renamed.
        (staging / CONFIG_NAME).write_text(torchtune_config(assets), encoding="utf-8")
        (staging / _COMPLETE_MARKER).touch()
        staging.rename(assets)
    return assets / CONFIG_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="where the assets go (built once)")
    print(build(parser.parse_args().directory))


if __name__ == "__main__":
    main()
