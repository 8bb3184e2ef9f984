import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from captum_pi import SinglePassProgressive  # noqa: E402
from captum_pi.metrics import (  # noqa: E402
    activation_study,
    inverse_activation_study,
    plot_activation_curves,
    plot_fidelity_gap,
    progressive_fidelity,
)
from metrics_toys import ADDITIVE, FEATURES, IDS, WORD_IDS, WORDS, S  # noqa: E402
from toy_models import MASK_ID, tiny_classifier  # noqa: E402


def test_activation_plot_draws_the_mean_curve_of_each_method():
    ids = IDS.repeat(2, 1)
    good = torch.tensor([S, S])
    bad = -good
    studies = {
        name: activation_study(ADDITIVE, ids, attr, target=1, feature_mask=FEATURES, baselines=MASK_ID)
        for name, attr in [("exact", good), ("reversed", bad)]
    }
    figure = plot_activation_curves(studies, n_points=11)
    lines = figure.axes[0].get_lines()
    assert [line.get_label().split(" ")[0] for line in lines] == ["exact", "reversed"]
    for line, result in zip(lines, studies.values()):
        np.testing.assert_allclose(line.get_ydata(), result.mean_curve(11)[1])
    plt.close(figure)
    inverse = inverse_activation_study(ADDITIVE, ids, good, target=1, feature_mask=FEATURES, baselines=MASK_ID)
    with pytest.raises(ValueError, match="one study"):
        plot_activation_curves({"a": studies["exact"], "b": inverse})


def test_fidelity_plot_draws_the_binned_mean_gap():
    model = tiny_classifier("gpt2")
    sp = SinglePassProgressive(model)
    result = progressive_fidelity(sp.per_position, WORD_IDS, feature_mask=WORDS, baselines=3)
    figure = plot_fidelity_gap({"gpt2": result}, n_bins=5)
    line = figure.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), result.gap_by_relative_position(5)[1])
    assert len(figure.axes[0].collections) == 1
    plt.close(figure)


def test_method_colors_are_distinct_for_twenty_methods():
    from captum_pi.metrics.plots import method_color

    colors = [method_color(index) for index in range(20)]
    assert len(set(colors)) == 20
    assert method_color(20) == method_color(0)
