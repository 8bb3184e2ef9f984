r"""
From token-level scores to feature (word, sentence) attributions, for the methods
that score tokens rather than features: gradients, attention maps, relevance
propagation. Perturbation methods and Progressive Inference score features directly.

Two rules, as in the paper (section 4.1 and Appendix B.2):

- ``"sum"``: a token's score is the sum of its embedding-dimension scores; a
  feature's score is the sum of its tokens' scores. Signed. Used for Integrated
  Gradients (so that completeness carries over to features), A-Last and GAE.
- ``"l2"``: a token's score is the L2 norm of its embedding-dimension scores; a
  feature's score is the L2 norm of its tokens' scores,
  ``phi_k = sqrt(sum_{t in k} ||a_t||^2)``, i.e. the Frobenius norm of the feature's
  ``[tokens x embedding]`` block. Non-negative. Used for Input x Gradient and LRP,
  where the paper found it gives better activation / inverse activation AUCs.

Fixed tokens (feature id -1) and padding are dropped; the result follows Captum's
FeatureAblation convention (every token of feature k carries ``phi_k``).
"""
from typing import List

import torch
from torch import Tensor

from captum_pi._core.progressive import FeatureLayout, expand_to_tokens

AGGREGATIONS = ("sum", "l2")


def check_aggregation(aggregation: str) -> str:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}.")
    return aggregation


def reduce_embedding_dim(attributions: Tensor, aggregation: str) -> Tensor:
    r"""``[B, T, D]`` embedding-level scores -> ``[B, T]`` token scores (sum or L2)."""
    if aggregation == "sum":
        return attributions.sum(dim=-1)
    return torch.linalg.vector_norm(attributions, dim=-1)


def feature_scores(token_scores: Tensor, layout: FeatureLayout, aggregation: str) -> Tensor:
    r"""One row's token scores ``[>= length]`` -> ``[n_features]`` (sum or L2 over each
    feature's tokens)."""
    scores = token_scores[: layout.length].double().cpu()
    is_feature = layout.token_feature >= 0
    owners = layout.token_feature[is_feature]
    values = scores[is_feature]
    if aggregation == "l2":
        values = values.square()
    totals = torch.zeros(layout.n_features, dtype=torch.float64).index_add_(0, owners, values)
    return totals.sqrt() if aggregation == "l2" else totals


def tokens_to_features(
    token_scores: Tensor, layouts: List[FeatureLayout], aggregation: str
) -> Tensor:
    r"""
    Aggregates token scores ``[B, T]`` to features and spreads them back over tokens.

    Returns:
        Tensor ``[B, T]`` (float64) in Captum's FeatureAblation convention.
    """
    phis = [feature_scores(token_scores[row], layout, aggregation) for row, layout in enumerate(layouts)]
    return expand_to_tokens(phis, layouts, token_scores.shape[1])
