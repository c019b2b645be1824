"""One override syntax, ``--config.KEY=VALUE``, read by one parser (``config/load.py``) for every
command: values typed by the config's field, unknown keys and wrong types one-line errors, the
old ``--set`` refused with the new spelling."""
import ml_collections
import pytest

from pretrainx import main
from pretrainx.config import load as config_lib

from test_cli import CONFIG


def small_config():
    return ml_collections.ConfigDict({
        "seed": 0, "data": {"path": "input.txt", "tokenizer": "char", "max_bytes": 0},
        "optimizer": {"lr": 1e-3, "decay_steps": 100},
        "train": {"progress": True, "samplers": ("euler:4",)}, "init_from": {"workdir": None}})


def test_split_keeps_the_overrides_apart_from_the_other_flags():
    rest, pairs = config_lib.split_override_args(
        ["--workdir", "w", "--config", "c.py:smoke", "--config.seed=3", "--config.data.path=a=b"])
    assert rest == ["--workdir", "w", "--config", "c.py:smoke"]
    assert pairs == ["seed=3", "data.path=a=b"]      # only the first "=" splits


def test_values_are_typed_by_the_field_they_replace():
    config = config_lib.apply_overrides(small_config(), [
        "data.tokenizer=1", "data.max_bytes=300000", "optimizer.lr=3e-4", "train.progress=false",
        "train.samplers=('euler:1', 'euler:2')", "init_from.workdir=/runs/parent", "seed=7"])
    assert config.data.tokenizer == "1"                  # a text field keeps the text
    assert config.data.max_bytes == 300000 and config.optimizer.lr == 3e-4
    assert config.train.progress is False
    assert config.train.samplers == ("euler:1", "euler:2")
    assert config.init_from.workdir == "/runs/parent" and config.seed == 7


@pytest.mark.parametrize("pair, message", [
    ("optimizer.lrr=1", "unknown config key 'optimizer.lrr' ('lrr' is not in optimizer; known: "
                        "decay_steps, lr)"),
    ("optmizer.lr=1", "('optmizer' is not in the config; known: data, init_from, optimizer, seed"),
    ("seed.x=1", "seed is a value"),
])
def test_an_unknown_key_names_what_is_known(pair, message):
    with pytest.raises(KeyError) as e:
        config_lib.apply_overrides(small_config(), [pair])
    assert message in str(e.value)


def test_a_value_of_the_wrong_type_names_the_key():
    with pytest.raises(ValueError, match=r"--config.optimizer.decay_steps=0.5: the config's field "
                                         r"is int"):
        config_lib.apply_overrides(small_config(), ["optimizer.decay_steps=0.5"])


@pytest.mark.parametrize("argv", [
    ["train", "--config", CONFIG, "--workdir", "w", "--set", "seed=1"],
    ["eval", "--workdir", "w", "--set", "data.eval_split=test"],
    ["bench", "--config", CONFIG, "--set=model.dtype=bfloat16"],
])
def test_the_old_set_flag_is_refused_with_the_new_spelling(argv, capsys):
    assert main.cli(argv) == main.EXIT_USER_ERROR
    assert "--set KEY=VALUE is gone: write --config.KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "bench", "profile", "flops", "reproduce"])
def test_every_command_reports_an_unknown_key_in_one_line(command, tmp_path, capsys):
    argv = {"train": ["--config", CONFIG, "--workdir", str(tmp_path)],
            "bench": ["--config", CONFIG], "profile": ["--config", CONFIG], "flops": [CONFIG],
            "reproduce": ["baby_gpt_cpu"]}[command]
    assert main.cli([command, *argv, "--config.optimizer.nonsense=1"]) == main.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nonsense" in err, err
