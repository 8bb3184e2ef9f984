r"""A word-level tokenizer and a 1-layer Llama classifier bundle over a ten-review
toy vocabulary, for the loading, head and encoding tests."""
import torch

from captum_pi.models import ClassifierBundle

POSITIVE = ["good drug", "great relief", "works great", "good relief good", "great good"]
NEGATIVE = ["bad drug", "awful pain", "made it worse", "bad awful pain", "worse bad"]
PREFIX = "review :"


def tiny_tokenizer():
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for text in POSITIVE + NEGATIVE + [PREFIX, "new"] for w in text.split()})
    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2}
    vocab.update({w: i + 3 for i, w in enumerate(words)})
    backend = Tokenizer(tok_models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]"
    )


def tiny_llama_bundle(num_labels=2, seed=0):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id, max_position_embeddings=64,
    )
    model = LlamaForSequenceClassification(config).eval()
    return ClassifierBundle(model=model, tokenizer=tokenizer, prefix=PREFIX, model_id="tiny-llama")


def hooked_per_position(model, batch):
    captured = []
    handle = model.score.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        pooled = model(**batch).logits
    finally:
        handle.remove()
    return captured[0], pooled
