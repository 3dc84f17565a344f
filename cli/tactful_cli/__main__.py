"""`python -m tactful_cli` runs the `tactful` command."""

from tactful_cli.main import run

run()
