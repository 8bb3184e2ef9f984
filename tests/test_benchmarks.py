r"""The bookkeeping of the benchmark scripts that turns cached per-review results into
the claims and budgets the README quotes, and Benchmark 1's per-review evaluation on a
tiny GPT-2 against brute-force masked outputs (the benchmarks themselves run from
benchmarks/, never in the unit tests)."""
import json
import os
import sys
import types

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import claims  # noqa: E402
import faithfulness  # noqa: E402
import mp_pi_samplings  # noqa: E402
import shapley_budget  # noqa: E402


def _examples(as_aucs, ias_aucs):
    return [{"as_auc": a, "ias_auc": i} for a, i in zip(as_aucs, ias_aucs)]


@pytest.mark.parametrize("low, high, lower_is_better, expected", [
    (0.01, 0.05, False, "holds"),
    (-0.05, -0.01, False, "reversed"),
    (-0.01, 0.05, False, "not significant"),
    (-0.05, -0.01, True, "holds"),            # IAS: lower is better, so below 0 is the claimed side
    (0.01, 0.05, True, "reversed"),
    (-0.05, 0.01, True, "not significant"),
    (0.0, 0.02, False, "not significant"),    # touching 0 is not entirely on the claimed side
    (float("nan"), float("nan"), False, "not significant"),  # one review: no interval
])
def test_verdict_on_hand_made_intervals(low, high, lower_is_better, expected):
    assert claims.verdict(low, high, lower_is_better) == expected


def test_claim_rows_pick_the_best_rival_per_study_and_compute_paired_relative_changes():
    results = {
        "sp-pi": _examples([0.6, 0.7, 0.8], [0.20, 0.30, 0.10]),
        "gae": _examples([0.5, 0.6, 0.7], [0.10, 0.20, 0.00]),     # best IAS rival (lowest)
        "a-last": _examples([0.55, 0.65, 0.75], [0.3, 0.4, 0.2]),  # best AS rival (highest)
        "kernel-shap": _examples([0.9, 0.9, 0.9], [0.0, 0.0, 0.0]),  # not a 1-pass rival
    }
    rows = {row["study"]: row for row in claims.claim_rows(results)}
    assert set(rows) == {"AS", "IAS"}  # no MP-PI results: only SP-PI's claim
    assert rows["AS"]["best_rival"] == "A-Last"
    assert rows["AS"]["relative_change"] == pytest.approx((0.7 - 0.65) / 0.65)
    assert rows["AS"]["difference"] == pytest.approx(0.05)
    assert rows["AS"]["difference_ci"] == pytest.approx(0.0, abs=1e-12)  # constant differences
    assert rows["AS"]["verdict"] == "holds"  # a constant +0.05 per review
    assert rows["IAS"]["best_rival"] == "GAE"
    assert rows["IAS"]["relative_change"] == pytest.approx((0.2 - 0.1) / 0.1)  # ours is higher ...
    assert rows["IAS"]["verdict"] == "reversed"  # ... and for IAS lower is better
    assert rows["AS"]["n"] == rows["IAS"]["n"] == 3


@pytest.mark.parametrize("differences, expected", [
    ([0.10, 0.12, 0.08, 0.11], "holds"),
    ([-0.10, -0.12, -0.08, -0.11], "reversed"),
    ([0.10, -0.12, 0.08, -0.11], "not significant"),
])
def test_claim_verdicts_follow_the_paired_interval_in_both_studies(differences, expected):
    ours = np.array([0.5, 0.5, 0.5, 0.5]) + np.array(differences)
    # Better AS is higher and better IAS lower: the same improvement in both studies.
    results = {"mp-pi": _examples(ours, 1 - ours), "kernel-shap": _examples([0.5] * 4, [0.5] * 4)}
    rows = claims.claim_rows(results)
    assert {row["claim"] for row in rows} == {"MP-PI vs cost ~2n", "MP-PI vs Kernel SHAP"}
    for row in rows:
        assert row["verdict"] == expected, row["study"]
        interval = faithfulness.mean_confidence_interval(np.array(differences) * (1 if row["study"] == "AS" else -1))
        assert row["relative_change"] == pytest.approx(interval.mean / 0.5)
        assert row["relative_ci"] == pytest.approx(interval.half_width / 0.5)


