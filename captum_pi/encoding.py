r"""
How a text becomes the input of an offline classifier: the prompt prefix's tokens,
then the text's tokens, right padded; and the small batching helpers shared by the
loaders, the head training and the LoRA recipe.
"""
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from captum_pi.progress import tqdm


def prefix_token_ids(tokenizer: Any, prefix: str) -> List[int]:
    r"""
    Token ids of a prompt prefix, with the tokenizer's special start tokens
    (Gemma's ``<bos>``; SmolLM2's tokenizer adds none).

    Args:
        tokenizer (PreTrainedTokenizerBase): The tokenizer.
        prefix (str): The prefix text, possibly ``""``.

    Returns:
        list[int]: The ids.
    """
    return list(tokenizer(prefix, add_special_tokens=True)["input_ids"])


def encode_texts(
    tokenizer: Any,
    texts: Union[str, Sequence[str]],
    prefix: str = "",
    max_length: Optional[int] = None,
) -> Dict[str, Tensor]:
    r"""
    Tokenizes texts after a prompt prefix and right-pads them.

    The prefix and each text are tokenized separately and concatenated, so the
    prefix always has the same tokens and a text has the same tokens as on
    its own (end the prefix with a newline to keep this equal to tokenizing
    the joined string).

    Args:
        tokenizer (PreTrainedTokenizerBase): Tokenizer with a pad token.
        texts (str or Sequence[str]): One text or a list of texts.
        prefix (str, optional): Prompt text put before every text. Default: ``""``
        max_length (int, optional): If given, text tokens beyond this total
                    length are cut off (from the end). Default: None

    Returns:
        dict: ``input_ids`` and ``attention_mask``, LongTensors ``[B, T]``.

    Examples::

        >>> batch = encode_texts(tokenizer, ["Great.", "Did not help at all."], "Review:\n")
        >>> batch["input_ids"].shape
        torch.Size([2, 8])
    """
    texts = as_text_list(texts)
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "The tokenizer has no pad token; set tokenizer.pad_token (e.g. to its EOS "
            "token) before encoding batches."
        )
    head = prefix_token_ids(tokenizer, prefix)
    rows = [head + list(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    if max_length is not None:
        rows = [row[:max_length] for row in rows]
    return _pad_right(rows, int(tokenizer.pad_token_id))


def _pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> Dict[str, Tensor]:
    width = max((len(row) for row in rows), default=0)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def as_text_list(texts: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be strings, got elements of type {sorted(set(bad))}.")
    return texts


def progress_batches(items: Sequence[Any], batch_size: int, progress: bool, desc: str):
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, unit="batch"):
        yield items[start : start + batch_size]


def model_device(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")

