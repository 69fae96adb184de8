"""Face verification's scores, as the papers report them: every pair of faces scored by the cosine of their
embeddings, pairs of one person (genuine) against pairs of two (impostor). The ROC (scikit-learn's), the true-accept
rate at a false-accept rate (TAR at FAR 1 %: of the genuine pairs, the share accepted at the threshold that accepts
1 % of impostor pairs), the equal error rate (where false accepts and false rejects are as common), and the threshold
that gives a chosen false-accept rate, the operating point a deployment is calibrated to."""

from __future__ import annotations

import numpy as np
import torch


def pair_scores(embeddings: torch.Tensor, people) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor): the cosine similarity of every pair of rows of `embeddings` (N, D), split by whether the
    pair's `people` (N,) are the same."""
    e = torch.nn.functional.normalize(embeddings.float(), dim=1)
    cos = (e @ e.T).numpy()
    same = np.equal.outer(np.asarray(people), np.asarray(people))
    upper = np.triu(np.ones_like(same, dtype=bool), 1)
    return cos[same & upper], cos[~same & upper]


def roc(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-accept rates, true-accept rates, thresholds), as scikit-learn's roc_curve gives them."""
    from sklearn.metrics import roc_curve

    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    far, tar, thresholds = roc_curve(labels, np.r_[genuine, impostor], drop_intermediate=False)
    return far, tar, thresholds


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    """The largest true-accept rate whose false-accept rate is at most `far`."""
    rates, tars, _ = roc(genuine, impostor)
    return float(tars[rates <= far].max()) if (rates <= far).any() else 0.0


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Where the false-accept rate meets the false-reject rate (1 - TAR), interpolated between ROC points."""
    far, tar, _ = roc(genuine, impostor)
    frr = 1 - tar
    i = int(np.argmax(far >= frr))  # the first point where false accepts have caught up with false rejects
    if i == 0:
        return float(far[0])
    d0, d1 = frr[i - 1] - far[i - 1], frr[i] - far[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(far[i - 1] + t * (far[i] - far[i - 1]))


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The lowest cosine threshold at which at most `far` of the impostor pairs are accepted (score > threshold)."""
    if not len(impostor):
        return 0.0
    ranked = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * len(ranked)))  # impostor pairs that may pass
    return float(ranked[allowed]) if allowed < len(ranked) else float(ranked[-1])


def verification(embeddings: torch.Tensor, people) -> dict:
    """TAR at FAR 1 % and 0.1 %, the EER, and the pairs counted."""
    genuine, impostor = pair_scores(embeddings, people)
    return {"tar_at_far_1": tar_at_far(genuine, impostor, 0.01), "tar_at_far_0.1": tar_at_far(genuine, impostor, 0.001),
            "eer": equal_error_rate(genuine, impostor), "genuine_pairs": len(genuine), "impostor_pairs": len(impostor)}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson interval of a rate of k in n (sound near 0 and 1, where errors of face recognisers live)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5 / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def group_rates(embeddings: torch.Tensor, people, groups: dict, threshold: float) -> dict:
    """Per group of people (`groups`: person -> group): the false-reject rate of its genuine pairs and the
    false-accept rate of its impostor pairs, both people in the group (as NIST's demographic studies count them),
    at `threshold`, each with its 95 % interval and its pair count; and the pairs of groups whose intervals do not
    overlap, where the difference is more than chance."""
    people = np.asarray(people)
    out = {}
    for group in sorted(set(groups.values()), key=str):
        members = np.array([groups.get(p) == group for p in people])
        genuine, impostor = pair_scores(embeddings[torch.from_numpy(members)], people[members])
        rejected, accepted = int((genuine < threshold).sum()), int((impostor >= threshold).sum())
        out[str(group)] = {"people": len(set(people[members].tolist())),
                           "frr": rejected / max(len(genuine), 1), "frr_95": wilson(rejected, len(genuine)),
                           "genuine_pairs": len(genuine),
                           "far": accepted / max(len(impostor), 1), "far_95": wilson(accepted, len(impostor)),
                           "impostor_pairs": len(impostor)}
    differ = []
    names = list(out)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for rate in ("frr", "far"):
                (lo_a, hi_a), (lo_b, hi_b) = out[a][f"{rate}_95"], out[b][f"{rate}_95"]
                if hi_a < lo_b or hi_b < lo_a:
                    differ.append({"rate": rate, "groups": [a, b], a: out[a][rate], b: out[b][rate]})
    return {"groups": out, "differ": differ}


def identification(embeddings: torch.Tensor, people, threshold: float, enrolled: int = 3, seed: int = 0) -> dict:
    """Identification as a gallery is used: `enrolled` photos of a person (in a seeded order) are enrolled and their
    other photos asked for. 'rank1': with everyone enrolled, the share of photos whose nearest enrolled photo is
    their own person's (closed set). Open set, every other person enrolled: 'identified', the share of the enrolled
    people's photos named right at or above `threshold`; 'unknown_rejected', the share of the others' photos below
    it (answered unknown). People with `enrolled` photos or fewer are not counted."""
    people = np.asarray(people)
    names = [p for p in np.unique(people) if (people == p).sum() > enrolled]
    e = torch.nn.functional.normalize(embeddings.float(), dim=1)
    closed = asked(e, people, names, set(names), enrolled, seed)
    opened = asked(e, people, names, set(names[::2]), enrolled, seed)
    if closed is None or opened is None:
        return {"rank1": 0.0, "identified": 0.0, "unknown_rejected": 0.0, "probes": 0}
    nearest, best, truth, known = closed
    rank1 = float((nearest == truth).mean())
    nearest, best, truth, known = opened
    right = (nearest == truth) & (best >= threshold)
    return {"rank1": rank1, "identified": float(right[known].mean()),
            "unknown_rejected": float((best < threshold)[~known].mean()) if (~known).any() else 1.0,
            "probes": len(truth)}


def asked(e: torch.Tensor, people: np.ndarray, names: list, known: set, enrolled: int, seed: int):
    """Enrol `enrolled` photos of each of `known`, ask for every other photo of `names`: per photo asked, (the
    nearest enrolled person, the cosine to them, the truth, whether the truth is enrolled); None when nothing is."""
    rng = np.random.default_rng(seed)
    gallery, gallery_people, probes = [], [], []
    for p in names:
        rows = rng.permutation(np.flatnonzero(people == p))
        if p in known:
            gallery += rows[:enrolled].tolist()
            gallery_people += [p] * enrolled
            rows = rows[enrolled:]
        probes += rows.tolist()
    if not gallery or not probes:
        return None
    cos = (e[probes] @ e[gallery].T).numpy()
    truth = people[probes]
    return np.asarray(gallery_people)[cos.argmax(1)], cos.max(1), truth, np.isin(truth, list(known))
