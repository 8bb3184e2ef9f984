import pytest
import torch

from captum_pi._core.masking import Masking, concat_masked, resolve_masking, with_fully_masked_rows
from captum_pi._core.progressive import build_feature_layouts

IDS = torch.arange(1, 9)[None]  # tokens 1..8
FEATURES = torch.tensor([[-1, 0, 0, 1, 2, 2, -1, 3]])  # BOS, 4 features, a fixed token between


def _layout():
    return build_feature_layouts(IDS, FEATURES)[0]


def test_replace_keeps_the_length_and_writes_the_mask_token():
    active = torch.tensor([[True, False, True, False], [False, True, False, True]])
    masked = Masking("replace", 99).apply(IDS[0], _layout(), active)
    assert masked.input_ids.tolist() == [[1, 2, 3, 99, 5, 6, 7, 99], [1, 99, 99, 4, 99, 99, 7, 8]]
    assert masked.attention_mask.all() and masked.final.tolist() == [7, 7]
    assert masked.feature_ends.tolist() == [[2, 3, 5, 7]] * 2


def test_delete_packs_kept_tokens_left_and_tracks_where_features_end():
    active = torch.tensor([[True, False, True, False], [False, True, False, True], [False] * 4])
    masked = Masking("delete", None).apply(IDS[0], _layout(), active)
    assert masked.input_ids.tolist() == [[1, 2, 3, 5, 6, 7], [1, 4, 7, 8, 0, 0], [1, 7, 0, 0, 0, 0]]
    assert masked.attention_mask.tolist() == [[1] * 6, [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]]
    assert masked.final.tolist() == [5, 3, 1]
    # active features end where their last token went; inactive ones at the last kept token
    assert masked.feature_ends[0, [0, 2]].tolist() == [2, 4]
    assert masked.feature_ends[1, [1, 3]].tolist() == [1, 3]
    sliced = masked[1:3]
    assert sliced.input_ids.shape == (2, 4) and sliced.final.tolist() == [3, 1]


def test_an_empty_deleted_input_is_the_given_token_or_a_clear_error():
    no_fixed = build_feature_layouts(IDS[:, :3], torch.tensor([[0, 1, 1]]))[0]
    nobody = torch.zeros(1, 2, dtype=torch.bool)
    empty = Masking("delete", 50).apply(IDS[0], no_fixed, nobody)
    assert empty.input_ids.tolist() == [[50]] and empty.final.tolist() == [0]
    with pytest.raises(ValueError, match="deleting every feature leaves an empty input"):
        Masking("delete", None).check_layouts([no_fixed], "SomeMethod")
    Masking("delete", None).check_layouts([_layout()], "SomeMethod")  # BOS is kept: fine


def test_resolve_masking_checks_rule_and_token():
    assert resolve_masking("delete", None, 10, "M") == Masking("delete", None)
    assert resolve_masking("replace", 3, 10, "M") == Masking("replace", 3)
    with pytest.raises(ValueError, match="masking='replace' needs `baselines`"):
        resolve_masking("replace", None, 10, "M")
    with pytest.raises(ValueError, match="masking must be one of"):
        resolve_masking("drop", None, 10, "M")
    with pytest.raises(ValueError, match="not a token id"):
        resolve_masking("delete", 10, 10, "M")


def test_fully_masked_rows_join_the_batch_right_padded():
    ids = torch.tensor([[1, 2, 3, 4], [1, 5, 6, 0]])
    attention = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    features = torch.tensor([[-1, 0, 1, 1], [-1, 0, 1, -1]])
    layouts = build_feature_layouts(ids, features, attention)
    batch_ids, batch_mask, final = with_fully_masked_rows(ids, attention, layouts, [0, 1], Masking("delete", None))
    assert batch_ids[2:, :1].tolist() == [[1], [1]] and batch_mask[2:].sum(dim=1).tolist() == [1, 1]
    assert final.tolist() == [3, 2, 0, 0]
    joined = concat_masked([Masking("delete", None).apply(ids[0], layouts[0], torch.ones(1, 2, dtype=torch.bool)),
                            Masking("delete", None).fully_masked(ids[1], layouts[1])], pad_id=0)
    assert joined.input_ids.tolist() == [[1, 2, 3, 4], [1, 0, 0, 0]]
