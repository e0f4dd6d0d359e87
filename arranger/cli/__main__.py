"""`python -m arranger.cli`: the same as the `lofi` command."""

from arranger.cli.main import app

app()
