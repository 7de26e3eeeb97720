"""Tiny random causal LMs with a locally trained tokenizer, for tests.

Nothing is downloaded: a byte-level BPE tokenizer is trained on a few hundred sentences, a
chat template in the family's own style is attached (ChatML as SmolLM2 and Qwen2 use, Mistral's
[INST], Gemma's turns, which refuse a system role), and a model with a few thousand parameters
is initialised from a seed. Generation from it is gibberish but exercises every code path
(templates, padding, sampling, LoRA, saving) in milliseconds.

    python -m reverie.models.tiny /tmp/tiny-model [llama|qwen2|mistral|gemma]
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


# Qwen2's template: ChatML with a default system turn when the conversation has none.
QWEN2_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    + CHAT_TEMPLATE
)
# Mistral's: a system message is put before the first user turn; the answer ends with </s>.
MISTRAL_TEMPLATE = (
    "{{ '<s>' }}{% set sys = namespace(text='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set sys.text = message['content'] + '\n\n' %}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + sys.text + message['content'] + ' [/INST]' }}"
    "{% set sys.text = '' %}"
    "{% else %}{{ message['content'] + '</s>' }}{% endif %}"
    "{% endfor %}"
)
# Gemma's: user and model turns only; a system message is an error, as in the real template.
GEMMA_TEMPLATE = (
    "{{ '<bos>' }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
FAMILIES = ("llama", "qwen2", "mistral", "gemma")
# family: (chat template, extra special tokens, eos, bos, pad, unk)
_TOKENS = {
    "llama": (CHAT_TEMPLATE, (), "<|im_end|>", "<|im_start|>", "<pad>", "<|endoftext|>"),
    "qwen2": (QWEN2_TEMPLATE, (), "<|im_end|>", None, "<|endoftext|>", None),
    "mistral": (MISTRAL_TEMPLATE, ("<s>", "</s>", "[INST]", "[/INST]"), "</s>", "<s>", "<pad>", "<|endoftext|>"),
    "gemma": (GEMMA_TEMPLATE, ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"), "<end_of_turn>", "<bos>",
              "<pad>", "<|endoftext|>"),
}


def train_tokenizer(vocab_size: int = 512, family: str = "llama"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    template, extra, eos, bos, pad, unk = _TOKENS[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL + list(extra),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    named = {"eos_token": eos, "bos_token": bos, "pad_token": pad, "unk_token": unk}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **{k: v for k, v in named.items() if v is not None})
    fast.chat_template = template
    return fast


def tiny_config(family: str, tokenizer, hidden: int = 32, layers: int = 2):
    """A transformers config of `family` at toy size (4 query heads sharing 2 key/value heads)."""
    import transformers

    shared = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if family == "llama":
        return transformers.LlamaConfig(**shared)
    if family == "qwen2":  # q/k/v with biases; full attention in every layer
        return transformers.Qwen2Config(**shared, use_sliding_window=False)
    if family == "mistral":  # no sliding window: every layer sees the whole context, as Llama
        return transformers.MistralConfig(**shared, sliding_window=None)
    if family == "gemma":  # scaled embeddings, (1 + w) norms, GELU MLP: transformers' generate
        return transformers.GemmaConfig(**shared, hidden_activation="gelu_pytorch_tanh")
    raise ValueError(f"unknown family {family!r} (one of {', '.join(FAMILIES)})")


def make_tiny_model(out_dir: Path | str, seed: int = 0, hidden: int = 32, layers: int = 2,
                    family: str = "llama") -> Path:
    """Write a tiny random model of `family` (FAMILIES) and its tokenizer to `out_dir`; returns the path."""
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(family=family)
    config = tiny_config(family, tokenizer, hidden, layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":
    print(make_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model",
                          family=sys.argv[2] if len(sys.argv) > 2 else "llama"))


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
