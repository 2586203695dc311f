"""The README's options table lists every option the plugin has, with its ini key."""

from pathlib import Path

from pytest_inferlab.plugin.options import OPTIONS

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_option_and_ini_key_is_in_the_readme_table():
    rows = [line for line in README.splitlines() if line.startswith("| `--inferlab-")]
    for option in OPTIONS:
        assert any(row.startswith(f"| `{option.flag}") and f"`{option.ini}`" in row for row in rows), option.flag
    assert len(rows) == len(OPTIONS)
