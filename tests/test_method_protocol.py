import pytest
import torch
from captum.attr import IntegratedGradients, KernelShap

from captum_pi._core.method_protocol import (
    accepts_masking,
    accepts_parameter,
    check_attribution_method,
    declared_default,
    declared_target_type,
)


class _Masking:
    forward_func = None

    def attribute(self, inputs, masking="delete", target_type="logit", n_samples=25):
        return inputs


class _Plain:
    forward_func = None

    def attribute(self, inputs):
        return inputs


class _Preset:
    r"""A preset wrapper: declares nothing itself, holds the method in ``.method``."""

    forward_func = None

    def __init__(self, method):
        self.method = method

    def attribute(self, inputs, **kwargs):
        return self.method.attribute(inputs, **kwargs)


def test_declarations_are_read_from_the_method_or_the_method_a_preset_holds():
    assert accepts_masking(_Masking()) and accepts_masking(_Preset(_Masking()))
    assert not accepts_masking(_Plain()) and not accepts_masking(_Preset(_Plain()))
    assert declared_target_type(_Masking()) == "logit"
    assert declared_target_type(_Preset(_Masking())) == "logit"
    assert declared_target_type(_Plain()) is None
    assert declared_default(_Preset(_Masking()), "n_samples") == 25
    assert declared_default(_Masking(), "inputs") is None
    assert declared_default(_Plain(), "n_samples") is None


def test_a_parameter_is_accepted_by_name_or_by_kwargs():
    assert accepts_parameter(_Masking().attribute, "target_type")
    assert not accepts_parameter(_Plain().attribute, "target_type")
    assert accepts_parameter(_Preset(_Plain()).attribute, "anything")


def test_unsupported_methods_are_refused():
    model = torch.nn.Linear(3, 2)
    check_attribution_method(KernelShap(model))
    check_attribution_method(_Plain())
    with pytest.raises(TypeError, match="does not support Captum's IntegratedGradients"):
        check_attribution_method(IntegratedGradients(model))
    with pytest.raises(TypeError, match="attr_method must be an attribution method"):
        check_attribution_method(model)
