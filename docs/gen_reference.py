"""The reference pages, made from the code when the site is built, so they say what this checkout does:

- the CLI reference from the real argparse parser (`deepworks.cli.build_parser`), every command's `--help`;
- the HTTP API from the OpenAPI schemas of `deepworks serve`'s app (built with no model: its routes do not depend
  on the models served) and of `deepworks ui`'s (on a throwaway runs folder; nothing is trained);
- the Python API: one mkdocstrings block per public name of `deepworks.__all__`, rendered from the docstrings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

COLUMNS = "100"  # the width argparse wraps to, fixed so that the page does not depend on the builder's terminal


@contextmanager
def fixed_columns():
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


def commands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line summary, parser) of every sub-command, aliases left out."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {a.dest: a.help or "" for a in sub._choices_actions}
    seen, found = set(), []
    for name, child in sub.choices.items():
        if id(child) not in seen:
            seen.add(id(child))
            found.append((name, summaries.get(name, ""), child))
    return found


def cli_reference() -> str:
    from deepworks.cli import build_parser

    with fixed_columns():
        parser = build_parser()
        listed = commands(parser)
        parts = ["# CLI reference", "",
                 "Every command's `--help`, as this version of deepworks prints it (generated from the parser when "
                 "the site is built). `deepworks train --task X --help` lists only the settings task X takes; "
                 "`deepworks use RUN --help` lists the options of that run's task.", "",
                 "| command | what it does |", "|---|---|"]
        parts += [f"| [`{name}`](#deepworks-{name}) | {summary} |" for name, summary, _ in listed]
        parts += ["", "## deepworks", "", "```text", "$ deepworks --help", parser.format_help().rstrip(), "```"]
        for name, summary, child in listed:
            parts += ["", f"## deepworks {name}", "", summary, "", "```text", f"$ deepworks {name} --help",
                      child.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


def schemas() -> tuple[dict, dict]:
    """The OpenAPI schemas of `deepworks serve` (no model loaded) and of `deepworks ui` (an empty runs folder)."""
    from deepworks.serving import make_app
    from deepworks.ui import build_ui_app

    serve = make_app([]).openapi()
    with tempfile.TemporaryDirectory() as tmp:
        app = build_ui_app(Path(tmp) / "runs", insecure=True)
        try:
            ui = app.openapi()
        finally:
            app.state.jobs.close()
    return serve, ui


def ui_route_notes() -> dict[tuple[str, str], str]:
    """What `deepworks ui`'s module docstring says of each /api route, keyed by (method, path with {} for names)."""
    import deepworks.ui.app as ui_app

    notes, key = {}, None
    for line in (ui_app.__doc__ or "").splitlines():
        match = re.match(r"\s+(GET|POST)\s+(/\S+)\s+(.*)", line)
        if match:
            key = (match.group(1), re.sub(r"\{[^}]*\}", "{}", match.group(2).split("?")[0]))
            notes[key] = match.group(3).strip()
        elif key and re.match(r"\s{20,}\S", line):
            notes[key] += " " + line.strip()
        else:
            key = None
    return notes


def route_rows(spec: dict, notes: dict) -> list[str]:
    rows = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            params = ", ".join(f"`{p['name']}` ({p['in']}{', required' if p.get('required') else ''})"
                               for p in op.get("parameters", []))
            note = notes.get((method.upper(), re.sub(r"\{[^}]*\}", "{}", path)), "")
            text = " ".join(t for t in (op.get("summary", ""), f"— {note}" if note else "") if t)
            rows.append(f"| {method.upper()} | `{path}` | {text.replace('|', '&#124;')} | {params or '—'} |")
    return rows


def verbs() -> tuple[str, ...]:
    from deepworks.cards import verbs as card_verbs

    return card_verbs()


def http_reference() -> tuple[str, dict, dict]:
    """The page and the two schemas it links to."""
    serve, ui = schemas()
    notes = ui_route_notes()
    ui_only = {"paths": {p: ops for p, ops in ui["paths"].items() if p not in serve["paths"]}}
    head = ["| method | path | summary | parameters |", "|---|---|---|---|"]
    parts = ["# HTTP API", "",
             "The routes of `deepworks serve` and of `deepworks ui`, read from their OpenAPI schemas when this site "
             "was built. A running server gives the same schema at `GET /openapi.json`; the schemas are also here: "
             "[openapi-serve.json](openapi-serve.json), [openapi-ui.json](openapi-ui.json). What each route takes "
             "and answers, with examples, is in [Production](../production.md#serve) and "
             "[The web UI](../ui.md#its-rest-api).", "",
             "Request bodies are read by the routes themselves (JSON, or a multipart upload for images and audio), "
             "so the schemas list the path and query parameters only.", "",
             "## deepworks serve", "",
             "Every route but the health probes needs `Authorization: Bearer TOKEN` when the server has a token. "
             f"The `{{verb}}` of `POST /v1/models/{{name}}/{{verb}}` is the use of the model's task: "
             f"{', '.join(f'`{v}`' for v in verbs())}.", "",
             *head, *route_rows(serve, {}), "",
             "## deepworks ui", "",
             "The web UI serves every route of `deepworks serve` above (its models are the runs you serve from the "
             "Export page) and these, which its pages call. They need the launch's token (the login link's "
             "cookie, or the header), a Host naming this server, and, for a change, the UI's own Origin.", "",
             *head, *route_rows(ui_only, notes), "",
             "The built documentation is at `/docs` of the same server, behind the same checks."]
    return "\n".join(parts) + "\n", serve, ui


EXTENDING = ["deepworks.tasks.base.Task", "deepworks.tasks.face.Face", "deepworks.cards.TaskCard",
             "deepworks.training.batches.DatasetBatches"]


def public_path(name: str) -> str | None:
    """Where `deepworks.NAME` is defined, as mkdocstrings names it (None for values such as __version__)."""
    import deepworks

    obj = getattr(deepworks, name)
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else None


def python_reference() -> str:
    import deepworks

    parts = ["# Python API reference", "",
             "Every public name of `import deepworks as dw` (`deepworks.__all__`), rendered from its docstring when "
             "this site was built. [Python API](../python-api.md) shows them in use.", ""]
    for name in deepworks.__all__:
        path = public_path(name)
        if path is None:
            continue
        alias = f" (`dw.{name}` is `{path.rsplit('.', 1)[1]}`)" if not path.endswith("." + name) else ""
        parts += [f"## dw.{name}", "", f"`{path}`{alias}", "", f"::: {path}", "    options:",
                  "      show_root_heading: false", ""]
    parts += ["## For your own tasks", "",
              "What [Callbacks and your own tasks](../extending.md) builds on.", ""]
    for path in EXTENDING:
        parts += [f"::: {path}", ""]
    return "\n".join(parts)


def openapi_json(spec: dict) -> str:
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"
