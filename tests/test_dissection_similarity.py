"""Similarity functions: hand-computed cases, and equality with a loop-by-loop transcription of the
formulas in CLIP-dissect (Oikarinen & Weng, ICLR 2023, Sec. 3 and appendix), written here from the paper."""

import math

import pytest
import torch

from dissection_data import similarity
from explainers.errors import XaiLensError

LN3 = math.log(3.0)


def _two_image_case():
    # image 0 looks like concept 1 (softmax 1/4, 3/4), image 1 like concept 0; neuron j fires on image j.
    clip = torch.tensor([[0.0, LN3], [LN3, 0.0]])
    target = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    return clip, target


def test_wpmi_hand_computed():
    clip, target = _two_image_case()
    got = similarity.wpmi(clip, target, top_k=1, a=1, lam=0, min_prob=0)
    expected = torch.log(torch.tensor([[0.25, 0.75], [0.75, 0.25]]))
    torch.testing.assert_close(got, expected)
    # lam = 1 subtracts log of the mean over neurons of p(concept | neuron) = log(1/2) for both concepts.
    got = similarity.wpmi(clip, target, top_k=1, a=1, lam=1, min_prob=0)
    torch.testing.assert_close(got, expected + math.log(2.0))


def test_soft_wpmi_hand_computed():
    clip, target = _two_image_case()
    got = similarity.soft_wpmi(clip, target, top_k=1, a=1, lam=0, min_prob=0, p_start=0.5, p_end=0.5)
    # log(1 + 0.5 * (P - 1)): P = 1/4 -> log 0.625, P = 3/4 -> log 0.875
    expected = torch.log(torch.tensor([[0.625, 0.875], [0.875, 0.625]]))
    torch.testing.assert_close(got, expected)
    assert got.argmax(dim=1).tolist() == [1, 0]


def test_cos_similarity_hand_computed():
    clip = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = torch.tensor([[2.0, 0.0], [0.0, 3.0], [2.0, 3.0]])
    got = similarity.cos_similarity(clip, target)
    torch.testing.assert_close(got, torch.tensor([[1.0, 0.5], [0.5, 1.0]]))


