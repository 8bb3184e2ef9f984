r"""Small text models and a fast tokenizer built offline, shared by the text, wrapper,
visualization and CLI tests (no hub, no download)."""
from functools import lru_cache

import torch
from torch import Tensor

CORPUS = [
    "This drug works great... I love it!",
    "Dr. Smith said it costs $3.50 per pill, e.g. in the U.S. market.",
    "Terrible side effects: nausea, headache and dizziness.",
    "Ünïcödé café naïve 😀 emoji and 中文 text.",
    "It was ok. Not great. Not bad... \"Really?\" she asked.",
    "[Assertion]: The review is positive. [Document]: Sentiment: Review:",
]
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


@lru_cache(maxsize=1)
def tiny_tokenizer():
    r"""A byte-level BPE fast tokenizer (GPT-2 style: leading-space tokens, emoji
    split into byte pieces) with a BOS token added in front, pad id 0, and "..."
    as one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=["<pad>", "<bos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 20, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", 1)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", pad_token="<pad>")


def tiny_gpt2_classifier(vocab_size: int, n_positions: int = 128, seed: int = 0):
    r"""A random 2-layer GPT-2 sequence classifier with 3 named classes."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    config = GPT2Config(
        vocab_size=vocab_size, n_layer=2, n_embd=32, n_head=2, n_positions=n_positions,
        num_labels=3, pad_token_id=0, bos_token_id=1, eos_token_id=1,
        id2label=dict(LABELS), label2id={v: k for k, v in LABELS.items()},
    )
    torch.manual_seed(seed)
    return GPT2ForSequenceClassification(config).eval()


class AdditiveTextModel(torch.nn.Module):
    r"""
    Per-position logits that add up token contributions: ``logits[t] = sum_{s<=t}
    W[ids[s]]``, with the mask token contributing 0. The logit of any class at the
    final token is additive over features, so the attribution of a feature under
    ``target_type="logit"`` is, for every method that is exact on additive games
    (Shapley values, ablation, linear regressions, SP-PI, MP-PI), the sum of
    ``W[token, target]`` over its tokens.
    """

    def __init__(self, vocab_size: int, mask_id: int, n_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        weights = torch.randn(vocab_size, n_classes, generator=generator, dtype=torch.float64)
        weights[mask_id] = 0.0
        self.weights = torch.nn.Parameter(weights, requires_grad=False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor = None) -> Tensor:
        contributions = self.weights[input_ids]
        if attention_mask is not None:
            contributions = contributions * attention_mask.unsqueeze(-1)
        return contributions.cumsum(dim=1)

    def feature_logit_contributions(self, input_ids: Tensor, feature_mask: Tensor, target: int) -> Tensor:
        r"""Closed-form attribution of every feature for ``target_type="logit"``."""
        ids, features = input_ids.reshape(-1), feature_mask.reshape(-1)
        n = int(features.max()) + 1
        out = torch.zeros(n, dtype=torch.float64)
        for token, feature in zip(ids.tolist(), features.tolist()):
            if feature >= 0:
                out[feature] += self.weights[token, target]
        return out
