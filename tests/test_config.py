"""Config loading and validation: good files, bad files (one-line errors naming key and
file), and files in the tutorial's relaxed style."""

import json
from pathlib import Path

import pytest

from ffjord_kit.config import SCHEMA, load_config, validate_config
from ffjord_kit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL_KEYS = ["SHAPE", "BATCH", "LR", "MAXEPOCH", "EARLYSTOP", "NSTACKED", "NLAYERS",
                 "LAYER_SIZE", "KERNEL", "STRIDE", "ACT", "MODEL", "REG"]


def minimal() -> dict:
    return {"SHAPE": [2], "BATCH": 64, "LR": 1e-2, "MAXEPOCH": 3, "EARLYSTOP": 2,
            "NSTACKED": 1, "NLAYERS": 2, "LAYER_SIZE": [8, 4], "ACT": "tanh", "MODEL": "m",
            "REG": 0.0}


@pytest.mark.parametrize("name", ["moon", "mnist", "digits", "calorimeter"])
def test_shipped_configs_are_valid_json_with_the_tutorial_keys(name):
    path = ROOT / "configs" / f"config_{name}.json"
    raw = json.loads(path.read_text())  # strict JSON
    assert set(TUTORIAL_KEYS) <= set(raw)
    cfg = load_config(path)
    assert cfg["MODEL"] and cfg.path == str(path)


def test_defaults_filled_and_types_coerced():
    cfg = validate_config({**minimal(), "LR": "1e-3", "BATCH": 64.0})
    assert cfg["LR"] == pytest.approx(1e-3) and isinstance(cfg["LR"], float)
    assert cfg["BATCH"] == 64 and isinstance(cfg["BATCH"], int)
    assert cfg["BACKBONE"] == SCHEMA["BACKBONE"].default
    assert cfg["KERNEL"] == 3


def test_objective_keys_reach_the_train_settings():
    from ffjord_kit.training.from_config import train_settings_from
    cfg = validate_config({**minimal(), "objective": "flow_matching", "COUPLING": "ot",
                           "FM_DRAWS": 2, "FINETUNE_EPOCHS": 1, "FINETUNE_LR": 1e-3,
                           "REG": 0.01})
    s = train_settings_from(cfg)
    assert (s.objective, s.flow_matching.coupling, s.flow_matching.draws) == \
        ("flow_matching", "ot", 2)
    assert s.objective_at(0) == "flow_matching" and s.objective_at(2) == "max_likelihood"
    assert s.finetune_lr == 1e-3 and s.kinetic == 0.01  # REG acts in the fine-tune
    assert train_settings_from(validate_config(minimal())).objective == "max_likelihood"


def test_tutorial_style_file_loads(tmp_path):
    text = """{
      'SHAPE': [2],
      'BATCH': 375,
      'LR': '1e-2',
      'MAXEPOCH': 500,
      'EARLYSTOP': 10,
      'NSTACKED': 2,
      'NLAYERS': 4,
      'LAYER_SIZE': [32, 16, 8, 4,],
      'KERNEL': 3,
      'STRIDE': 2,
      'ACT': 'tanh',
      'MODEL': 'moon',
      'REG': 0.01,
      'BATCHNORM': True,
    }"""
    path = tmp_path / "config_moon.json"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg["LR"] == pytest.approx(1e-2) and cfg["LAYER_SIZE"] == [32, 16, 8, 4]
    assert cfg["BATCHNORM"] is True


@pytest.mark.parametrize("change, key, fragment", [
    ({"LR": "fast"}, "LR", "must be a number"),
    ({"BATCH": 12.5}, "BATCH", "must be an integer"),
    ({"BATCH": True}, "BATCH", "must be an integer"),
    ({"LAYER_SIZE": 8}, "LAYER_SIZE", "list of integers"),
    ({"ACT": "relu6"}, "ACT", "must be one of"),
    ({"NLAYERS": 3}, "NLAYERS", "LAYER_SIZE has only 2"),
    ({"BACKBONE": "transformer"}, "BACKBONE", "must be one of"),
    ({"BACKBONE": "conv_unet"}, "IMAGE_SHAPE", "is required"),
    ({"IMAGE_SHAPE": [3, 3, 1]}, "IMAGE_SHAPE", "holds 9 values"),
    ({"TRACE": "exactly"}, "TRACE", "must be one of"),
    ({"BATCHNORM": "yes"}, "BATCHNORM", "true or false"),
    ({"MODEL": "../x"}, "MODEL", "plain folder name"),
    ({"LR": -1}, "LR", "must be > 0"),
    ({"OBJECTIVE": "score_matching"}, "OBJECTIVE", "must be one of"),
    ({"COUPLING": "sinkhorn"}, "COUPLING", "must be one of"),
    ({"FINETUNE_EPOCHS": 2}, "FINETUNE_EPOCHS", "needs OBJECTIVE 'flow_matching'"),
    ({"OBJECTIVE": "flow_matching", "FINETUNE_EPOCHS": 9}, "FINETUNE_EPOCHS", "MAXEPOCH is 3"),
    ({"FM_DRAWS": 0}, "FM_DRAWS", "must be >= 1"),
    ({"PRECISION": "float16"}, "PRECISION", "float32 or bfloat16"),
    ({"PRECISION": "bfloat16", "BACKBONE": "mlp"}, "PRECISION", "dense_unet or conv_unet"),
])
def test_bad_values_name_key_and_file(tmp_path, change, key, fragment):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**minimal(), **change}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"'{key}'" in msg and fragment in msg