def _records(errors_by_method, multiple=2, seeds=2):
    r"""Benchmark 2 records with each review's error the same for every seed."""
    return [{"method": method, "multiple": multiple, "review": review, "game": review, "seed": seed,
             "relative_l2": error}
            for method, errors in errors_by_method.items() for review, error in enumerate(errors)
            for seed in range(seeds)]


def test_estimator_claim_pairs_mp_pi_with_the_best_rival_at_each_budget():
    records = _records({"MP-PI": [0.1, 0.2, 0.3], "MP-PI, paper's weighting": [0.0, 0.0, 0.0],
                        "Kernel SHAP (Captum)": [0.5, 0.6, 0.7], "LIME (Captum, ridge)": [0.3, 0.42, 0.5]})
    records += _records({"MP-PI": [0.5, 0.5, 0.5], "LIME (Captum, ridge)": [0.4, 0.3, 0.5]}, multiple=4)
    rows = {row["study"]: row for row in claims.estimator_claim_rows(records)}
    assert set(rows) == {"2n", "4n"}
    two = rows["2n"]
    assert two["best_rival"] == "LIME (Captum, ridge)"  # MP-PI's own variant is not a rival
    assert (two["ours"], two["rival"]) == (pytest.approx(0.2), pytest.approx(1.22 / 3))
    interval = faithfulness.mean_confidence_interval([-0.2, -0.22, -0.2])
    assert two["difference"] == pytest.approx(interval.mean)
    assert two["relative_ci"] == pytest.approx(interval.half_width / (1.22 / 3))
    assert (two["n"], two["verdict"]) == (3, "holds")  # lower error is better
    assert rows["4n"]["verdict"] == "not significant" and rows["4n"]["difference"] == pytest.approx(0.1)


def test_exactness_rows_bound_the_deletion_gap_and_show_replacement_beside_it():
    fidelity = {"m-binary-sentence-delete": {"masking": "delete", "max_abs_gap": [1e-7, 3e-7], "mean_abs_gap": [0, 1e-7]},
                "m-binary-sentence-replace": {"masking": "replace", "max_abs_gap": [0.4, 0.2], "mean_abs_gap": [0.1, 0.3]},
                "n-binary-word-delete": {"masking": "delete", "max_abs_gap": [2e-3], "mean_abs_gap": [1e-3]}}
    rows = {row["key"]: row for row in claims.exactness_rows(fidelity)}
    assert set(rows) == {"m-binary-sentence-delete", "n-binary-word-delete"}
    assert rows["m-binary-sentence-delete"]["max_gap"] == 3e-7
    assert rows["m-binary-sentence-delete"]["replace_mean_gap"] == pytest.approx(0.2)
    assert rows["m-binary-sentence-delete"]["verdict"] == "holds"
    assert rows["n-binary-word-delete"]["verdict"] == "fails"
    assert np.isnan(rows["n-binary-word-delete"]["replace_mean_gap"])


