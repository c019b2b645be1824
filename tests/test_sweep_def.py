"""Sweep definitions: grids in order, every config's get_sweep checks against its get_config, and a
bad definition (unknown key, empty grid, a value of the wrong type, ...) stops ``pretrainx sweep``
with one line naming the problem, before anything trains."""
import glob
import os
import textwrap

import pytest

from pretrainx import main

from pretrainx.tools import sweep_def as sd

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SMOKE = os.path.join(ROOT, "configs/gpt/shakespeare_char.py")


def test_product_and_zip_build_points_in_order():
    lr = sd.values("optimizer.lr", [1e-3, 3e-3])
    depth = sd.values("model.num_layers", [2, 4])
    assert sd.product(lr, depth) == [
        {"optimizer.lr": 1e-3, "model.num_layers": 2}, {"optimizer.lr": 1e-3, "model.num_layers": 4},
        {"optimizer.lr": 3e-3, "model.num_layers": 2}, {"optimizer.lr": 3e-3, "model.num_layers": 4}]
    assert sd.zip(lr, depth) == [{"optimizer.lr": 1e-3, "model.num_layers": 2},
                                 {"optimizer.lr": 3e-3, "model.num_layers": 4}]
    nested = sd.product(sd.zip(lr, depth), sd.values("seed", [0, 1]))
    assert len(nested) == 4 and nested[1] == {"optimizer.lr": 1e-3, "model.num_layers": 2, "seed": 1}
    assert sd.grid(nested).trials == 4


def test_every_config_sweep_checks_against_its_config():
    found = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)):
        source = open(path).read()
        if "def get_sweep" not in source:
            continue
        for arg in ("", "smoke"):
            try:
                sweep, config = sd.load(f"{path}:{arg}" if arg else path)
            except ValueError as e:
                assert "no sweep for variant" in str(e), e
                continue
            sd.check(sweep, config)
            found += 1
    assert found >= 2   # shakespeare_char's full-recipe TPE sweep and its :smoke grid


def _sweep_file(tmp_path, body: str) -> str:
    path = tmp_path / "swept.py"
    path.write_text(textwrap.dedent(f"""
        from pretrainx.config import load as config_lib
        from pretrainx.tools import sweep_def as sd

        def get_config(arg=""):
            return config_lib.load({SMOKE + ':smoke'!r})

        def get_sweep(arg=""):
            return {body}
    """))
    return str(path)


BAD = [
    ("sd.grid(sd.values('optimizer.lrr', [1e-3]))", "unknown sweep key 'optimizer.lrr'"),
    ("sd.grid(sd.values('optimizer.lr', []))", "empty grid"),
    ("sd.grid([])", "empty grid"),
    ("sd.grid(sd.values('train.steps', [10.5]))", "sweep value 10.5 (float) for train.steps"),
    ("sd.grid(sd.values('optimizer.lr', ['fast']))", "sweep value 'fast' (str) for optimizer.lr"),
    ("sd.grid(sd.values('model.use_bias', [1]))", "sweep value 1 (int) for model.use_bias"),
    ("sd.grid(sd.values('model', [1]))", "names a section of the config"),
    ("sd.search({'train.steps': sd.uniform(1, 9)}, trials=2)", "train.steps is an int"),
    ("sd.search({'optimizer.lr': 1e-3}, trials=2)", "use loguniform, uniform, integer or choice"),
    ("sd.search({'optimizer.lr': sd.loguniform(1e-4, 1e-2)}, trials=0)", "trial budget is 0"),
    ("sd.grid(sd.values('optimizer.lr', [1e-3]), pruner='median', pruner_options={'warmup': 3})",
     "pruner 'median'"),
    ("sd.grid(sd.values('optimizer.lr', [1e-3]), pruner='early')", "unknown pruner 'early'"),
    ("sd.grid(sd.values('optimizer.lr', [1e-3]), metrics='val/loss')",
     "unexpected keyword argument 'metrics'"),
    ("sd.zip(sd.values('optimizer.lr', [1e-3, 2e-3]), sd.values('seed', [1]))",
     "zip of axes with different lengths"),
]


