"""Dense and graph batch spaces: broadcasting, masks, zero-mean subspaces, degrees of freedom."""
import pytest
import torch

from sciffusion.space import DenseSpace, GraphSpace


def test_dense_broadcast_sum_dims():
    x = torch.ones(4, 2, 3)
    s = DenseSpace()
    assert s.per_sample(torch.arange(4.0), x).shape == (4, 1, 1)
    torch.testing.assert_close(s.sum(x), torch.full((4,), 6.0))
    torch.testing.assert_close(s.dims(x), torch.full((4,), 6.0))


def test_dense_mask_keeps_missing_entries_out():
    mask = torch.tensor([[True, False, True]])
    s = DenseSpace(mask)
    x = torch.tensor([[1.0, float("nan"), 2.0], [3.0, float("nan"), 4.0]])
    projected = s.project(x)
    assert not projected.isnan().any() and (projected[:, 1] == 0).all()
    torch.testing.assert_close(s.sum(x), torch.tensor([3.0, 7.0]))
    torch.testing.assert_close(s.dims(x), torch.tensor([2.0, 2.0]))
    assert (s.randn_like(x, torch.Generator().manual_seed(0))[:, 1] == 0).all()


def test_graph_zero_mean_noise_and_dims():
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    s = GraphSpace(batch, 3, zero_mean=(0, 1, 2))
    x = torch.randn(9, 5)
    noise = s.randn_like(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.mean(noise)[:, :3], torch.zeros(3, 3), atol=1e-6, rtol=0)
    assert s.mean(noise)[:, 3:].abs().max() > 1e-3, "only the zero-mean columns are centred"
    torch.testing.assert_close(s.dims(x), torch.tensor([3 * 5 - 3, 2 * 5 - 3, 4 * 5 - 3], dtype=torch.float32))
    torch.testing.assert_close(s.sum(torch.ones_like(x)), torch.tensor([15.0, 10.0, 20.0]))
    assert s.per_sample(torch.tensor([1.0, 2.0, 3.0]), x)[:, 0].tolist() == [1, 1, 1, 2, 2, 3, 3, 3, 3]


def test_graph_projection_is_idempotent():
    s = GraphSpace(torch.tensor([0, 0, 1, 1, 1]), 2, zero_mean=(0, 1))
    x = torch.randn(5, 3, dtype=torch.float64)
    once = s.project(x)
    torch.testing.assert_close(s.project(once), once)


def test_graph_space_rejects_empty_samples():
    with pytest.raises(ValueError, match="no rows"):
        GraphSpace(torch.tensor([0, 0, 2]), 3)