def test_summary_gathers_every_benchmark_result_and_writes_the_tables_and_figure(tmp_path, monkeypatch):
    import summary

    for folder in ("faithfulness", "estimators", "fidelity"):
        (tmp_path / folder).mkdir()
    results = {"mp-pi": _examples([0.7, 0.8, 0.75], [0.2, 0.1, 0.3]),
               "kernel-shap": _examples([0.6, 0.7, 0.8], [0.3, 0.2, 0.2])}
    for game in ("delete", "replace"):
        faithfulness.write_scores({name: [{**e, "comprehensiveness": 0, "sufficiency": 0} for e in examples]
                                   for name, examples in results.items()},
                                  [3, 4, 5], str(tmp_path / "faithfulness" / f"tiny-binary-sentence-{game}"))
    records = _records({"MP-PI": [0.1, 0.2, 0.3], "LIME (Captum, ridge)": [0.3, 0.42, 0.5]})
    (tmp_path / "estimators" / "tiny-binary-sentence-delete.json").write_text(
        json.dumps({"command": "python benchmarks/estimators.py --games tiny", "records": records}))
    (tmp_path / "fidelity" / "tiny-binary-sentence-delete.json").write_text(json.dumps(
        {"masking": "delete", "command": "python benchmarks/fidelity.py", "max_abs_gap": [1e-7],
         "mean_abs_gap": [1e-8]}))
    paper, ours, exactness, commands = summary.gather(str(tmp_path))
    assert paper["tiny-binary-sentence-delete"] == claims.claim_rows(results)
    assert [row["verdict"] for row in ours["tiny-binary-sentence-delete"]] == ["holds"]
    assert [row["verdict"] for row in exactness] == ["holds"]
    assert len(commands) == 3  # the two faithfulness runs share one command
    monkeypatch.setattr(sys, "argv", ["summary.py", "--results", str(tmp_path)])
    summary.main()
    text = (tmp_path / "summary.md").read_text()
    assert text.count("| tiny-binary-sentence-delete | 3 |") == 5  # two claims by AS and IAS; one budget
    assert "| tiny-binary-sentence-delete | 3 | 2n | LIME (Captum, ridge) |" in text
    assert "| tiny-binary-sentence | 1 | 1e-07 | 1e-08 | not measured | **holds** |" in text
    assert "`python benchmarks/estimators.py --games tiny`" in text
    assert (tmp_path / "summary.png").stat().st_size > 1000


# --- the per-review evaluation of benchmarks/faithfulness.py on a tiny GPT-2 -----------------

@pytest.fixture(scope="module")
def tiny():
    from tiny_text import CORPUS, tiny_gpt2_classifier, tiny_tokenizer

    from captum_pi.text import TextFeatureInput

    tokenizer = tiny_tokenizer()
    model = tiny_gpt2_classifier(len(tokenizer), n_positions=48)
    inputs = {masking: TextFeatureInput(CORPUS[4], tokenizer, level="sentence", template="Review: {}",
                                        masking=masking) for masking in ("delete", "replace")}
    return types.SimpleNamespace(model=model, tokenizer=tokenizer, prefix="Review: ", inputs=inputs,
                                 corpus=CORPUS)


def _masked_ids(inp, coalition, masking):
    from toy_models import deleted_ids

    ids, features = inp.input_ids[0], inp.feature_mask[0]
    if masking == "delete":
        return deleted_ids(ids, features, set(coalition))
    keep = torch.tensor([f < 0 or f in coalition for f in features.tolist()])
    return torch.where(keep, ids, torch.full_like(ids, inp.mask_token_id))


def _brute_force(model, inp, coalition, masking, label):
    from toy_models import hf_value

    return hf_value(model, _masked_ids(inp, coalition, masking), label)


def _run(tiny, names, masking, label=1):
    from _common import RowCounter

    from captum_pi.registry import METHODS

    counter = RowCounter(tiny.model)
    try:
        methods = {name: METHODS[name].build(tiny.model) for name in names}
        return faithfulness.run_example(tiny.model, counter, methods, tiny.inputs[masking], label, 0, masking, {})
    finally:
        counter.remove()


