"""Builds the web UI's page (ui/, Vite) into src/deepworks/ui/static whenever the package is built or installed,
editable installs included, so the README's set-up needs no step of its own. Without Node.js and npm the package
installs all the same, and `deepworks ui` says how to build the page. Then the documentation site (docs/, MkDocs)
into ui/site, which `deepworks ui` serves at /docs; without MkDocs it is skipped with a message, and `deepworks ui`
builds it at its first start where MkDocs has come since (as the [test] extra brings it, after this build ran)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
UI = ROOT / "ui"
DOCS_SITE = ROOT / "src" / "deepworks" / "ui" / "site"  # beside static/, which Vite empties when it builds


def build_page() -> None:
    if not (UI / "package.json").is_file():  # an sdist without the sources: the page came built
        return
    npm = shutil.which("npm")
    if npm is None:
        print("deepworks: npm not found, so the web UI's page is not built (install Node.js 20 and npm, then "
              "reinstall).", file=sys.stderr)
        return
    if not (UI / "node_modules" / ".package-lock.json").is_file():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=UI, check=True)
    subprocess.run([npm, "run", "build"], cwd=UI, check=True)


def build_docs(site: Path = DOCS_SITE) -> None:
    """The documentation site. MkDocs is the one on PATH (the
    user's, since a build environment has none): it runs without the build environment's PYTHONPATH, whose
    sitecustomize would hide the user's packages, and its hook imports deepworks from src/. A site that does not
    build is said, and the package installs without it."""
    if not (ROOT / "mkdocs.yml").is_file():  # an sdist without the docs' sources
        return
    mkdocs = shutil.which("mkdocs")
    if mkdocs is None:
        print("deepworks: mkdocs not found, so the documentation at /docs of `deepworks ui` is not built (pip install "
              "mkdocs mkdocs-material \"mkdocstrings[python]\", then reinstall).", file=sys.stderr)
        return
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    built = subprocess.run([mkdocs, "build", "--quiet", "--site-dir", str(site)], cwd=ROOT, env=env)
    if built.returncode != 0:
        print("deepworks: the documentation site did not build (see above); the package installs without it, and "
              "`mkdocs build` shows why.", file=sys.stderr)


class BuildWithPage(build_py):
    def run(self):
        build_page()
        build_docs()
        super().run()


setup(cmdclass={"build_py": BuildWithPage})
