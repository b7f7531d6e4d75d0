"""Couplings: exact assignments, symmetry of the equivariant coupling, lower transport cost, and the
Beta time law."""
import itertools

import pytest
import torch

from sciffusion.couplings import equivariant_ot, kabsch_rotation, minibatch_ot, transport_cost
from sciffusion.losses import DiffusionLoss, sample_time_beta
from sciffusion.processes import LinearInterpolant
from sciffusion.space import DenseSpace, GraphSpace


def random_rotation(seed, reflect=False):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.linalg.det(q))
    return q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)) if reflect else q


def molecules(seed=0, counts=(5, 7, 4)):
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    space = GraphSpace(batch, len(counts), zero_mean=(0, 1, 2))
    x = space.project(2 * torch.randn(len(batch), 3, generator=g, dtype=torch.float64))
    return x, space.randn_like(x, g), space


def test_minibatch_ot_is_the_best_permutation():
    g = torch.Generator().manual_seed(0)
    x, z = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g, dtype=torch.float64)
    best = min(float(((x - z[list(p)]) ** 2).sum()) for p in itertools.permutations(range(6)))
    paired = minibatch_ot(x, z, DenseSpace())
    assert abs(float(((x - paired) ** 2).sum()) - best) < 1e-12
    assert sorted(paired[:, 0].tolist()) == sorted(z[:, 0].tolist())


def test_kabsch_recovers_a_rotation():
    x, _, _ = molecules()
    r = random_rotation(3)
    torch.testing.assert_close(kabsch_rotation(x[:5], x[:5] @ r.T), r)


@pytest.mark.parametrize("reflect", [False, True])
def test_equivariant_ot_commutes_with_rotation_and_permutation(reflect):
    x, z, space = molecules()
    aligned = equivariant_ot(x, z, space)
    r = random_rotation(1, reflect)
    torch.testing.assert_close(equivariant_ot(x @ r.T, z @ r.T, space), aligned @ r.T)
    perm = torch.cat([torch.randperm(5, generator=torch.Generator().manual_seed(2)), torch.arange(5, 16)])
    torch.testing.assert_close(equivariant_ot(x[perm], z, space), aligned[perm])
    # the aligned noise is the same cloud, permuted and rotated: zero mean and the same pair distances
    torch.testing.assert_close(space.mean(aligned), torch.zeros(3, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.cdist(aligned[:5], aligned[:5]).sort(1).values.sum(0),
                               torch.cdist(z[:5], z[:5]).sort(1).values.sum(0), rtol=1e-9, atol=1e-9)


def test_equivariant_ot_lowers_transport_cost():
    """Measured on 200 random 9-atom clouds: the aligned cost is well below the independent one."""
    x, z, space = molecules(seed=5, counts=(9,) * 200)
    independent = float(transport_cost(x, z, space).mean())
    aligned = float(transport_cost(x, equivariant_ot(x, z, space), space).mean())
    assert aligned < 0.6 * independent, (aligned, independent)


def test_loss_with_a_coupling_runs_and_names_bad_ones():
    loss = DiffusionLoss(LinearInterpolant(), coupling="minibatch_ot")
    model = type("M", (), {"target": __import__("sciffusion").parameterization.get_target("velocity"),
                           "predict": lambda self, x, t, space, cond: torch.zeros_like(x)})()
    assert loss(model, torch.randn(8, 3), generator=torch.Generator().manual_seed(0), space=DenseSpace()).shape == (8,)
    with pytest.raises(ValueError, match="coupling"):
        DiffusionLoss(LinearInterpolant(), coupling="sinkhorn")


def test_beta_time_law():
    t = sample_time_beta(200_000, LinearInterpolant(), torch.Generator().manual_seed(0), a=1, b=2)
    assert abs(float(t.mean()) - 1 / 3) < 0.003 and abs(float(t.var()) - 2 / 36) < 0.002
    with pytest.raises(ValueError, match="whole"):
        sample_time_beta(3, LinearInterpolant(), a=1.5, b=1)