@pytest.mark.parametrize("masking", ["delete", "replace"])
def test_per_review_studies_and_aopc_equal_a_brute_force_recomputation(tiny, masking):
    import math

    from scipy.integrate import trapezoid

    inp, label = tiny.inputs[masking], 1
    n = inp.n_itp_features
    cached = _run(tiny, ["feature-ablation", "integrated-gradients"], masking, label)
    full = _brute_force(tiny.model, inp, range(n), masking, label)
    for name, result in cached.items():
        for order_key, curve_key, auc_key in (("order", "as_curve", "as_auc"),
                                              ("inverse_order", "ias_curve", "ias_auc")):
            order = result[order_key]
            expected = [_brute_force(tiny.model, inp, order[:j], masking, label) for j in range(n + 1)]
            assert result[curve_key] == pytest.approx(expected, abs=1e-5), (name, curve_key)
            assert result[auc_key] == pytest.approx(trapezoid(expected, np.linspace(0, 1, n + 1)), abs=1e-5)
        assert result["order"] == sorted(range(n), key=lambda i: -result["phi"][i])
        comprehensiveness, sufficiency = [], []
        for fraction in (0.01, 0.05, 0.10, 0.20, 0.50):
            top = result["order"][: max(1, math.ceil(fraction * n))]
            rest = [i for i in range(n) if i not in top]
            comprehensiveness.append(full - _brute_force(tiny.model, inp, rest, masking, label))
            sufficiency.append(full - _brute_force(tiny.model, inp, top, masking, label))
        assert result["comprehensiveness"] == pytest.approx(np.mean(comprehensiveness), abs=1e-5)
        assert result["sufficiency"] == pytest.approx(np.mean(sufficiency), abs=1e-5)
    # Feature Ablation was run in the game: f(x) - f(x without feature i), masked that way.
    ablation = [full - _brute_force(tiny.model, inp, [j for j in range(n) if j != i], masking, label)
                for i in range(n)]
    assert cached["feature-ablation"]["phi"] == pytest.approx(ablation, abs=1e-5)


def test_gradient_and_attention_methods_run_under_delete_without_a_game(tiny):
    names = ["input-x-gradient", "integrated-gradients", "lrp", "gae", "a-last", "random"]
    deleted = _run(tiny, names, "delete")  # Integrated Gradients would raise on masking="delete"
    replaced = _run(tiny, names, "replace")
    for name in names:
        assert np.isfinite(deleted[name]["phi"]).all(), name
        assert deleted[name]["phi"] == pytest.approx(replaced[name]["phi"], abs=1e-6), name  # no game
    inp = tiny.inputs["delete"]
    assert faithfulness.method_options("integrated-gradients", inp, "delete", 0) == {"baselines": inp.mask_token_id}
    assert faithfulness.method_options("kernel-shap", inp, "delete", 3) == {
        "seed": 3, "masking": "delete", "baselines": inp.empty_token_id}
    assert faithfulness.method_options("sp-pi", inp, "replace", 3) == {
        "masking": "replace", "baselines": inp.mask_token_id}


class _Counting:
    def __init__(self, method):
        self.method, self.calls = method, 0

    def attribute(self, *args, **kwargs):
        self.calls += 1
        return self.method.attribute(*args, **kwargs)


