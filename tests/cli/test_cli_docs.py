"""docs/cli.md documents every registered command; it is generated from the commands' own help.

Regenerate after adding or changing a command:  python -m tests.cli.test_cli_docs > docs/cli.md
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from tactful_cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"

INTRO = """# CLI reference

`tactful` is the operator's command line: set up a store, run the demo, answer data subject
requests (export, erasure, rectification, restriction, objection) on time, manage keys and
retention, verify the audit log and produce compliance reports. It uses only the public
`tactful` API, so everything it does is also available to Python code.

This page is generated from the commands' own help
(`python -m tests.cli.test_cli_docs > docs/cli.md`); a test fails when a registered command is
missing here. `tactful COMMAND --help` prints the same text.

## Conventions

- **Where the store is**: `--home` (default `./.tactful`), `--db` (a SQLite or
  `postgresql://` URL), `--key-file`, `--policies`, or the environment variables
  `TACTFUL_HOME`, `TACTFUL_DB_URL`, `TACTFUL_KEY_FILE`, `TACTFUL_POLICIES`. These global options
  come before the command: `tactful --db postgresql://db/tactful export alice`.
- **Exit codes**: `0` done; `1` user error (unknown user or request, invalid value, refused
  confirmation); `2` usage error (unknown option, missing argument); `3` integrity problem (a
  ciphertext, a key or the audit chain does not verify).
- **Errors** are one line on stderr starting with `error:`, never a traceback, and never contain
  personal data.
- **`--json`**: the data subject request commands print machine-readable JSON with it.
- **Destructive commands** (`erase`) ask for confirmation unless `--yes` is given.

## Commands
"""


def _commands(group: Any, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    ctx = group.context_class(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        yield (*prefix, name), cmd
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, (*prefix, name))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(
        app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    )
    assert result.exit_code == 0, (path, result.output)
    text = result.output.replace("Usage: root", "Usage: tactful").replace(
        "Usage: main", "Usage: tactful"
    )
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def all_commands() -> list[tuple[str, ...]]:
    """Every registered command path, e.g. ("requests", "extend")."""
    return [path for path, _ in _commands(typer.main.get_command(app), ())]


def render() -> str:
    """The whole reference as Markdown, from each command's --help output."""
    parts = [INTRO, "### tactful\n", f"```\n{_help(())}\n```\n"]
    for path in all_commands():
        parts.append(f"### tactful {' '.join(path)}\n")
        parts.append(f"```\n{_help(path)}\n```\n")
    return "\n".join(parts).rstrip() + "\n"


def test_every_registered_command_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [p for p in all_commands() if f"### tactful {' '.join(p)}\n" not in text]
    assert not missing, (
        f"docs/cli.md lacks {missing}; regenerate: python -m tests.cli.test_cli_docs > docs/cli.md"
    )


def test_the_reference_documents_exit_codes_and_every_rights_command() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "**Exit codes**" in text
    for command in ("export", "erase", "rectify", "restrict", "unrestrict", "object"):
        assert f"### tactful {command}\n" in text
    assert "### tactful requests extend\n" in text and "--reason" in text


if __name__ == "__main__":
    print(render(), end="")
