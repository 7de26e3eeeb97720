"""Tiny random Llama-architecture models with a locally trained tokenizer, for tests.

Nothing is downloaded: a byte-level BPE tokenizer is trained on a few hundred sentences, a
ChatML chat template (the one SmolLM2 uses) is attached, and a Llama model with a few
thousand parameters is initialised from a seed. Generation from it is gibberish but exercises
every code path (templates, padding, sampling, LoRA, saving) in milliseconds.

    python -m reverie.models.tiny /tmp/tiny-model
"""

from __future__ import annotations

import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]

_CORPUS = """The quick brown fox jumps over the lazy dog. Paris is the capital of France.
Water boils at one hundred degrees Celsius at sea level. The mitochondria is the powerhouse of the cell.
A language model predicts the next token. Sleep helps people consolidate memories of the day.
Tell me a joke about a cat, a dog and a computer. What is the capital of France? Why is the sky blue?
The river flows through the old town, past the market and the cathedral, to the sea.
In 1969 astronauts landed on the Moon; the mission was called Apollo 11. Numbers: 0 1 2 3 4 5 6 7 8 9.
Scientists study entropy, diversity and collapse in generated text. Questions and answers, facts and dreams.
"""


def train_tokenizer(vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_model(out_dir: Path | str, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """Write a tiny random Llama model and tokenizer to `out_dir`; returns the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tokenizer = train_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":
    print(make_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))


def moved_lora(model, cfg, std: float = 0.05, seed: int = 0):
    """A fresh LoRA (settings `cfg`, a SleepConfig) on `model` whose B matrices are random, so
    that it changes the model: an adapter that moved, for tests of what measures one."""
    import torch

    from reverie.models.lora import new_lora

    lora = new_lora(model, cfg)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, std)
    return lora
