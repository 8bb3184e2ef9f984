r"""Small models with known ground truth, shared by the tests."""
import itertools
import math
from typing import Callable

import torch
from torch import Tensor, nn

MASK_ID = 0


class RunningSumClassifier(nn.Module):
    r"""
    A causal classifier whose intermediate predictions are exactly its predictions
    on masked inputs: the hidden state at position t is the sum of the embeddings of
    tokens 1..t, the mask token ``MASK_ID`` embeds to zero, and a nonlinear head
    maps the state to class logits. So ``p_t(x) = f(x'_t)`` where ``x'_t`` masks
    every token after t, for any masking.
    """

    def __init__(self, vocab_size: int = 32, dim: int = 8, n_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embedding = nn.Parameter(torch.randn(vocab_size, dim, generator=generator))
        self.hidden = nn.Parameter(torch.randn(dim, 16, generator=generator))
        self.out = nn.Parameter(torch.randn(16, n_classes, generator=generator))

    def forward(self, input_ids: Tensor, attention_mask: Tensor = None) -> Tensor:
        embeddings = self.embedding[input_ids] * (input_ids != MASK_ID).unsqueeze(-1)
        if attention_mask is not None:
            embeddings = embeddings * attention_mask.unsqueeze(-1)
        state = embeddings.cumsum(dim=1)
        return torch.tanh(state @ self.hidden) @ self.out


def masked_value(
    model: Callable, input_ids: Tensor, feature_of_token: Tensor, coalition: "set[int]",
    target: int, target_type: str = "prob",
) -> float:
    r"""Model's explained value at the final token with features outside ``coalition`` masked."""
    keep = torch.tensor([f < 0 or f in coalition for f in feature_of_token.tolist()])
    masked = torch.where(keep, input_ids, torch.full_like(input_ids, MASK_ID))
    with torch.no_grad():
        logits = model(masked[None])[0, -1].double()
    if target_type == "logit":
        return float(logits[target])
    log_prob = torch.log_softmax(logits, -1)[target]
    return float(log_prob if target_type == "log_prob" else log_prob.exp())


def exact_shapley(value: Callable[["set[int]"], float], n: int) -> Tensor:
    r"""Shapley values by enumerating all 2^n coalitions (Eqn 1), written independently
    of the library."""
    cache = {}
    for size in range(n + 1):
        for subset in itertools.combinations(range(n), size):
            cache[frozenset(subset)] = value(set(subset))
    phi = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        for subset, v in cache.items():
            if i in subset:
                continue
            s = len(subset)
            weight = math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
            phi[i] += weight * (cache[subset | {i}] - v)
    return phi


def tiny_classifier(architecture: str, n_classes: int = 3, seed: int = 0) -> nn.Module:
    r"""A randomly initialised 2-layer decoder-only sequence classifier built from a
    transformers config (no hub access), in eval mode, with a pad token."""
    import transformers

    common = dict(vocab_size=64, num_labels=n_classes, pad_token_id=0)
    configs = {
        "gpt2": ("GPT2Config", "GPT2ForSequenceClassification",
                 dict(n_layer=2, n_embd=32, n_head=2, n_positions=128, bos_token_id=1, eos_token_id=2)),
        "llama": ("LlamaConfig", "LlamaForSequenceClassification",
                  dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)),
        "mistral": ("MistralConfig", "MistralForSequenceClassification",
                    dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         sliding_window=None)),
        "qwen2": ("Qwen2Config", "Qwen2ForSequenceClassification",
                  dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)),
        "gemma3": ("Gemma3TextConfig", "Gemma3TextForSequenceClassification",
                   dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                        max_position_embeddings=128, sliding_window=16)),
        "opt": ("OPTConfig", "OPTForSequenceClassification",
                dict(num_hidden_layers=2, hidden_size=32, ffn_dim=64, num_attention_heads=4,
                     word_embed_proj_dim=32, max_position_embeddings=128)),
        "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForSequenceClassification",
                     dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                          num_attention_heads=4, max_position_embeddings=128)),
        "phi": ("PhiConfig", "PhiForSequenceClassification",
                dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                     num_attention_heads=4, max_position_embeddings=128)),
    }
    config_name, model_name, kwargs = configs[architecture]
    config = getattr(transformers, config_name)(**common, **kwargs)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config)
    return model.eval()


ARCHITECTURES = ("gpt2", "llama", "mistral", "qwen2", "gemma3", "opt", "gpt_neox", "phi")


def deleted_ids(input_ids: Tensor, feature_of_token: Tensor, coalition: "set[int]") -> Tensor:
    r"""The row with every token of a feature outside ``coalition`` removed (the deletion
    game), built by hand: fixed (-1) tokens and active features keep their order."""
    keep = [f < 0 or f in coalition for f in feature_of_token.tolist()]
    return input_ids[torch.tensor(keep)]


def hf_value(model: nn.Module, ids: Tensor, target: int, target_type: str = "prob") -> float:
    r"""The explained value of a Hugging Face classifier on one unpadded row, from the
    model's own pooled ``logits`` (a separate call, no library code)."""
    with torch.no_grad():
        logits = model(input_ids=ids[None]).logits[0].double()
    if target_type == "logit":
        return float(logits[target])
    log_prob = torch.log_softmax(logits, -1)[target]
    return float(log_prob if target_type == "log_prob" else log_prob.exp())