def test_a_larger_limit_only_computes_new_reviews_and_new_methods(tiny, tmp_path):
    from captum_pi.registry import METHODS

    corpus = tiny.corpus
    reviews = [(10, corpus[0], 1), (11, corpus[1], 0), (12, corpus[4], 0), (13, corpus[5], 1)]  # 11: 1 sentence
    sp_pi = _Counting(METHODS["sp-pi"].build(tiny.model))

    def collect(methods, limit, masking="delete"):
        return faithfulness.collect(tiny, methods, reviews, "sentence", masking, limit, str(tmp_path),
                                    (2, 12), seed=0)

    first, sizes = collect({"sp-pi": sp_pi}, 1)
    assert (sp_pi.calls, sizes) == (1, [2])
    second, sizes = collect({"sp-pi": sp_pi}, 2)
    assert (sp_pi.calls, sizes) == (2, [2, 3])  # only review 12 is new; review 11 is skipped
    assert second["sp-pi"][0] == first["sp-pi"][0]
    ablation = _Counting(METHODS["feature-ablation"].build(tiny.model))
    third, _ = collect({"sp-pi": sp_pi, "feature-ablation": ablation}, 2)
    assert (sp_pi.calls, ablation.calls) == (2, 2)
    assert third["sp-pi"] == second["sp-pi"]
    with pytest.raises(ValueError, match="masking='delete'"):
        collect({"sp-pi": sp_pi}, 1, masking="replace")  # another game never reads this cache
    # Another game reuses the explanations of methods without one, and evaluates them in its game.
    ig = _Counting(METHODS["integrated-gradients"].build(tiny.model))
    deleted, _ = collect({"integrated-gradients": ig, "sp-pi": sp_pi}, 1)
    replaced, _ = faithfulness.collect(tiny, {"integrated-gradients": ig, "sp-pi": sp_pi}, reviews, "sentence",
                                       "replace", 1, str(tmp_path / "replace"), (2, 12), 0, [str(tmp_path)])
    assert (ig.calls, sp_pi.calls) == (1, 3)
    assert replaced["integrated-gradients"][0]["phi"] == deleted["integrated-gradients"][0]["phi"]
    assert replaced["integrated-gradients"][0]["as_curve"] != deleted["integrated-gradients"][0]["as_curve"]
    # An interrupted review keeps the methods it finished.
    lime = _Counting(METHODS["lime"].build(tiny.model))
    lime.method = None  # calling it fails
    with pytest.raises(AttributeError):
        collect({"sp-pi": sp_pi, "feature-ablation": ablation, "random": _Counting(METHODS["random"].build(tiny.model)),
                 "lime": lime}, 1)
    with open(tmp_path / "10.json") as handle:
        assert {"sp-pi", "feature-ablation", "random"} <= set(json.load(handle))


def test_shards_split_the_selected_reviews_and_the_full_run_reads_them_from_the_cache(tiny, tmp_path):
    from captum_pi.registry import METHODS

    corpus = tiny.corpus
    # Review 11 has one sentence and is never selected, so it shifts no shard.
    reviews = [(10, corpus[0], 1), (11, corpus[1], 0), (12, corpus[4], 0), (13, corpus[5], 1),
               (14, "Works well. No side effects at all.", 1)]
    ablation = _Counting(METHODS["feature-ablation"].build(tiny.model))

    def collect(limit, shard):
        return faithfulness.collect(tiny, {"feature-ablation": ablation}, reviews, "sentence", "delete", limit,
                                    str(tmp_path), (2, 12), seed=0, shard=shard)

    first, first_sizes = collect(4, (1, 2))
    assert ablation.calls == 2
    assert sorted(os.listdir(tmp_path)) == ["10.json", "13.json"]
    second, second_sizes = collect(4, (2, 2))
    assert ablation.calls == 4
    assert sorted(os.listdir(tmp_path)) == ["10.json", "12.json", "13.json", "14.json"]
    full, sizes = collect(4, (1, 1))
    assert ablation.calls == 4  # everything came from the cache
    assert full["feature-ablation"] == [first["feature-ablation"][0], second["feature-ablation"][0],
                                        first["feature-ablation"][1], second["feature-ablation"][1]]
    assert sizes == [first_sizes[0], second_sizes[0], first_sizes[1], second_sizes[1]]
    assert faithfulness.parse_args(["--model", "smollm2", "--shard", "2/3"]).shard == (2, 3)


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1", "a/b", "1/2/3"])
def test_a_bad_shard_is_refused(spec, capsys):
    with pytest.raises(SystemExit):
        faithfulness.parse_args(["--model", "smollm2", "--shard", spec])
    assert "--shard" in capsys.readouterr().err


