"""Builds the web UI's page (ui/, Vite) into src/deepworks/ui/static whenever the package is built or installed,
editable installs included, so the README's set-up needs no step of its own. Without Node.js and npm the package
installs all the same, and `deepworks ui` says how to build the page."""

import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
UI = ROOT / "ui"


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


class BuildWithPage(build_py):
    def run(self):
        build_page()
        super().run()


setup(cmdclass={"build_py": BuildWithPage})
