"""`deepworks faces find`: faces and their landmarks in photos, each aligned to 112 x 112."""

from __future__ import annotations

from .common import add_command, add_json


def add(sub) -> None:
    p = add_command(sub, "faces", None, help="find faces in photos and align them",
                    description="Faces: find them with MTCNN (its weights: deepworks weights fetch mtcnn).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    find = add_command(actions, "find", cmd_find)
    find.add_argument("photos", nargs="+", help="photo files or folders of them")
    find.add_argument("--min-face", type=int, default=20, metavar="PIXELS",
                      help="the smallest face looked for (default 20; smaller finds more, more slowly)")
    find.add_argument("--out", metavar="DIR", help="also write each face, aligned to 112 x 112, as NAME-face-K.png")
    add_json(find, "each photo's faces (box, score, five landmarks)")


def cmd_find(args) -> int:
    """find faces and five landmarks in photos; write each face aligned

    MTCNN's three networks find each face's box and its eyes, nose and mouth corners; --out writes each face turned,
    scaled and moved so that those land where a face recogniser expects them (112 x 112)."""
    import json

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
