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


def test_dense_weights_make_average_a_weighted_mean_over_counted_entries():
    mask = torch.tensor([[True, False, True]])
    w = torch.tensor([[1.0, 7.0, 3.0]])  # the masked entry's weight must not count
    s = DenseSpace(mask, w)
    v = torch.tensor([[2.0, 100.0, 4.0], [1.0, float("nan"), 5.0]])
    torch.testing.assert_close(s.average(v), torch.tensor([(1 * 2 + 3 * 4) / 4, (1 * 1 + 3 * 5) / 4]))
    torch.testing.assert_close(s.sum(v), torch.tensor([6.0, 6.0]))  # sum and dims ignore the weights
    torch.testing.assert_close(s.dims(v), torch.tensor([2.0, 2.0]))
    assert torch.equal(DenseSpace(mask).average(v), DenseSpace(mask).sum(v) / 2)
    with pytest.raises(ValueError, match="non-negative"):
        DenseSpace(weights=torch.tensor([1.0, -1.0]))


def test_space_to_keeps_mask_and_weights():
    from sciffusion.domain import Batch, space_to

    mask, w = torch.tensor([True, False]), torch.tensor([0.5, 1.5])
    moved = space_to(DenseSpace(mask, w), "cpu")
    assert torch.equal(moved.mask, mask) and torch.equal(moved.weights, w)
    assert space_to(DenseSpace(), "cpu").weights is None
    batch = Batch(torch.zeros(1, 2), DenseSpace(mask, w)).to("cpu", torch.float64)
    assert torch.equal(batch.space.weights, w)


def test_space_is_an_abstract_base_with_defaults():
    from sciffusion.space import Space

    with pytest.raises(TypeError):
        Space()

    class Rows(Space):
        """A minimal space: only the five abstract operations."""

        def __init__(self, weights):
            self.weights = weights

        def batch_size(self, x):
            return x.shape[0]

        def per_sample(self, values, x):
            return values[:, None]

        def project(self, x):
            return x - x.mean(1, keepdim=True)

        def sum(self, values):
            return values.sum(1)

        def dims(self, x):
            return torch.full((x.shape[0],), x.shape[1] - 1.0)

    s = Rows(torch.ones(2))
    assert s.zero_mean == ()
    torch.testing.assert_close(s.average(torch.ones(2, 5)), torch.full((2,), 5 / 4))
    noise = s.randn_like(torch.zeros(3, 4), torch.Generator().manual_seed(0))
    torch.testing.assert_close(noise.mean(1), torch.zeros(3), atol=1e-6, rtol=0)
    moved = s.to("meta")
    assert type(moved) is Rows and moved.weights.device.type == "meta" and s.weights.device.type == "cpu"


def test_space_to_moves_every_kind_of_space_without_switching_on_types():
    from sciffusion.domain import space_to
    from sciffusion.state import EdgeSpace, PartsSpace

    batch = torch.tensor([0, 0, 1])
    dense = DenseSpace(torch.tensor([True, False]), torch.tensor([1.0, 2.0]))
    graph = GraphSpace(batch, 2, zero_mean=(0, 1, 2))
    parts = PartsSpace({"pos": graph, "bonds": EdgeSpace.fully_connected(batch, 2)})
    moved = space_to(dense, "meta")
    assert moved.mask.device.type == moved.weights.device.type == "meta" and dense.mask.device.type == "cpu"
    moved = space_to(graph, "meta")
    assert moved.batch.device.type == "meta" and moved.zero_mean == [0, 1, 2] and moved.num_samples == 2
    moved = space_to(parts, "meta")
    assert moved["pos"].batch.device.type == moved["bonds"].index.device.type == "meta"


def test_missing_spaces_and_non_spaces():
    from sciffusion.space import require_space
    from sciffusion.state import PartsSpace

    assert require_space(DenseSpace(), "user").mask is None
    with pytest.raises(TypeError, match="user needs the batch's space, got None.*DenseSpace"):
        require_space(None, "user")
    with pytest.raises(TypeError, match="user got a dict, which is not a sciffusion.space.Space; subclass Space"):
        require_space({"mask": None}, "user")
    parts = PartsSpace({"a": GraphSpace(torch.tensor([0, 0, 1]), 2, zero_mean=(0,)), "b": DenseSpace()})
    out = parts.project({"a": torch.tensor([[1.0], [3.0], [5.0]]), "b": torch.ones(2, 2)})
    torch.testing.assert_close(out["a"], torch.tensor([[-1.0], [1.0], [0.0]]))
    with pytest.raises(TypeError, match=r"space\[name\].sum"):
        parts.sum({"b": torch.ones(2, 2)})
