"""Hybrid routing's score fusion (`msa_agent.fusion`): the vectorised code against a plain
rank-by-rank reference on random inputs, the selector's per-layer use of it, and the promises the
design makes (no lexical hit: the router's ranking; a flat router: the lexical ranking; a lexical
lead over λ is kept), with recall on constructed cases never below the better half's there."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from msa_agent.fusion import FITTED, FusionParams, coverage, fuse, fused_order, lexical_vector, standardise
from msa_agent.memory import RecordingSelector


def _params(rng: random.Random) -> FusionParams:
    return FusionParams(lam_max=rng.uniform(0.05, 2.0), c0=rng.uniform(-3, 3), c_lex=rng.uniform(-12, 2),
                        c_cov=rng.uniform(-8, 2), c_router=rng.uniform(-1, 4), depth=rng.choice([2, 3, 5, 16, 64]),
                        tau=rng.choice([0.0, 0.2, 0.5]))


def _plain(order: list[int], scores: list[float], layers: list[list[float]], p: FusionParams,
           cov: float = 1.0) -> list[tuple[int, float]]:
    """The fusion written out document by document: every document with its fused score, best first."""
    n = len(layers[0])
    best = max(scores) if scores else 0.0
    lex = [0.0] * n
    for i, s in zip(order, scores):
        lex[i] = min(1.0, max(0.0, s / best))
    zs = []
    for xs in layers:
        m, sd = statistics.fmean(xs), statistics.stdev(xs)
        zs.append([(x - m) / sd for x in xs])
    z = [sum(col) / len(zs) for col in zip(*zs)]
    desc = sorted(z, reverse=True)
    top, second = desc[0], desc[1]
    ref = desc[p.depth - 1] if n > p.depth else desc[-1]
    rho = [min(1.0, max(0.0, (v - ref) / (top - ref))) if top - ref > 1e-12 else 0.0 for v in z]
    if cov < p.tau:  # the lexical top hit is no evidence
        lex = [0.0] * n
    g = 1.0 - sorted(lex, reverse=True)[1]
    lam = p.lam_max / (1 + math.exp(-(p.c0 + p.c_lex * g + p.c_cov * cov + p.c_router * (top - second))))
    if max(lex) == 0:
        lam = p.lam_max
    fused = [lex[i] + lam * rho[i] for i in range(n)]
    ranked = sorted(range(n), key=lambda i: (-fused[i], -z[i], i))
    return [(i, fused[i]) for i in ranked]


def _random_case(rng: random.Random) -> tuple[list[int], list[float], list[list[float]]]:
    n = rng.randint(3, 300)
    order = rng.sample(range(n), rng.randint(2, n))
    scores = sorted((rng.uniform(0.5, 40.0) for _ in order), reverse=True)  # never zero
    layers = [[rng.gauss(rng.uniform(-2, 2), rng.uniform(0.2, 3.0)) for _ in range(n)] for _ in range(rng.randint(1, 6))]
    return order, scores, layers


def test_fusion_equals_the_plain_definition_on_random_inputs():
    rng = random.Random(15)
    for _ in range(60):
        order, scores, layers = _random_case(rng)
        p = _params(rng)
        n = len(layers[0])
        lex = lexical_vector(order, scores, n)
        z = torch.stack([standardise(torch.tensor(x, dtype=torch.float64).float()) for x in layers]).mean(0)
        k = rng.randint(1, n)
        cov = rng.random()
        idx, val = fused_order(lex, z, k, p, cov)
        _same_up_to_ties(idx.tolist(), val, _plain(order, scores, layers, p, cov), k)


def _same_up_to_ties(got: list[int], val: torch.Tensor, want: list[tuple[int, float]], k: int) -> None:
    """The k best agree with the reference's: the same fused scores rank by rank (to float32
    rounding), so documents may swap only where the reference's scores are that close."""
    assert len(got) == len(set(got)) == k
    torch.testing.assert_close(val, torch.tensor([s for _, s in want[:k]]), rtol=1e-5, atol=1e-5)
    by_doc = dict(want)
    for r, i in enumerate(got):
        assert abs(by_doc[i] - want[r][1]) < 1e-5, (r, i)


