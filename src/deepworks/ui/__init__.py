"""The web UI (`deepworks ui`): a REST API over the same app as `deepworks serve`, training in worker processes,
and the page built from the front-end sources in the repository's ui/ folder into static/."""

from .app import build_ui_app, ui

__all__ = ["build_ui_app", "ui"]