def test_rank_reorder_prefers_concept_ordering_images_like_the_neuron():
    # 40 images, top_fraction 0.25 -> 10 top images. Concept 0's CLIP scores follow the neuron exactly,
    # concept 1's are reversed: concept 0 has zero reorder error, so it scores 0 (the maximum).
    acts = torch.arange(40, dtype=torch.float32)
    clip = torch.stack([0.2 + acts / 400, 0.3 - acts / 400], dim=1)
    got = similarity.rank_reorder(clip, acts.unsqueeze(1), top_fraction=0.25)
    assert got[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert got[0, 1].item() < -0.1


def _loop_log_p_given_neuron(clip, target, top_k, a, min_prob, weight_of_rank):
    n_images, n_concepts = len(clip), len(clip[0])
    probs = [[0.0] * n_concepts for _ in range(n_images)]
    for x in range(n_images):
        denominator = sum(math.exp(a * clip[x][c]) for c in range(n_concepts))
        for c in range(n_concepts):
            probs[x][c] = math.exp(a * clip[x][c]) / denominator
    rows = []
    for j in range(len(target[0])):
        order = sorted(range(n_images), key=lambda x: -target[x][j])[:top_k]
        rows.append(
            [
                sum(math.log(1 + weight_of_rank(i) * (probs[x][c] - 1) + min_prob) for i, x in enumerate(order))
                for c in range(n_concepts)
            ]
        )
    return rows


def _loop_pmi(rows, lam):
    n_neurons, n_concepts = len(rows), len(rows[0])
    out = []
    for j in range(n_neurons):
        out.append([])
        for c in range(n_concepts):
            peak = max(rows[k][c] for k in range(n_neurons))
            log_mean = peak + math.log(sum(math.exp(rows[k][c] - peak) for k in range(n_neurons)) / n_neurons)
            out[j].append(rows[j][c] - lam * log_mean)
    return torch.tensor(out, dtype=torch.float64)


def loop_soft_wpmi(clip, target, top_k=100, a=10, lam=1, min_prob=1e-7, p_start=0.998, p_end=0.97):
    """p(d in concept | top image of rank i) = p_start - i/top_k (p_start - p_end); sum of logs; minus lam log p(c)."""
    clip, target = clip.tolist(), target.tolist()
    rows = _loop_log_p_given_neuron(clip, target, top_k, a, min_prob, lambda i: p_start - i / top_k * (p_start - p_end))
    return _loop_pmi(rows, lam)


def loop_wpmi(clip, target, top_k=28, a=2, lam=0.6, min_prob=1e-7):
    rows = _loop_log_p_given_neuron(clip.tolist(), target.tolist(), top_k, a, min_prob, lambda i: 1.0)
    return _loop_pmi(rows, lam)


def loop_cos_similarity(clip, target):
    out = torch.zeros(target.shape[1], clip.shape[1], dtype=torch.float64)
    for j in range(target.shape[1]):
        for c in range(clip.shape[1]):
            t, s = target[:, j].double(), clip[:, c].double()
            out[j, c] = float((t * s).sum() / (t.norm() * s.norm()))
    return out


def loop_rank_reorder(clip, target, p=3, top_fraction=0.05, scale_p=0.5, seed=0):
    n_images, n_neurons = target.shape
    n_top = int(n_images * top_fraction)
    shuffles = similarity.rank_reorder_permutations(n_neurons, n_top, seed)  # the shared random baseline draws
    out = torch.zeros(n_neurons, clip.shape[1], dtype=torch.float64)
    for j in range(n_neurons):
        order = sorted(range(n_images), key=lambda x: -float(target[x, j]))[:n_top]
        top = [float(target[x, j]) for x in order]
        ascending = top[::-1]
        diffs = [abs(ascending[i] - ascending[int(perm[i])]) ** p for perm in shuffles[j] for i in range(n_top)]
        baseline = sum(diffs) / len(diffs)
        for c in range(clip.shape[1]):
            scores = [float(clip[x, c]) for x in order]
            ranks = [sum(1 for other in scores if other < s) for s in scores]
            error = sum(abs(top[i] - ascending[ranks[i]]) ** p for i in range(n_top)) / n_top
            out[j, c] = -error / baseline / (sum(scores) / n_top) ** scale_p
    return out


@pytest.fixture
def random_case():
    generator = torch.Generator().manual_seed(7)
    clip = 0.15 + 0.2 * torch.rand(60, 9, generator=generator)  # positive cosines, like CLIP's
    target = torch.randn(60, 7, generator=generator)
    return clip, target


def test_soft_wpmi_equals_loop_transcription(random_case):
    clip, target = random_case
    for params in ({"top_k": 20}, {"top_k": 60, "a": 3, "lam": 0.5, "p_start": 0.9, "p_end": 0.6}):
        got = similarity.soft_wpmi(clip, target, **params, max_chunk_bytes=1)  # force one neuron per chunk
        torch.testing.assert_close(got.double(), loop_soft_wpmi(clip, target, **params), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        similarity.soft_wpmi(clip, target, top_k=20), similarity.soft_wpmi(clip, target, top_k=20, max_chunk_bytes=1)
    )


def test_wpmi_equals_loop_transcription(random_case):
    clip, target = random_case
    torch.testing.assert_close(similarity.wpmi(clip, target).double(), loop_wpmi(clip, target), rtol=1e-4, atol=1e-4)


def test_cos_similarity_equals_loop_transcription(random_case):
    clip, target = random_case
    got = similarity.cos_similarity(clip, target, max_chunk_bytes=1)
    torch.testing.assert_close(got.double(), loop_cos_similarity(clip, target), rtol=1e-5, atol=1e-5)


def test_rank_reorder_equals_loop_transcription(random_case):
    clip, target = random_case
    got = similarity.rank_reorder(clip, target, top_fraction=0.2, max_chunk_bytes=1)
    expected = loop_rank_reorder(clip, target, top_fraction=0.2)
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)


def test_top_k_above_probe_count_is_capped():
    clip, target = torch.rand(5, 3), torch.rand(5, 4)
    assert similarity.soft_wpmi(clip, target).shape == (4, 3)


def test_unknown_similarity_name_is_a_one_line_error():
    with pytest.raises(XaiLensError, match="soft_wpmi"):
        similarity.similarity_function("nope")


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="images"):
        similarity.soft_wpmi(torch.rand(5, 3), torch.rand(6, 2))