def test_the_selector_fuses_each_layer_with_the_layers_below_it():
    """RecordingSelector in hybrid mode: layer ℓ's choice is the fusion with the router scores of
    layers up to ℓ averaged, and the final ranking is the last layer's."""
    rng = random.Random(3)
    for _ in range(10):
        order, scores, layers = _random_case(rng)
        n = len(layers[0])
        p = _params(rng)
        per_layer = {10 + j: torch.tensor(x) for j, x in enumerate(layers)}
        k = min(8, n)
        cov = rng.random()
        sel = RecordingSelector(_StubMemory(per_layer, n), "hybrid", k, lexical=order, lexical_scores=scores,
                                lexical_coverage=cov, fusion=p, attend_memory=False)
        for j, layer in enumerate(per_layer):
            sel.select(layer, torch.zeros(1, 1, 2))
            ch = sel.choices[-1]
            _same_up_to_ties(ch.docs, torch.tensor(ch.scores), _plain(order, scores, layers[: j + 1], p, cov), k)
        assert [i for i, _ in sel.combined()][:k] == sel.choices[-1].docs


class _StubMemory:
    """What RecordingSelector needs of a memory: its size, geometry and per-layer document scores."""

    def __init__(self, per_layer: dict[int, torch.Tensor], n: int) -> None:
        self.per_layer, self.n = per_layer, n
        self.cfg = SimpleNamespace(n_kv_head=1, head_dim=2)

    def __len__(self) -> int:
        return self.n

    def doc_scores(self, layer: int, q_r: torch.Tensor) -> torch.Tensor:
        return self.per_layer[layer]


def _ranking(lex: torch.Tensor, z: torch.Tensor, p: FusionParams = FITTED) -> list[int]:
    return fused_order(lex, z, lex.numel(), p)[0].tolist()


def _recall(ranking: list[int], gold: int, k: int) -> float:
    return float(gold in ranking[:k])


@pytest.mark.parametrize("seed", range(20))
def test_no_lexical_hit_gives_the_routers_ranking(seed):
    g = torch.Generator().manual_seed(seed)
    n = 50
    z = standardise(torch.randn(n, generator=g))
    assert _ranking(torch.zeros(n), z) == torch.sort(z, descending=True, stable=True).indices.tolist()


@pytest.mark.parametrize("seed", range(10))
def test_a_lexical_top_hit_holding_too_few_query_words_gives_the_routers_ranking(seed):
    """Below τ coverage (and no date of the query in it) the lexical hits are stray words."""
    rng = random.Random(seed)
    n = 50
    z = standardise(torch.randn(n, generator=torch.Generator().manual_seed(seed)))
    order = rng.sample(range(n), 12)
    lex = lexical_vector(order, sorted((rng.uniform(1, 9) for _ in order), reverse=True), n)
    router = torch.sort(z, descending=True, stable=True).indices.tolist()
    assert fused_order(lex, z, n, FITTED, cov=FITTED.tau / 2)[0].tolist() == router
    q = "which cold storage building by the estuary never closes on July 4th 2013"
    stray = "the cold tap"  # one word of nine
    assert coverage(q, stray) < FITTED.tau
    assert coverage(q, "2013-07-04 pump stopped", ["2013 07 04"]) == 1.0  # the date as the index holds it


@pytest.mark.parametrize("seed", range(20))
def test_a_flat_router_gives_the_lexical_ranking(seed):
    rng = random.Random(seed)
    n = 60
    order = rng.sample(range(n), 20)
    scores = sorted((rng.uniform(1, 30) for _ in order), reverse=True)
    lex = lexical_vector(order, scores, n)
    flat = standardise(torch.full((n,), 3.5))
    ranking = _ranking(lex, flat, _params(rng))
    rest = sorted(set(range(n)) - set(order))
    want = sorted(order, key=lambda i: (-float(lex[i]), i)) + rest
    assert ranking == want


