import pytest
import yaml

from deepworks.config import Config, apply_overrides
from deepworks.errors import ConfigError


def test_yaml_then_overrides_then_round_trip(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("seed: 3\ntrain: {lr: 0.05, optimizer: sgd}\nmodel: {name: mlp, depth: 3}\n")
    cfg = Config.load(path)
    apply_overrides(cfg, {"train.lr": "0.2", "data.augment": "flip"})
    assert (cfg.seed, cfg.train.lr, cfg.train.optimizer, cfg.model.depth, cfg.data.augment) == (3, 0.2, "sgd", 3, "flip")
    cfg.save(tmp_path / "saved.yaml")
    assert Config.load(tmp_path / "saved.yaml") == cfg
    assert yaml.safe_load((tmp_path / "saved.yaml").read_text())["train"]["lr"] == 0.2


def test_unknown_setting_suggests_the_right_one(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"Unknown setting 'lr' in .*bad.yaml\. Did you mean 'train.lr'\?"):
        Config.load(path)


def test_wrong_type_and_choice_say_what_was_expected():
    with pytest.raises(ConfigError, match=r"'train.epochs' .* expects int\. Received: 'many'"):
        apply_overrides(Config(), {"train.epochs": "many"})
    with pytest.raises(ConfigError, match=r"'train.optimizer' .* must be one of sgd, momentum.*Received: 'adamax'"):
        apply_overrides(Config(), {"train.optimizer": "adamax"})


def test_optional_values_accept_none():
    cfg = apply_overrides(Config(), {"train.clip_grad": "1.5"})
    assert cfg.train.clip_grad == 1.5
    assert apply_overrides(cfg, {"train.clip_grad": "none"}).train.clip_grad is None


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        Config.load(tmp_path / "list.yaml")


@pytest.mark.parametrize("key,value,message", [
    ("model.dropout", 1.5, "--dropout must be at least 0 and below 1. Received: 1.5"),
    ("data.val_fraction", 1.0, "--val-fraction must be at least 0 and below 1"),
    ("train.lr", -1, "--lr must be above 0. Received: -1.0"),
    ("train.batch_size", 0, "--batch-size must be at least 1"),
    ("train.monitor", "accuracy", "--monitor must name a validation metric"),
    ("eval.robust_steps", 0, "--robust-steps must be at least 1. Received: 0"),
])
def test_out_of_range_settings_name_the_flag(key, value, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("-", r"\-")):
        apply_overrides(Config(), {key: value}).check()
