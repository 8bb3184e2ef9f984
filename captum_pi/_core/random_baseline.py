from typing import Callable, Optional

import torch
from captum.attr._utils.attribution import Attribution
from captum.log import log_usage
from torch import Tensor

from captum_pi._core.progressive import TargetType, build_feature_layouts, expand_to_tokens


class RandomAttribution(Attribution):
    r"""
    Random attributions, the floor of the paper's Tables 2 and 3: every feature gets
    an independent standard normal value, so the ordering of features (all that the
    activation and inverse activation studies use) is a uniformly random
    permutation. The model is never called.

    Scores are drawn per feature, not per token, so a word of five tokens is as likely
    to rank first as a word of one token.

    Args:
        forward_func (Callable or nn.Module, optional): Accepted so that every method
                    of the package is built the same way; unused. Default: None

    Examples::

        >>> random = RandomAttribution(model)
        >>> attr = random.attribute(ids, feature_mask=words, seed=0)  # [B, T]
    """

    def __init__(self, forward_func: Optional[Callable] = None) -> None:
        Attribution.__init__(self, forward_func)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        target: TargetType = None,
        feature_mask: Optional[Tensor] = None,
        baselines: Optional[int] = None,
        attention_mask: Optional[Tensor] = None,
        seed: Optional[int] = None,
        **kwargs: object,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): LongTensor ``[B, T]`` of token ids (only the shape and
                        the feature layout are used).
            target (int or Tensor, optional): Unused. Default: None
            feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``; ids 0..n-1
                        in order, each one contiguous span; -1 for fixed tokens. None
                        makes every non-padding token a feature. Default: None
            baselines (int, optional): Unused. Default: None
            attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                        Default: None
            seed (int, optional): Seed of the generator; rows draw from it in order.
                        None draws a fresh seed from the operating system, so two
                        calls differ. Default: None
            **kwargs: Other options of the uniform protocol (e.g. ``target_type``),
                        accepted and ignored.

        Returns:
            Tensor ``[B, T]`` (float32): every token of feature ``k`` carries
            ``phi_k ~ N(0, 1)``; fixed tokens and padding carry 0.
        """
        layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        phis = [
            torch.randn(layout.n_features, generator=generator, dtype=torch.float64)
            for layout in layouts
        ]
        return expand_to_tokens(phis, layouts, inputs.shape[1]).float()

    def attribute_future(self) -> None:
        raise NotImplementedError("RandomAttribution does not support attribute_future.")

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    def has_convergence_delta(self) -> bool:
        return False
