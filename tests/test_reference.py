"""The generated references (docs/cli.md, docs/config.md) and the README's command list match the code."""

from __future__ import annotations

from pathlib import Path

from reverie.cli import reference

ROOT = Path(__file__).resolve().parents[1]


def test_generated_references_are_up_to_date():
    for name, text in (("cli.md", reference.cli_markdown()), ("config.md", reference.config_markdown())):
        committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/{name} is stale: run `make docs` (python -m reverie.cli.reference)"


def test_every_command_is_in_the_readme_and_every_key_in_the_reference():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # `reverie users add` and its siblings count as `reverie users`
    missing = [name for name, _ in reference.commands() if " ".join(name.split()[:2]) not in readme]
    assert not missing, f"commands missing from README's command list: {missing}"
    from reverie.config import Settings

    config = reference.config_markdown()
    for section, field in Settings.model_fields.items():
        if hasattr(field.annotation, "model_fields"):
            for key in field.annotation.model_fields:
                assert f"| `{key}` |" in config, (section, key)
