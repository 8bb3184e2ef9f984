import pytest

from captum_pi.encoding import encode_texts
from tiny_bundles import PREFIX, tiny_tokenizer


def test_encode_texts_prefix_and_right_padding():
    tokenizer = tiny_tokenizer()
    batch = encode_texts(tokenizer, ["good drug", "bad"], prefix=PREFIX)
    prefix_ids = tokenizer(PREFIX, add_special_tokens=False)["input_ids"]
    assert batch["input_ids"].shape == (2, len(prefix_ids) + 2)
    assert batch["input_ids"][:, : len(prefix_ids)].tolist() == [prefix_ids, prefix_ids]
    assert batch["attention_mask"].tolist()[1][-1] == 0
    assert batch["input_ids"][1, -1].item() == tokenizer.pad_token_id
    assert encode_texts(tokenizer, "good")["input_ids"].shape == (1, 1)
    with pytest.raises(TypeError, match="texts must be strings"):
        encode_texts(tokenizer, ["good", 3])
