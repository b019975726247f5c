"""Build the demo's assets locally, with no hub access: a tiny random Llama as a complete
Hugging Face model dir (safetensors weights, config.json, and a sentencepiece tokenizer
trained here with the files transformers reads it by), a JSON instruction dataset, and the
torchtune LoRA config that uses them. torchtune copies the model dir's other files into
every epoch_N/ it saves, so each checkpoint loads in transformers (and inspect's hf/ provider)
as it is.

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

from filelock import FileLock

CONFIG_NAME = "lora_tiny_llama.yaml"
_COMPLETE_MARKER = ".complete"
# ~140k parameters: trains two short epochs on CPU in seconds.
MODEL_DIMS = dict(
    vocab_size=512, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=64, max_seq_len=256, intermediate_dim=128
)


def _words(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(4)) for _ in range(count)]


def prompts(count: int) -> list[tuple[str, str]]:
    """The demo's task, (instruction, expected output): 'Capitalize: abcd' -> 'ABCD'. The
    dataset trains on them; the demo's evaluation task asks the first few."""
    return [(f"Capitalize: {word}", word.upper()) for word in _words(count)]


def write_dataset(path: Path, rows: int = 64) -> None:
    data = [{"instruction": instruction, "input": "", "output": output} for instruction, output in prompts(rows)]
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def train_tokenizer(corpus_words: list[str], prefix: Path) -> Path:
    # sentencepiece loads only where the demo's tokenizer is built.
    import sentencepiece as spm

    corpus = prefix.with_suffix(".txt")
    lines = [f"Capitalize: {word} {word.upper()}" for word in corpus_words]
    corpus.write_text("\n".join(lines * 4) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=MODEL_DIMS["vocab_size"],
        model_type="bpe",
        byte_fallback=True,  # needs a vocab of at least ~282 pieces
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    corpus.unlink()
    return prefix.with_suffix(".model")


def write_model(model_dir: Path, seed: int = 0) -> None:
    # torch loads only where the demo's model is built.
    import torch
    from safetensors.torch import save_file

    # torchtune loads only where the demo's model is built.
    from torchtune.models.convert_weights import tune_to_hf
    from torchtune.models.llama2 import llama2

    torch.manual_seed(seed)
    model = llama2(**MODEL_DIMS)
    state = tune_to_hf(
        model.state_dict(),
        num_heads=MODEL_DIMS["num_heads"],
        num_kv_heads=MODEL_DIMS["num_kv_heads"],
        dim=MODEL_DIMS["embed_dim"],
    )
    model_dir.mkdir(parents=True)
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


def write_tokenizer_config(model_dir: Path) -> None:
    """What transformers needs beside tokenizer.model to load it (the ids train_tokenizer set)."""
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    config = {
        "tokenizer_class": "LlamaTokenizer", **special, "add_bos_token": True, "add_eos_token": False,
        "legacy": True, "model_max_length": MODEL_DIMS["max_seq_len"],
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
  apply_lora_to_output: false
{dims}
  lora_rank: 8
  lora_alpha: 16
  lora_dropout: 0.0
tokenizer:
  _component_: torchtune.models.llama2.llama2_tokenizer
  path: {assets}/model/tokenizer.model
  max_seq_len: {MODEL_DIMS["max_seq_len"]}
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
        write_model(staging / "model")
        train_tokenizer(_words(64), staging / "model" / "tokenizer")
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
