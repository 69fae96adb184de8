"""The bias audit of a face recogniser: given a CSV that puts each person in a group (any attribute the user chooses),
the false-accept and false-reject rates of each group at the run's threshold, with 95 % intervals (Wilson's), and a
warning for each pair of groups whose intervals do not overlap (metrics/verification.py group_rates).

What it can show: that on these people, at this threshold, one group's faces are confused or rejected more often
than another's by more than the sample's chance. What it cannot: a rate for people unlike those audited, a cause,
or fairness beyond these two rates; with few people per group the intervals are wide and say so.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DataError

MAX_ROWS = 100_000


def read_groups(path: str | Path) -> dict[str, str]:
    """person -> group from a CSV with a header whose first two columns are the person and their group."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"No such file '{path}'. Expected a CSV of person,group (a header, then one row per person).")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(row for _, row in zip(range(MAX_ROWS + 2), csv.reader(f)))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"'{path}' is not a UTF-8 CSV ({err}). Expected rows of person,group.") from None
    body = [r for r in rows[1:] if len(r) >= 2 and r[0].strip()]
    if len(rows) > MAX_ROWS + 1:
        raise DataError(f"'{path}' has more than {MAX_ROWS:,} rows. Expected one row per person.")
    if not body:
        raise DataError(f"'{path}' has no rows of person,group under its header. Expected, for example:\n"
                        f"person,group\nalice,A\nbob,B")
    return {r[0].strip(): r[1].strip() for r in body}


def audit(trained, groups_csv: str | Path, data: str | None = None) -> dict:
    """The run's (or `data`'s) people, embedded, and their pairs' error rates per group at the run's threshold:
    {'threshold', 'people', 'groups': {group: rates}, 'differ': [...], 'not_in_csv': [...], 'warnings': [...]}."""
    from ..metrics.verification import group_rates
    from .faces import embed

    groups = read_groups(groups_csv)
    faces, names = audited_faces(trained, data)
    missing = sorted(set(names) - set(groups))
    known = np.array([n in groups for n in names])
    if len({groups[n] for n in set(names) if n in groups}) < 2:
        raise DataError(f"'{groups_csv}' puts the audited people in fewer than two groups (people audited: "
                        f"{', '.join(sorted(set(names))[:8])} ...). Expected a group for each, and two groups at "
                        f"least to compare.")
    e = embed(trained.model, faces[known], trained.device)
    threshold = trained.face.threshold
    audited = {n: groups[n] for n in set(names) if n in groups}
    found = group_rates(e, np.array(names)[known], audited, threshold)
    warnings = [f"{d['rate'].upper()} differs between {d['groups'][0]} ({d[d['groups'][0]]:.3f}) and "
                f"{d['groups'][1]} ({d[d['groups'][1]]:.3f}) beyond their 95 % intervals." for d in found["differ"]]
    for group, rates in found["groups"].items():
        if rates["people"] < 5:
            warnings.append(f"{group} has {rates['people']} person(s): its rates rest on few people and their "
                            f"intervals are wide.")
    return {"threshold": threshold, "far_target": trained.task.meta.get("far"), "people": len(set(names)),
            **found, "not_in_csv": missing, "warnings": warnings}


def audited_faces(trained, data: str | None) -> tuple:
    """(uint8 faces (N, 3, 112, 112), each face's person name): `data`'s person folders, else the run's test people."""
    faces, people = trained.examples("test", data)[:2]
    return faces, [trained.task.people_names[int(p)] for p in people]
