"""Model files read from outside: checked before anything in them is loaded.

Two checks:
- a run's model files (its weights, an imported ONNX file or .pt2 program) must still have the sha256 that its
  model.json recorded when the run was written: a file swapped in a shared or downloaded run folder is refused;
- a torch.export program (.pt2) is read only when nothing in it can run code. `torch.export.load` is not safe on a
  file from elsewhere: when the pickled sample inputs fail torch's safe load it retries with `weights_only=False`
  (any pickle runs), weights and constants marked `use_pickle` are unpickled without the safe loader, other
  constants go through `pickle.loads`, an AOTInductor package loads a shared library, and the graph's shape
  expressions are parsed by `sympy.sympify`, which evaluates Python. So the archive is read once into memory, its
  members are checked against the layout `torch.export.save` writes (anything else is refused), the graph's
  operators and shape expressions are checked against plain forms, and torch then loads those same bytes with every
  `torch.load` forced to the safe loader (TORCH_FORCE_WEIGHTS_ONLY_LOAD, torch's documented switch).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import pickle
import re
import threading
import zipfile
from pathlib import Path

from .digests import sha256_of
from .environ import environment
from .errors import DataError, DeepworksError

# The members torch.export.save writes (under the archive's one top folder).
PT2_MEMBERS = re.compile(r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
                         r"|models/\w+\.json|data/weights/\w+_weights_config\.json|data/weights/weight_\d+"
                         r"|data/constants/\w+_constants_config\.json|data/constants/tensor_\d+"
                         r"|data/sample_inputs/\w+\.pt|extra/[\w.-]+)")
# A graph's operators: torch's registered operators, Python's operator and math functions, torch's symbolic helpers.
TARGETS = re.compile(r"torch\.ops(\.\w+){2,3}|_operator\.\w+|math\.\w+|torch\.(sym_\w+|_sym_\w+|_check\w*|_assert\w*)")
# A shape expression: symbols (s0, u3), numbers, arithmetic and comparisons, and these names only.
EXPR_CHARACTERS = re.compile(r"[\w\s()+\-*/%,.=<>!'&|~]*")
EXPR_NAMES = {
    "Symbol", "Integer", "Float", "Rational", "True", "False", "oo", "Max", "Min", "Abs", "Eq", "Ne", "Lt", "Le",
    "Gt", "Ge", "And", "Or", "Not", "Mul", "Add", "Pow", "floor", "ceiling", "positive", "negative", "integer",
    "nonnegative", "nonpositive", "real", "finite", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod",
    "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "TruncToInt",
    "TruncToFloat", "IntTrueDiv", "FloatTrueDiv", "IsNonOverlappingAndDenseIndicator", "RoundToInt",
    "RoundDecimal", "ToFloat", "Identity", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "OpaqueUnaryFn_sqrt",
}
SYMBOL_NAME = re.compile(r"[a-z]{1,3}\d+")
_LOADING = threading.Lock()  # one pt2 load at a time: the safe-load switch is process-wide


def check_recorded_sha256(path: Path, recorded: str | None, model_file: Path) -> None:
    """Refuse `path` when model.json recorded another sha256 for it (nothing is checked where none was recorded:
    runs written before deepworks recorded them)."""
    if not recorded:
        return
    found = sha256_of(path)
    if found != recorded:
        raise DeepworksError(f"'{path}' is not the file this run was written with: Expected sha256 {recorded} (recorded "
                             f"in '{model_file}'). Received: {found}. It was changed or swapped since, so it was not "
                             f"loaded. Restore the run folder from a copy you trust, or train (or import) it again.")


def load_pt2(path: Path, data: bytes | None = None):
    """The torch.export program in `path` (or in `data`, its bytes), loaded without running anything from the file
    (see the module). Refused with a DataError that names the file and what is wrong."""
    import torch

    if data is None:
        data = Path(path).read_bytes()
    check_pt2_archive(path, data)
    try:
        with _LOADING, torch_loads_weights_only(), quiet_torch_export():
            return torch.export.load(io.BytesIO(data))
    except pickle.UnpicklingError:
        raise DataError(f"'{path}' holds pickled Python objects other than tensors, which could run code when loaded: "
                        f"it was refused. Expected a .pt2 file written by torch.export.save.") from None


def check_pt2_archive(path: Path, data: bytes) -> None:
    """The archive has the layout torch.export.save writes, and its graphs nothing that can run code on loading."""
    not_pt2 = (f"'{path}' is not a torch.export program (a TorchScript file, or a .pt2 of another kind?). Expected a "
               f".pt2 file written by torch.export.save.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = [n for n in archive.namelist() if not n.endswith("/")]
    except (zipfile.BadZipFile, ValueError, OSError):
        raise DataError(not_pt2) from None
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise DataError(not_pt2)
    members = [n.split("/", 1)[1] for n in names]
    if "archive_format" not in members:
        raise DataError(not_pt2)
    others = [m for m in members if not PT2_MEMBERS.fullmatch(m)]
    if others:
        raise DataError(f"'{path}' holds {others[0]}, which is not part of a plain torch.export program (pickled "
                        f"objects or compiled code, which could run when loaded): it was refused. Expected a .pt2 "
                        f"file written by torch.export.save of a model made of tensors and torch operators.")
    for name, member in zip(names, members):
        if member.startswith("models/"):
            check_graph(path, archive.read(name))


def check_graph(path: Path, text: bytes) -> None:
    """Every operator a serialized graph calls is one of torch's, and every shape expression is plain arithmetic."""
    try:
        graph = json.loads(text)
    except (ValueError, RecursionError):
        raise DataError(f"'{path}' holds a graph that is not valid JSON. Expected a .pt2 file written by "
                        f"torch.export.save.") from None
    for key, value in strings_in(graph):
        if key == "target" and not TARGETS.fullmatch(value):
            raise DataError(f"'{path}' calls {value[:80]!r}, which is not a torch operator: it was refused. Expected "
                            f"a graph of torch operators (torch.ops.*).")
        if key == "expr_str" and not plain_expression(value):
            raise DataError(f"'{path}' holds the shape expression {value[:80]!r}, which is not plain arithmetic on "
                            f"symbols (parsing it could run code): it was refused.")


def strings_in(value) -> list[tuple[str, str]]:
    """(key, text) of every string held under a key anywhere in parsed JSON (walked without recursion)."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(inner, str):
                    found.append((key, inner))
                else:
                    stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def plain_expression(text: str) -> bool:
    if not EXPR_CHARACTERS.fullmatch(text) or re.search(r"\.\s*[A-Za-z_]", text):
        return False  # no attribute access, brackets, braces, backslashes or double quotes
    return all(name in EXPR_NAMES or SYMBOL_NAME.fullmatch(name) or name.isdigit()
               for name in re.findall(r"[A-Za-z_]\w*", text))


@contextlib.contextmanager
def torch_loads_weights_only():
    """Every torch.load in this block uses torch's safe loader, whatever its caller asks for."""
    with environment({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": None, "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"}):
        yield


@contextlib.contextmanager
def quiet_torch_export():
    """torch.export logs a full traceback before it raises on a file it cannot read; deepworks says it in one line."""
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
