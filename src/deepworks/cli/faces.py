"""`deepworks faces`: find faces in photos (no run needed); and with a trained face run (deepworks train --task
faces), enrol people from a few photos, identify them in photos, verify two photos, forget people, list them, and
audit the error rates per group of people."""

from __future__ import annotations

import json

from .common import add_command, add_json, add_run_command

MIN_FACE_HELP = "the smallest face looked for, in pixels (default: the run's, 20; smaller finds more, more slowly)"


def add(sub) -> None:
    p = add_command(sub, "faces", None, help="find, enrol, identify and verify faces",
                    description="Faces: find them with MTCNN (its weights: deepworks weights fetch mtcnn); with a "
                                "face recognition run (deepworks train --task faces), enrol people from a few photos "
                                "and recognise them, without retraining.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    find = add_command(actions, "find", cmd_find)
    find.add_argument("photos", nargs="+", help="photo files or folders of them")
    find.add_argument("--min-face", type=int, default=20, metavar="PIXELS",
                      help="the smallest face looked for (default 20; smaller finds more, more slowly)")
    find.add_argument("--out", metavar="DIR", help="also write each face, aligned to 112 x 112, as NAME-face-K.png")
    add_json(find, "each photo's faces (box, score, five landmarks)")
    enroll = add_run_command(actions, "enroll", cmd_enroll)
    enroll.add_argument("--name", required=True, help="the person's name (letters, digits, spaces, . ' -)")
    enroll.add_argument("photos", nargs="+", help="photos of them (files or folders): the largest face of each")
    identify = add_run_command(actions, "identify", cmd_identify)
    identify.add_argument("photos", nargs="+", help="photo files or folders of them")
    identify.add_argument("--out", metavar="DIR", help="also write each photo with its faces boxed and named")
    verify = add_run_command(actions, "verify", cmd_verify)
    verify.add_argument("photos", nargs=2, metavar="PHOTO", help="two photos: is the largest face of each one person?")
    forget = add_run_command(actions, "forget", cmd_forget)
    forget.add_argument("--name", required=True, help="the enrolled person to forget")
    add_run_command(actions, "people", cmd_people)
    audit = add_run_command(actions, "audit", cmd_audit)
    audit.add_argument("--groups", required=True, metavar="CSV", help="a CSV of person,group (a header first)")
    audit.add_argument("--data", metavar="FOLDER", help="a folder of person folders to audit on [default: the run's "
                                                        "test people]")
    for p in (enroll, identify, verify):
        p.add_argument("--min-face", type=int, metavar="PIXELS", help=MIN_FACE_HELP)
    for p in (enroll, identify, verify, audit, forget, actions.choices["people"]):
        add_json(p, "the answer")


def cmd_find(args) -> int:
    """find faces and five landmarks in photos; write each face aligned

    MTCNN's three networks find each face's box and its eyes, nose and mouth corners; --out writes each face turned,
    scaled and moved so that those land where a face recogniser expects them (112 x 112)."""
    from ..api.faces import find_faces

    answers = find_faces(args.photos, args.min_face, args.out)
    for answer in answers:
        for face in answer["faces"]:
            face.pop("aligned")
    if args.json:
        print(json.dumps(answers))
        return 0
    for answer in answers:
        print(f"{answer['input']}: {len(answer['faces'])} face(s)")
        for k, face in enumerate(answer["faces"]):
            x1, y1, x2, y2 = face["box"]
            where = f" -> {face['file']}" if "file" in face else ""
            print(f"  {k}: {x2 - x1:.0f} x {y2 - y1:.0f} px at ({x1:.0f}, {y1:.0f}), score {face['score']:.3f}{where}")
    return 0


def cmd_enroll(args) -> int:
    """enrol a person in a face run's gallery from a few photos of them

    The largest face of each photo is embedded and kept beside the run (gallery.safetensors); nothing is retrained.
    Three photos or more, in different light and poses, recognise them best."""
    from .. import api

    found = api.load(args.run).enroll(args.name, args.photos, min_face=args.min_face)
    if args.json:
        print(json.dumps(found))
        return 0
    people = f"{found['people']} {'person' if found['people'] == 1 else 'people'}"
    print(f"enrolled {found['name']} from {len(found['photos'])} photo(s); {people} enrolled")
    if found["without_face"]:
        print(f"no face found in: {', '.join(found['without_face'])}")
    return 0


def cmd_identify(args) -> int:
    """name every face in photos from the people enrolled

    Each face found is compared with every enrolled photo; the nearest person names it when their similarity reaches
    the run's threshold (set on validation to --far false accepts), else it is 'unknown'."""
    from .. import api

    answers = api.load(args.run).identify(args.photos, min_face=args.min_face, out=args.out)
    if args.json:
        print(json.dumps(answers))
        return 0
    for answer in answers:
        print("\n".join(faces_lines(answer)))
    return 0


def faces_lines(answer: dict) -> list[str]:
    """One photo's faces for people: how many, then each face's name, similarity and box."""
    lines = [f"{answer['input']}: {len(answer['faces'])} face(s)" + (f" ({answer['note']})" if "note" in answer else "")
             + (f" -> {answer['drawn']}" if "drawn" in answer else "")]
    for f in answer["faces"]:
        x1, y1, x2, y2 = f["box"]
        lines.append(f"  {f['name']}  similarity {f['similarity']:.3f}  at ({x1:.0f}, {y1:.0f}) "
                     f"{x2 - x1:.0f} x {y2 - y1:.0f} px")
    return lines


def cmd_verify(args) -> int:
    """say whether two photos show one person

    The largest face of each is embedded; they are one person when their similarity reaches the run's threshold."""
    from .. import api

    found = api.load(args.run).verify(*args.photos, min_face=args.min_face)
    if args.json:
        print(json.dumps(found))
        return 0
    verdict = "the same person" if found["same_person"] else "two different people"
    print(f"{verdict}: similarity {found['similarity']:.3f} (threshold {found['threshold']:.3f})")
    return 0


def cmd_forget(args) -> int:
    """remove an enrolled person from a face run's gallery"""
    from .. import api

    n = api.load(args.run).forget(args.name)
    print(json.dumps({"forgot": args.name, "photos": n}) if args.json else f"forgot {args.name} ({n} photo(s))")
    return 0


def cmd_people(args) -> int:
    """list the people enrolled in a face run's gallery"""
    from .. import api

    people = api.load(args.run).people()
    if args.json:
        print(json.dumps(people))
    else:
        print("\n".join(f"{name}: {n} photo(s)" for name, n in people.items()) or "nobody is enrolled yet")
    return 0


def cmd_audit(args) -> int:
    """false-accept and false-reject rates per group of people, with 95-percent intervals

    --groups puts each person in a group (any attribute you choose). At the run's threshold, each group's pairs of
    one person (false rejects) and of two people (false accepts) are counted; groups whose intervals do not overlap
    differ by more than chance on these people. It cannot say why, nor how people unlike these would fare."""
    from .. import api

    found = api.load(args.run).audit(args.groups, args.data)
    if args.json:
        print(json.dumps(found))
        return 0
    print(f"{found['people']} people at threshold {found['threshold']:.4f}")
    for group, r in found["groups"].items():
        print(f"  {group}: {r['people']} people  false rejects {rate(r, 'frr', 'genuine_pairs', 3)}  false accepts "
              f"{rate(r, 'far', 'impostor_pairs', 4)}")
    if found["not_in_csv"]:
        print(f"not in the CSV, left out: {', '.join(found['not_in_csv'][:10])}")
    if found["not_audited"]:
        print(f"in the CSV but not among the people audited: {', '.join(found['not_audited'][:10])}")
    for w in found["warnings"]:
        print(f"warning: {w}")
    return 0


def rate(r: dict, key: str, pairs: str, digits: int) -> str:
    """A rate with its interval and the pairs it counts, or n/a when there are no such pairs."""
    if not r[pairs]:
        return "n/a (no such pairs)"
    low, high = r[f"{key}_95"]
    return f"{r[key]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] of {r[pairs]} pairs"