@pytest.mark.parametrize("seed", range(30))
def test_a_lexical_lead_over_lambda_is_kept_whatever_the_router_says(seed):
    """Constructed: the evidence is the lexical top hit, leading by more than λ; the router ranks an
    adversary first by a wide margin. The fused ranking keeps the evidence first: its recall at
    every k is at least the better half's."""
    rng = random.Random(seed)
    p = replace(_params(rng), lam_max=rng.uniform(0.05, 0.9))
    n = 80
    gold, adversary = rng.sample(range(n), 2)
    others = [i for i in range(n) if i not in (gold, adversary)]
    order = [gold] + rng.sample(others, 15)
    lex = lexical_vector(order, [1.0] + [rng.uniform(1e-3, 1.0 - p.lam_max - 1e-3) for _ in order[1:]], n)
    z = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    z[adversary] = 10.0
    cov = rng.uniform(p.tau, 1.0)  # the lexical top hit is evidence
    _, lam = fuse(lex, standardise(z), p, cov)
    assert lam <= p.lam_max
    ranking = fused_order(lex, standardise(z), n, p, cov)[0].tolist()
    lexical = sorted(order, key=lambda i: -float(lex[i]))
    router = torch.sort(z, descending=True, stable=True).indices.tolist()
    assert ranking[0] == gold
    for k in (1, 5, 16):
        assert _recall(ranking, gold, k) >= max(_recall(lexical, gold, k), _recall(router, gold, k))
    # Any two lexical hits more than λ apart keep their order.
    f_rank = {i: r for r, i in enumerate(ranking)}
    for a in order:
        for b in order:
            if float(lex[a] - lex[b]) > lam:
                assert f_rank[a] < f_rank[b]
        if float(lex[a]) > lam:  # a document only the router found never passes it
            assert f_rank[a] < f_rank[adversary]


@pytest.mark.parametrize("seed", range(20))
def test_where_both_halves_agree_or_only_the_router_finds_it(seed):
    """Constructed: (a) lexical and router both rank the evidence first: fused first too; (b) the
    lexical index finds nothing and the router ranks the evidence r-th: fused r-th."""
    rng = random.Random(100 + seed)
    p = _params(rng)
    n = 40
    gold = rng.randrange(n)
    z = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    z[gold] = z.max() + 1.0
    order = [gold] + rng.sample([i for i in range(n) if i != gold], 10)
    scores = [10.0] + sorted((rng.uniform(1, 10) for _ in order[1:]), reverse=True)
    assert _ranking(lexical_vector(order, scores, n), standardise(z), p)[0] == gold
    z2 = torch.randn(n, generator=torch.Generator().manual_seed(1000 + seed))
    router = torch.sort(z2, descending=True, stable=True).indices.tolist()
    assert _ranking(torch.zeros(n), standardise(z2), p).index(gold) == router.index(gold)


def test_coverage_counts_the_query_words_a_document_holds():
    assert coverage("Which sensor reported status ALARM?", "sensor,status\npump-3,ALARM") == 0.75  # not "reported"
    assert coverage("the cold storage building", "refrigerated warehouse") == 0.0
    assert coverage("the of", "anything") == 1.0


def test_edge_cases_are_defined():
    assert lexical_vector([], [], 0).numel() == 0
    assert torch.equal(standardise(torch.tensor([2.0])), torch.zeros(1))
    idx, val = fused_order(torch.zeros(0), torch.zeros(0), 5)
    assert idx.numel() == 0 and val.numel() == 0
    idx, _ = fused_order(torch.tensor([1.0]), torch.zeros(1), 5)
    assert idx.tolist() == [0]
    # Ranks without scores: 1, 1/2, 1/3 ...
    assert lexical_vector([2, 0], None, 3).tolist() == [0.5, 0.0, 1.0]
