"""Forward + backward time of ``JointMoleculeNet`` on a batch of QM9-sized molecules, on CPU.

A batch is 64 molecules of n atoms each (18: QM9 with hydrogens; 9: without), fully connected
(n (n - 1) / 2 pairs stored, twice that many messages), random positions at QM9's spread, random
atom, charge and bond states and a self-conditioning estimate (the worst case: every input used).
One call is ``net(...)``, a sum of the outputs' squares, and ``backward()``; the time is the best
of ``--repeats`` after a warm-up, which filters out other processes' noise.

    OMP_NUM_THREADS=1 python benchmarks/joint_molecule_net.py [--threads 1] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import torch

from sciffusion.joint import SELF_COND
from sciffusion.space import GraphSpace
from sciffusion.state import EdgeSpace, PartsSpace
from sciffusion_domains.molecules.networks.joint import JointMoleculeNet

CONFIGS = [(64, 4), (128, 4), (128, 6), (256, 6), (128, 8), (256, 8)]  # (hidden, layers)
KA, KC, KB = 5, 3, 5  # QM9: H C N O F; charges -1 0 +1; none single double triple aromatic


def batch(atoms: int, molecules: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    index = torch.repeat_interleave(torch.arange(molecules), atoms)
    node = GraphSpace(index, molecules, zero_mean=(0, 1, 2))
    space = PartsSpace({"pos": node, "atoms": GraphSpace(index, molecules), "charges": GraphSpace(index, molecules),
                        "bonds": EdgeSpace.fully_connected(index, molecules)})
    n, e = index.numel(), space["bonds"].index.shape[1]
    x = {"pos": node.project(1.5 * torch.randn(n, 3, generator=g)), "atoms": torch.randint(KA, (n,), generator=g),
         "charges": torch.randint(KC, (n,), generator=g), "bonds": torch.randint(KB, (e,), generator=g)}
    sc = {"pos": node.project(torch.randn(n, 3, generator=g)), "atoms": torch.full((n, KA), 1 / KA),
          "charges": torch.full((n, KC), 1 / KC), "bonds": torch.full((e, KB), 1 / KB)}
    return x, torch.rand(molecules, generator=g), space, {SELF_COND: sc}  # net(x, t, space, cond)


def time_step(net: torch.nn.Module, inputs, repeats: int) -> float:
    def step():
        net.zero_grad(set_to_none=True)
        sum(v.square().mean() for v in net(*inputs).values()).backward()

    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"forward+backward, 64 molecules per batch, {args.threads} thread(s), best of {args.repeats}")
    print("| hidden x layers (edge 32) | parameters | 18 atoms (ms) | 9 atoms (ms) |")
    print("|---|---|---|---|")
    inputs = {n: batch(n) for n in (18, 9)}
    for hidden, layers in CONFIGS:
        torch.manual_seed(0)
        net = JointMoleculeNet(num_atom_types=KA, num_charges=KC, num_bond_types=KB, hidden=hidden, layers=layers)
        params = sum(p.numel() for p in net.parameters())
        ms = [1000 * time_step(net, inputs[n], args.repeats) for n in (18, 9)]
        print(f"| {hidden} x {layers} | {params / 1e6:.2f} M | {ms[0]:.0f} | {ms[1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
