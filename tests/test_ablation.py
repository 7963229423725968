"""The recipe one factor at a time: each variant differs from the study's recipe in exactly its one factor."""

from __future__ import annotations

import json

import pytest

from fundiff.studies.ablation import VARIANTS, run_ablation


def _flow_config(flags):
    from fundiff.cli import build_parser
    from fundiff.commands.part_b import flow_study_config

    return flow_study_config(build_parser().parse_args(["study", "flow", "--recipe", "study", *flags]))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_each_rows_command_flags_ask_for_the_rows_change(variant):
    """The command the report prints for a row (`fundiff study flow --recipe study` + its flags) runs that row."""
    config = _flow_config(variant.flags)
    assert config.overrides == variant.train
    assert config.objective_options == variant.objective


def test_the_variants_are_one_factor_each_except_the_named_bundle():
    factors = {v.name: set(v.train) | set(v.objective) for v in VARIANTS}
    assert factors["study"] == set()
    assert all(len(f) == 1 for name, f in factors.items() if name not in ("study", "noschedule"))
    singles = [f for name, f in factors.items() if name not in ("study", "noschedule")]
    assert len({next(iter(f)) for f in singles}) == len(singles)   # each changes a different factor
    assert factors["noschedule"] == {"lr_schedule", "lr", "ema_decay"}


@pytest.mark.slow
def test_ablation_trains_each_variant_with_only_its_change(tmp_path, mnist):
    names = ["study", "lr-1e-3", "logit-normal"]
    r = run_ablation(tmp_path, mnist, variants=names, num_hiddens=4, num_train=64, epochs=1, steps=2,
                     eval_per_class=1, log=lambda *_: None)
    assert [row["name"] for row in r["rows"]] == names
    runs = {n: json.loads((tmp_path / n / "flow-class_results.json").read_text()) for n in names}
    base = runs["study"]
    for v in VARIANTS:
        if v.name not in names:
            continue
        run = runs[v.name]
        train_diff = {k for k in base["train"] if base["train"][k] != run["train"][k]}
        objective_diff = {k for k in set(base["objective"]) | set(run["objective"])
                          if base["objective"].get(k) != run["objective"].get(k)}
        assert train_diff == set(v.train), v.name
        assert {k for k in objective_diff if k in v.objective} == set(v.objective), v.name
        assert objective_diff <= set(v.objective) | {"logit_mean", "logit_std"}, v.name   # logit-normal's parameters
    for row in r["rows"]:
        low, high = row["accuracy_wilson95"]
        assert low <= row["accuracy"] <= high
        assert row["classifier_fid"] > 0
    assert (tmp_path / "ablation.png").stat().st_size > 0 and (tmp_path / "ablation_loss.png").stat().st_size > 0
    assert r["eval_images"] == 10 and r["fid_floor"] > 0
