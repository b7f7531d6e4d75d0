"""E(3)-equivariant networks on batches of molecules, and neighbour search.

Every network is ``net(x [N, 3 + F], t [B], space: GraphSpace, cond) -> [N, 3 + F]``: columns 0..2
a position prediction with zero mean per molecule, columns 3.. an atom-type prediction.
``TensorProductNet`` needs e3nn and is imported on first use.
"""
from .egnn import EGNN
from .graph import fully_connected_edges, radius_graph
from .inputs import PROPERTIES


def __getattr__(name: str):
    if name == "TensorProductNet":
        from .tensor_product import TensorProductNet

        return TensorProductNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EGNN", "PROPERTIES", "TensorProductNet", "fully_connected_edges", "radius_graph"]
