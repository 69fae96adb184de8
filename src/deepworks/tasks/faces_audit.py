"""The bias audit of a face recogniser: given a CSV that puts each person in a group (any attribute the user chooses),
the false-accept and false-reject rates of each group at the run's threshold, with 95 % intervals (Wilson's), and a
warning for each pair of groups whose intervals do not overlap (metrics/verification.py group_rates).

What it can show: that on these people, at this threshold, one group's faces are confused or rejected more often
than another's by more than the sample's chance. What it cannot: a rate for people unlike those audited, a cause,
or fairness beyond these two rates. The intervals count pairs, and pairs share people, so they understate the doubt;
a difference is claimed only between groups of MIN_GROUP people or more.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DataError

MAX_ROWS = 100_000
MIN_GROUP = 5  # people a group needs before a difference from another is claimed


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
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() not in ("person", "name"):
        raise DataError(f"'{path}' does not start with a header person,group. Expected, for example:\n"
                        f"person,group\nalice,A\nbob,B")
    body = [r for r in rows[1:] if len(r) >= 2 and r[0].strip()]
    if len(rows) > MAX_ROWS + 1:
        raise DataError(f"'{path}' has more than {MAX_ROWS:,} rows. Expected one row per person.")
    if not body:
        raise DataError(f"'{path}' has no rows of person,group under its header. Expected, for example:\n"
                        f"person,group\nalice,A\nbob,B")
    groups: dict[str, str] = {}
    for person, group in ((r[0].strip(), r[1].strip()) for r in body):
        if groups.get(person, group) != group:
            raise DataError(f"'{path}' puts {person} in two groups ({groups[person]} and {group}). Expected one "
                            f"group per person.")
        groups[person] = group
    return groups


def audit(trained, groups_csv: str | Path, data: str | None = None) -> dict:
    """The run's (or `data`'s) people, embedded, and their pairs' error rates per group at the run's threshold:
    {'threshold', 'people', 'groups': {group: rates}, 'differ': [...], 'not_in_csv': [...], 'not_audited': [...] (in
    the CSV, not among the people audited: a misspelt name?), 'warnings': [...]}."""
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
    rates = found["groups"]
    found["differ"] = [d for d in found["differ"] if min(rates[g]["people"] for g in d["groups"]) >= MIN_GROUP]
    warnings = [f"{d['rate'].upper()} differs between {d['groups'][0]} ({d[d['groups'][0]]:.3f}) and "
                f"{d['groups'][1]} ({d[d['groups'][1]]:.3f}) beyond their 95 % intervals." for d in found["differ"]]
    for group, r in rates.items():
        if r["people"] < MIN_GROUP:
            warnings.append(f"{group} has {r['people']} person(s): too few to compare it with the others (its pairs "
                            f"share so few people that their intervals understate the doubt); audit {MIN_GROUP} or "
                            f"more people per group.")
    return {"threshold": threshold, "far_target": trained.task.meta.get("far"), "people": len(set(names)),
            **found, "not_in_csv": missing, "not_audited": sorted(set(groups) - set(names)), "warnings": warnings}


def audited_faces(trained, data: str | None) -> tuple:
    """(uint8 faces (N, 3, 112, 112), each face's person name): `data`'s person folders, else the run's test people."""
    faces, people = trained.examples("test", data)[:2]
    return faces, [trained.task.people_names[int(p)] for p in people]
