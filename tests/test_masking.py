import pytest
import torch

from captum_pi import PerPositionForward
from captum_pi._core.masking import Masking, concat_masked, resolve_masking, with_fully_masked_rows
from captum_pi._core.progressive import build_feature_layouts
from toy_models import ARCHITECTURES, deleted_ids, tiny_classifier

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


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_under_deletion_every_intermediate_prediction_is_the_models_output_on_the_truncated_input(architecture):
    model = tiny_classifier(architecture)
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(3, 64, (2, 11), generator=generator)
    ids[:, 0] = 1  # BOS, fixed
    features = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4, 0], [-1, 0, 1, 1, 2, 3, 3, 4, -1, -1, -1]])
    features[0, -1] = 4
    attention = torch.tensor([[1] * 11, [1] * 8 + [0] * 3])
    layouts = build_feature_layouts(ids, features, attention)
    masking = Masking("delete", None)
    coalitions = torch.tensor([[1, 0, 1, 1, 1], [0, 1, 0, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 1, 0]], dtype=torch.bool)
    # both rows' masked copies in one right-padded batch of rows of different lengths
    pieces = [masking.apply(ids[row], layouts[row], coalitions) for row in range(2)]
    batch = concat_masked(pieces, pad_id=0)
    assert len(set(batch.final.tolist())) > 2  # lengths really differ
    logits = PerPositionForward(model)(batch.input_ids, batch.attention_mask)
    for row in range(2):
        for copy, coalition in enumerate(coalitions):
            index = row * len(coalitions) + copy
            active = {k for k in range(5) if coalition[k]}
            for feature in sorted(active):
                kept_so_far = {k for k in active if k <= feature}
                upto = features[row, : int(layouts[row].ends[feature]) + 1]
                truncated = deleted_ids(ids[row, : upto.numel()], upto, kept_so_far)
                with torch.no_grad():
                    own = model(input_ids=truncated[None]).logits[0]
                position = int(batch.feature_ends[index, feature])
                torch.testing.assert_close(logits[index, position], own, atol=1e-5, rtol=0)
            whole = deleted_ids(ids[row, : layouts[row].length], features[row, : layouts[row].length], active)
            with torch.no_grad():
                own = model(input_ids=whole[None]).logits[0]
            torch.testing.assert_close(logits[index, int(batch.final[index])], own, atol=1e-5, rtol=0)
