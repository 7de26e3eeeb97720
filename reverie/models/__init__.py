"""Models: load a causal LM (default SmolLM2-135M-Instruct, a HF directory, or a GGUF file) and
generate with it through a small backend interface.

    loaded = load_model("default", home)                 # LoadedModel(model, tokenizer, identity, path)
    backend = TransformersBackend(loaded, batch_size=8)
    backend.generate([[{"role": "user", "content": "Hi"}]], SamplingParams(temperature=0.7, seed=1))
"""

from reverie.models.backend import Backend, Generation, SamplingParams, TransformersBackend
from reverie.models.loading import LoadedModel, load_model, model_identity, resolve_model_path

__all__ = [
    "Backend",
    "Generation",
    "LoadedModel",
    "SamplingParams",
    "TransformersBackend",
    "load_model",
    "model_identity",
    "resolve_model_path",
]
