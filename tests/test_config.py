"""The one configuration schema: defaults < YAML < environment < options; unknown keys are errors."""

import pytest

from reverie.config import load_settings
from reverie.errors import ReverieError


def test_defaults_and_home(tmp_path):
    s = load_settings(home=tmp_path, environ={})
    assert s.home == tmp_path
    assert s.db_path == tmp_path / "reverie.db"
    assert s.model.path == "default"
    assert s.generation.temperature == 0.7


def test_precedence_yaml_env_options(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("generation:\n  temperature: 0.3\n  top_p: 0.5\nwake:\n  chunk_tokens: 128\n")
    env = {"REVERIE_GENERATION__TOP_P": "0.6", "REVERIE_CONFIG": str(cfg)}
    s = load_settings(home=tmp_path, environ=env, overrides={"generation": {"temperature": 0.9}})
    assert s.generation.temperature == 0.9  # option beats file
    assert s.generation.top_p == 0.6  # environment beats file
    assert s.wake.chunk_tokens == 128  # file beats default


def test_home_config_yaml_is_picked_up(tmp_path):
    (tmp_path / "config.yaml").write_text("model:\n  dtype: bfloat16\n")
    assert load_settings(home=tmp_path, environ={}).model.dtype == "bfloat16"


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("generation:\n  temprature: 0.3\n", "generation.temprature: unknown key"),
        ("colour: blue\n", "colour: unknown key"),
        ("generation:\n  temperature: hot\n", "generation.temperature"),
        ("generation: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_bad_yaml_is_one_clear_error(tmp_path, yaml_text, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ReverieError, match=needle.replace("[", r"\[").replace(".", r"\.")):
        load_settings(home=tmp_path, config_file=cfg, environ={})


def test_unknown_environment_key_is_an_error(tmp_path):
    with pytest.raises(ReverieError, match="REVERIE_GENERATION_TEMPERATURE"):
        load_settings(home=tmp_path, environ={"REVERIE_GENERATION_TEMPERATURE": "1"})
    with pytest.raises(ReverieError, match="unknown key"):
        load_settings(home=tmp_path, environ={"REVERIE_GENERATION__TEMPRATURE": "1"})


def test_config_command_prints_effective_settings(home, cli, monkeypatch):
    monkeypatch.setenv("REVERIE_GENERATION__TOP_K", "7")
    r = cli("--seed", "42", "config")
    assert r.code == 0, r.err
    assert "top_k: 7" in r.out and "seed: 42" in r.out


def test_config_command_bad_value(home, cli, monkeypatch):
    monkeypatch.setenv("REVERIE_GENERATION__TEMPERATURE", "-1")
    r = cli("config")
    assert r.code == 1
    assert r.err.startswith("error:") and "Traceback" not in r.err


def test_list_settings_from_the_environment(tmp_path):
    env = {"REVERIE_DREAM__GENERATORS": "qa, facts"}
    assert load_settings(home=tmp_path, environ=env).dream.generators == ["qa", "facts"]
    env = {"REVERIE_DREAM__GENERATORS": '["restate"]'}
    assert load_settings(home=tmp_path, environ=env).dream.generators == ["restate"]
    # a list or a named choice: sleep.target_modules is `all-linear` or module names
    for value, expected in (("all-linear", "all-linear"), ("gate_proj, up_proj", ["gate_proj", "up_proj"]),
                            ("down_proj", ["down_proj"]), ('["q_proj"]', ["q_proj"])):
        env = {"REVERIE_SLEEP__TARGET_MODULES": value}
        assert load_settings(home=tmp_path, environ=env).sleep.target_modules == expected