def test_unavailable_adapters_stop_the_run_before_any_work(monkeypatch, tmp_path, capsys):
    from captum_pi import models

    monkeypatch.setattr(models, "LORA_ASSETS", tmp_path)  # nothing shipped but the package default
    problems = faithfulness.unavailable(["smollm2", "smollm2-lora", "gemma3-lora"], ["binary", "3class"])
    assert [problem.split(":")[0] for problem in problems] == [
        "smollm2-lora (3class)", "gemma3-lora (binary)", "gemma3-lora (3class)"]
    assert all("train_lora.py" in problem for problem in problems)
    monkeypatch.setattr(faithfulness, "load_bundle", lambda *args: pytest.fail("a model was loaded"))
    with pytest.raises(SystemExit):
        faithfulness.parse_args(["--model", "smollm2", "gemma3-lora", "--task", "binary"])
    assert "gemma3-lora (binary): no shipped adapter gemma3-binary_lora.pt" in capsys.readouterr().err
    args = faithfulness.parse_args(["--model", "smollm2-lora", "--masking", "delete"])
    assert (args.masking, args.task, args.out_dir) == (["delete"], ["binary"], faithfulness.DEFAULT_OUT_DIR)
    assert faithfulness.cache_key("smollm2-lora", "binary", "sentence", "delete") == "smollm2-lora-binary-sentence-delete"


def test_budget_ratio_of_mp_pi_to_kernel_shap():
    assert shapley_budget.budget_ratio({"mp-pi": 2, "kernel-shap": 8}) == "0.25"
    assert shapley_budget.budget_ratio({"kernel-shap": 8}) == "only Kernel SHAP reaches 0.95"
    assert shapley_budget.budget_ratio({"mp-pi": 4}) == "only MP-PI reaches 0.95"
    assert "neither" in shapley_budget.budget_ratio({})


def test_cached_per_position_matches_the_model_and_counts_requested_rows():
    import torch
    from _common import CachedPerPosition
    from toy_models import tiny_classifier

    from captum_pi import PerPositionForward

    model = tiny_classifier("gpt2", n_classes=3)
    direct = PerPositionForward(model)
    cached = CachedPerPosition(model, chunk=2)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 64, (3, 12), generator=generator)
    ids[1, :7] = ids[0, :7]  # row 1's real tokens are a prefix of row 0
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 10:] = 0
    expected = direct(ids, mask)
    got = cached(ids, mask)
    real = mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)
    assert (got[~real] == 0).all()
    assert (cached.rows_requested, cached.rows_computed) == (3, 2)  # the prefix row is not computed
    # A later request for prefixes of computed rows (unpadded) is answered from the cache.
    with cached.measure() as rows:
        again = cached(ids[:1, :5])
        again_direct = cached(ids[2:, :10])
    assert rows == {"rows": 2, "computed": 0}
    assert torch.allclose(again, direct(ids[:1, :5]), atol=1e-5)
    assert torch.allclose(again_direct, direct(ids[2:, :10]), atol=1e-5)
    cached.clear()
    assert len(cached) == 0
    with cached.measure() as rows:
        cached(ids[:1, :5])
    assert rows == {"rows": 1, "computed": 1}


@pytest.mark.parametrize("masking", ["delete", "replace"])
def test_methods_and_exact_values_through_the_cache_equal_those_on_the_model(masking):
    import torch
    from _common import CachedPerPosition
    from toy_models import tiny_classifier

    from captum_pi.metrics import shapley_values
    from captum_pi.registry import METHODS

    model = tiny_classifier("gpt2", n_classes=2)
    ids = torch.randint(3, 64, (1, 14), generator=torch.Generator().manual_seed(1))
    ids[0, 0] = 1  # BOS, a fixed token
    feature_mask = torch.tensor([[-1, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4]])
    common = dict(target=1, feature_mask=feature_mask, baselines=5, masking=masking)
    cached = CachedPerPosition(model)
    exact = shapley_values(model, ids, **common).values
    assert torch.allclose(shapley_values(cached, ids, **common).values, exact, atol=1e-5)
    for name in ("mp-pi", "kernel-shap", "shapley-value-sampling"):
        on_model = METHODS[name].build(model).attribute(ids, seed=0, n_samples=12, **common)
        with cached.measure() as rows:
            through_cache = METHODS[name].build(cached).attribute(ids, seed=0, n_samples=12, **common)
        assert torch.allclose(through_cache, on_model, atol=1e-5), name
        assert rows["computed"] == 0  # every coalition was computed for the exact values
        assert rows["rows"] > 0


