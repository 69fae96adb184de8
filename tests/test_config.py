import re

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


TASK_WORDS = {"image": "image", "images": "image", "streaming": "image", "adversarial": "image", "text": "text",
              "translation": "translate", "gan": "gan", "gans": "gan", "detection": "detect", "audio": "audio",
              "textclass": "textclass", "restoration": "restore", "style": "style"}
LABEL = re.compile(r"(?:^|[.;] )([A-Z][^:.;()]*):")  # 'Translation: ...', 'GAN, wgan-gp: ...' at a sentence's start


def tasks_named(help_text: str) -> set[str]:
    """The tasks a help text names in its labels: 'Text and translation: ...' names text and translate."""
    named = set()
    for label in LABEL.findall(help_text):
        words = re.findall(r"[a-z]+", label.lower().replace("text classification", "textclass")
                           .replace("image restoration", "restoration"))
        if words and words[0] in TASK_WORDS:
            named |= {TASK_WORDS[w] for w in words if w in TASK_WORDS}
    return named


def test_every_setting_whose_help_names_a_task_applies_to_that_task():
    from deepworks.cards import BUILTIN_CARDS, applies, task_only_settings
    from deepworks.config import fields_by_key

    assert tasks_named("Text and translation: how the files are decoded.") == {"text", "translate"}
    assert tasks_named("What to learn from. Images: a folder. MLP: units.") == {"image"}
    assert tasks_named("Translation: words. Text classification: tokens.") == {"translate", "textclass"}
    named_somewhere = 0
    for key, (_, f, _) in fields_by_key().items():
        named = tasks_named(f.metadata["help"])
        assert named <= set(BUILTIN_CARDS), (key, named)
        for task in named:
            assert applies(key, task), f"{key}: its help names {task}, whose card does not list it in settings"
        named_somewhere += key in task_only_settings() and bool(named)
    assert named_somewhere >= 35  # most task-only settings say whose they are
    for card in BUILTIN_CARDS.values():
        assert set(card.settings) <= set(fields_by_key()), card.name  # no misspelt key


def test_check_names_the_first_problem_in_the_order_it_always_did():
    cfg = apply_overrides(Config(), {"data.seq_len": 0, "engine.nproc": 0, "train.gamma": 0, "eval.top_k": 0})
    with pytest.raises(ConfigError, match=r"^--seq-len must be at least 1\. Received: 0\.$"):
        cfg.check()
    cfg.data.seq_len = 1
    with pytest.raises(ConfigError, match="--top-k"):
        cfg.check()
    cfg.eval.top_k = 1
    with pytest.raises(ConfigError, match="--nproc must be at least 1"):
        cfg.check()
    cfg.engine.nproc = 1
    with pytest.raises(ConfigError, match="--gamma must be above 0"):
        cfg.check()
    cfg.train.gamma = 0.1
    assert cfg.check() is cfg


def test_the_section_classes_are_still_imported_from_config():
    from deepworks import config, settings

    for name in ("DataConfig", "ModelConfig", "TrainConfig", "EvalConfig", "EngineConfig", "setting", "choices_of"):
        assert getattr(config, name) is getattr(settings, name)