@pytest.mark.parametrize("body,message", BAD, ids=[m for _, m in BAD])
def test_bad_sweep_definition_is_a_one_line_error(tmp_path, capsys, body, message):
    code = main.cli(["sweep", "--config", _sweep_file(tmp_path, body), "--workdir",
                     str(tmp_path / "w")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "w" / "trials").exists()   # nothing trained


def test_the_seed_studies_are_grids_of_three_seeds_per_arm():
    """experiments/seed_studies.py (the bash loops of earlier releases): every study checks
    against its config, has 3 seeds per arm, and the fine-tunes start from their own parent."""
    study = os.path.join(ROOT, "experiments", "seed_studies.py")
    sizes = {"c1": 6, "c1ft": 6, "c1ft_speakers": 6, "c2": 9, "c2mlm": 9, "speakers_parent": 1,
             "speakers": 6}
    for arg, size in sizes.items():
        sweep, config = sd.load(f"{study}:{arg}")
        sd.check(sweep, config)
        assert len(sweep.points) == size and sweep.value == "final", arg
        assert config.train.progress is False and config.eval.every > 0
        seeds = [p["seed"] for p in sweep.points]
        assert sorted(seeds) == sorted([0, 1, 2] * (size // 3)) or arg == "speakers_parent"
    c1, _ = sd.load(f"{study}:c1")
    assert c1.points[1] == {"seed": 0, "mlm.rate_schedule": "linear", "mlm.rate_start": 0.3}
    fine_tunes, _ = sd.load(f"{study}:c1ft_speakers@/runs/c1ft")
    parents, _ = sd.load(f"{study}:c1ft")
    for i, point in enumerate(fine_tunes.points):     # trial i of c1ft is the same seed and arm
        assert point["init_from.workdir"] == point["data.tokenizer"] == f"/runs/c1ft/trials/{i:03d}"
        assert point["seed"] == parents.points[i]["seed"]
    mlm, config = sd.load(f"{study}:c2mlm")
    assert config.mixture.eval_mlm_weight == 1.0 and mlm.metric == "val/mlm_loss"


def test_bad_command_line_is_a_one_line_error(tmp_path, capsys):
    grid = _sweep_file(tmp_path, "sd.grid(sd.values('optimizer.lr', [1e-3, 2e-3]))")
    for extra, message in ((["--trials", "3"], "the grid has 2 points"),
                           (["--config.train.stepz=3"], "unknown config key 'train.stepz'"),
                           (["--config.train.steps=2.5"], "does not fit the config"),
                           (["--parallel", "0"], "--parallel 0"),
                           (["--config.eval.every=0"], "config.eval.every is 0"),
                           (["--pruner", "early"], "unknown pruner 'early'")):
        code = main.cli(["sweep", "--config", grid, "--workdir", str(tmp_path / "w"), *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and message in err, (extra, err)


def test_a_study_made_by_another_sweep_definition_is_refused(tmp_path):
    from pretrainx.tools import sweep
    grid = sd.grid(sd.values("optimizer.lr", [1e-3, 2e-3]))
    base = sd.config_lib.load(SMOKE + ":smoke")
    storage, _ = sweep.open_storage(None, str(tmp_path), heartbeat=60, max_retries=2)
    study = sweep.open_study(grid, base, storage, "s", seed=0)
    assert sweep.open_study(grid, base, storage, "s", seed=0).study_name == study.study_name
    with pytest.raises(ValueError, match="made by another sweep definition"):
        sweep.open_study(sd.grid(sd.values("optimizer.lr", [1e-3, 5e-3])), base, storage, "s", 0)
    with pytest.raises(ValueError, match="made by another sweep definition"):
        sweep.open_study(grid, sd.config_lib.override(base, {"train.steps": 7}), storage, "s", 0)


def test_parallel_workers_are_pinned_to_the_visible_gpus(monkeypatch):
    from pretrainx.tools import sweep
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert sweep.visible_gpus() == ["2", "5"]    # worker i gets gpus[i % 2]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert sweep.visible_gpus() == []