def test_prefix_sharing_benchmark_measures_both_engines_on_the_same_rows():
    import prefix_sharing
    from tiny_text import tiny_gpt2_classifier, tiny_tokenizer

    from captum_pi import TextFeatureInput

    tokenizer = tiny_tokenizer()
    model = tiny_gpt2_classifier(len(tokenizer))
    template = "A fixed instruction that every masked row shares: {}"
    inp = TextFeatureInput("it helped my pain a lot but I felt sick", tokenizer, level="word", template=template)
    n = inp.n_itp_features
    for name, make in prefix_sharing.METHODS.items():
        explainer = make(model)
        record = prefix_sharing.measure(explainer, inp, prefix_sharing.method_options(name, n),
                                        "delete", per_eval=8, repeats=1, target=1)
        assert record["rows"] == (n + 1 if name == "Feature Ablation" else 2 * n)
        assert record["positions_computed"] < record["positions_requested"]
        assert record["max_abs_change"] < 1e-5
        assert record["ratio"] == pytest.approx(record["shared_s"] / record["plain_s"])


def test_the_two_mp_pi_rows_are_compared_review_by_review(tmp_path):
    rows = [
        ({"phi": [0.1, 0.3], "order": [1, 0]}, {"phi": [0.1, 0.25], "order": [1, 0]}),
        ({"phi": [0.5, 0.2], "order": [0, 1]}, {"phi": [0.1, 0.2], "order": [1, 0]}),
    ]
    for index, (paper, shapley) in enumerate(rows):
        (tmp_path / f"{index}.json").write_text(json.dumps({"mp-pi": paper, "mp-pi-shapley": shapley}))
    (tmp_path / "2.json").write_text(json.dumps({"mp-pi": rows[0][0]}))  # unfinished review
    reviews, largest, same_order = mp_pi_samplings.compare(str(tmp_path))
    assert (reviews, same_order) == (2, 1)
    assert largest == pytest.approx(0.4)


def test_reviews_are_grouped_by_length_and_each_group_gets_its_own_claims():
    import claims_by_length

    n_features = [3, 20, 40, 10, 31, 16]
    assert claims_by_length.length_groups(n_features, [15, 30]) == [
        ("3..15", [0, 3]), ("16..30", [1, 5]), ("31..40", [2, 4])]
    assert claims_by_length.length_groups(n_features, [2, 50]) == [("3..40", list(range(6)))]
    with pytest.raises(ValueError, match="increase"):
        claims_by_length.length_groups(n_features, [30, 15])
    results = {"mp-pi": _examples([0.7, 0.8, 0.75, 0.9, 0.6, 0.5], [0.2, 0.1, 0.3, 0.4, 0.5, 0.6]),
               "kernel-shap": _examples([0.6, 0.7, 0.8, 0.1, 0.2, 0.3], [0.3, 0.2, 0.2, 0.4, 0.1, 0.3])}
    grouped = dict(claims_by_length.claim_rows_by_length({"n_features": n_features, "results": results}, [15, 30]))
    assert list(grouped) == ["3..15", "16..30", "31..40"]
    short = {name: [examples[0], examples[3]] for name, examples in results.items()}
    assert grouped["3..15"] == claims.claim_rows(short)
    assert [row["n"] for row in grouped["31..40"]] == [2] * 4
