"""Neighbour search: the plain-torch radius graph against a brute-force double loop, chunking,
neighbour limits, and molecules that never touch each other."""
import pytest
import torch

from sciffusion_domains.molecules.networks import fully_connected_edges, radius_graph


def random_cloud(sizes, *, seed=0, dim=3, shuffle=True, dtype=torch.float64):
    """Points ``[N, dim]`` of molecules with the given sizes, all in the same region of space (so a
    search that ignored ``batch`` would join them), atoms of different molecules interleaved."""
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    if shuffle:
        batch = batch[torch.randperm(batch.numel(), generator=g)]
    pos = 2.0 * torch.rand(batch.numel(), dim, generator=g, dtype=dtype)
    return pos, batch


def brute_force(pos, batch, r, *, loop=False, max_num_neighbors=None):
    """Edge set {(j, i)} by looping over every centre i."""
    edges = set()
    for i in range(pos.shape[0]):
        candidates = []
        for j in range(pos.shape[0]):
            if batch[i] != batch[j] or (i == j and not loop):
                continue
            d = (pos[i] - pos[j]).norm().item()
            if d <= r:
                candidates.append((d, j))
        candidates.sort()
        if max_num_neighbors is not None:
            candidates = candidates[:max_num_neighbors]
        edges.update((j, i) for _, j in candidates)
    return edges


def as_set(edge_index):
    assert edge_index.shape[0] == 2 and edge_index.dtype == torch.long
    pairs = list(map(tuple, edge_index.T.tolist()))
    assert len(pairs) == len(set(pairs)), "duplicate edges"
    return set(pairs)


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("max_num_neighbors", [None, 1, 3, 100])
def test_matches_brute_force(loop, max_num_neighbors):
    pos, batch = random_cloud([1, 2, 7, 12, 20, 5], seed=1)
    got = radius_graph(pos, 0.9, batch, loop=loop, max_num_neighbors=max_num_neighbors, use_compiled=False)
    want = brute_force(pos, batch, 0.9, loop=loop, max_num_neighbors=max_num_neighbors)
    assert as_set(got) == want
    assert len(want) > 20  # the radius is large enough for the test to mean something


def test_symmetric_without_limit_and_limit_keeps_nearest():
    pos, batch = random_cloud([15, 9, 30], seed=2)
    edges = as_set(radius_graph(pos, 0.8, batch, use_compiled=False))
    assert edges == {(i, j) for j, i in edges}
    limited = radius_graph(pos, 0.8, batch, max_num_neighbors=2, use_compiled=False)
    degree = torch.bincount(limited[1], minlength=pos.shape[0])
    assert degree.max() <= 2
    for i in range(pos.shape[0]):  # every dropped neighbour is at least as far as every kept one
        kept = limited[0, limited[1] == i]
        within = [j for j, c in edges if c == i]
        if kept.numel():
            far = max((pos[kept] - pos[i]).norm(dim=1))
            dropped = [j for j in within if j not in kept.tolist()]
            assert all((pos[j] - pos[i]).norm() >= far for j in dropped)


@pytest.mark.parametrize("max_pairs", [1, 7, 64, 500])
def test_chunked_equals_unchunked(max_pairs):
    pos, batch = random_cloud([3, 40, 8, 1, 25], seed=3)
    whole = as_set(radius_graph(pos, 0.7, batch, use_compiled=False))
    for limit in (None, 4):
        chunked = radius_graph(pos, 0.7, batch, max_pairs=max_pairs, max_num_neighbors=limit, use_compiled=False)
        reference = radius_graph(pos, 0.7, batch, max_num_neighbors=limit, use_compiled=False)
        assert as_set(chunked) == as_set(reference)
    assert as_set(radius_graph(pos, 0.7, batch, max_pairs=max_pairs, use_compiled=False)) == whole


def test_never_joins_molecules():
    # Identical copies of one cloud at the same place: any cross-molecule edge would be at distance 0.
    one = torch.rand(10, 3, generator=torch.Generator().manual_seed(4))
    pos = one.repeat(4, 1)
    batch = torch.arange(4).repeat_interleave(10)
    edges = radius_graph(pos, 10.0, batch, use_compiled=False)
    assert (batch[edges[0]] == batch[edges[1]]).all()
    assert edges.shape[1] == 4 * 10 * 9
    assert as_set(edges) == as_set(fully_connected_edges(batch))


def test_no_batch_is_one_molecule_and_float32_and_gaps_in_ids():
    pos, _ = random_cloud([30], seed=5, dtype=torch.float32)
    assert as_set(radius_graph(pos, 0.6)) == brute_force(pos, torch.zeros(30, dtype=torch.long), 0.6)
    batch = torch.tensor([0, 0, 3, 3, 3])  # molecules 1 and 2 have no atoms
    assert as_set(radius_graph(torch.zeros(5, 3), 1.0, batch)) == {(0, 1), (1, 0), (2, 3), (3, 2), (2, 4), (4, 2),
                                                                  (3, 4), (4, 3)}


def test_gradient_free_and_empty():
    pos = torch.rand(6, 3, requires_grad=True)
    edges = radius_graph(pos, 1e-6, torch.arange(6))
    assert edges.shape == (2, 0) and not edges.requires_grad


@pytest.mark.parametrize("loop", [False, True])
def test_fully_connected(loop):
    _, batch = random_cloud([1, 4, 6, 3], seed=6)
    got = as_set(fully_connected_edges(batch, loop=loop))
    n = batch.numel()
    want = {(j, i) for i in range(n) for j in range(n) if batch[i] == batch[j] and (loop or i != j)}
    assert got == want


def test_errors_name_the_problem():
    pos = torch.rand(5, 3)
    with pytest.raises(ValueError, match="radius r must be positive"):
        radius_graph(pos, 0.0)
    with pytest.raises(ValueError, match="max_num_neighbors"):
        radius_graph(pos, 1.0, max_num_neighbors=0)
    with pytest.raises(ValueError, match=r"one molecule id per atom \(5 atoms\)"):
        radius_graph(pos, 1.0, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"pos must be \[N, D\]"):
        radius_graph(pos[None], 1.0)