def test_missing_and_unknown_keys(tmp_path):
    path = tmp_path / "c.json"
    raw = minimal()
    del raw["REG"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"missing key 'REG'"):
        load_config(path)
    path.write_text(json.dumps({**minimal(), "LEARNING_RATE": 1}))
    with pytest.raises(ConfigError, match=r"unknown key 'LEARNING_RATE'"):
        load_config(path)


def test_tutorial_mnist_file_with_disabled_alternatives_loads_with_a_note(tmp_path):
    # The tutorial's own MNIST config parks the convolutional variant under 'KEY_' names.
    path = tmp_path / "config_mnist.json"
    path.write_text("""{
      'SHAPE': [784], 'SHAPE_': [28, 28, 1], 'BATCH': 625, 'LR': '1e-4', 'MAXEPOCH': 100,
      'EARLYSTOP': 10, 'NSTACKED': 3, 'NLAYERS': 2, 'LAYER_SIZE': [4096, 2048],
      'LAYER_SIZE_': [64, 64, 128], 'KERNEL': 3, 'STRIDE': 2, 'ACT': 'tanh',
      'MODEL': 'mnist', 'REG': 0.01,
    }""")
    notes = []
    cfg = load_config(path, note=notes.append)
    assert cfg["SHAPE"] == [784] and cfg["LAYER_SIZE"] == [4096, 2048]
    assert len(notes) == 1 and "SHAPE_, LAYER_SIZE_" in notes[0] and "\n" not in notes[0]
    # A misspelt key without the underscore is still an error.
    path.write_text(json.dumps({**minimal(), "SHAPES": [2]}))
    with pytest.raises(ConfigError, match=r"unknown key 'SHAPES'"):
        load_config(path)


def test_unparsable_and_absent_files(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"SHAPE": [2], "BATCH": }')
    with pytest.raises(ConfigError, match=r"broken.json: not valid JSON \(line 1"):
        load_config(path)
    path.write_text("{'SHAPE': __import__('os')}")
    with pytest.raises(ConfigError, match="unsupported value"):
        load_config(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="top level"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.json")


def test_replace_revalidates():
    cfg = validate_config(minimal())
    assert cfg.replace(MAXEPOCH=7)["MAXEPOCH"] == 7 and cfg["MAXEPOCH"] == 3
    with pytest.raises(ConfigError, match="'MAXEPOCH'"):
        cfg.replace(MAXEPOCH=0)


def test_lower_case_dialect_and_duplicates(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({k.lower(): v for k, v in minimal().items()}))
    cfg = load_config(path)
    assert cfg["LR"] == minimal()["LR"] and cfg["NSTACKED"] == minimal()["NSTACKED"]
    path.write_text(json.dumps({**minimal(), "lr": 0.5}))
    with pytest.raises(ConfigError, match="key 'LR' is given twice"):
        load_config(path)


@pytest.mark.parametrize("kind, change, fragment", [
    ("flashsim", {"training": {"lrr": 1}}, "unknown key 'training.lrr'"),
    ("flashsim", {"training": {"epochs": "many"}}, "key 'training.epochs' must be an integer"),
    ("flashsim", {"flow": {"features": 3}}, "key 'flow.features' is set by the program"),
    ("flashsim", {"flow": {"batch_norm": "yes"}}, "key 'flow.batch_norm' must be true or false"),
    ("klm", {"training": {"learning_rate": "fast"}}, "key 'training.learning_rate' must be a"),
    ("klm", {"modell": {}}, "unknown config section 'modell'"),
    ("klm", {"model": {"num_layers": 0}}, "model.num_layers must be >= 1"),
])
def test_spline_configs_go_through_the_one_strict_loader(tmp_path, kind, change, fragment):
    from ffjord_kit.config import merge_overrides
    from ffjord_kit.flashsim.config import load_config as load_flashsim
    from ffjord_kit.klm.config import load_config as load_klm

    base = json.loads((ROOT / "configs" / ("flashsim_jets_cpu.json" if kind == "flashsim"
                                           else "klm_cpu.json")).read_text())
    path = tmp_path / "c.json"
    path.write_text(json.dumps(merge_overrides(base, change)))
    with pytest.raises(ConfigError) as err:
        (load_flashsim if kind == "flashsim" else load_klm)(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and fragment in msg
    # The tutorial's relaxed style and numbers as strings load here too.
    path.write_text(json.dumps(base).replace('"', "'").replace("0.001", "'1e-3'"))
    loaded = (load_flashsim if kind == "flashsim" else load_klm)(path)
    assert loaded.to_dict() == (load_flashsim if kind == "flashsim" else load_klm)(
        ROOT / "configs" / path.name.replace("c.json", "flashsim_jets_cpu.json" if
                                             kind == "flashsim" else "klm_cpu.json")).to_dict()
