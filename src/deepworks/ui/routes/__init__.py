"""The web UI's REST API under /api, one router per group of pages: data.py (/api/info, the settings form, a
dataset's preview, uploads), design.py (the Model page's designer), jobs.py (training and AutoML jobs, their event
streams), runs.py (finished runs: served, exported, their results, confusion cells, a GAN's walk), trust.py (the
trust tools and the data audit), samples.py (the Start page's samples, added class by class). common.py holds what
they share; the state they work on is the app's (`app.state.ui`, a `common.UIState`), reached through the
`common.ui_state` dependency."""

from __future__ import annotations

from . import data, design, jobs, runs, samples, trust

ROUTERS = (data.router, design.router, jobs.router, runs.router, trust.router, samples.router)
