"""Throughput of the molecule networks on QM9, and how one forward pass grows with the atom count.

(a) Training and sampling throughput, in molecules per second, of the networks at the sizes of the
shipped configs: EDM's EGNN (9 layers x 256, ``conf/domain/qm9.yaml``), the CPU EGNN (4 x 64,
``conf/experiment/qm9_cpu.yaml``) and the e3nn tensor-product network (``qm9.yaml``'s ``e3nn``), all
fully connected within each molecule as configured. Training is one optimiser step (eps loss on
vp_cosine, backward, AdamW) on real QM9 training batches of 64 molecules; sampling is one network
evaluation without gradients on 100 molecules whose sizes are drawn from QM9's histogram (a DDIM
run of S steps costs S of them: divide by S).

(b) One forward pass (no gradients) on one molecule of n atoms at random positions at a liquid-like
number density (0.1 atoms per cubic angstrom, water's), fully connected (n (n - 1) edges) against
the radius graph (edges shorter than ``--radius``), with the edge count.

    python benchmarks/molecules.py [--threads 1] [--repeats 3] [--radius 5]

Times are the best of ``repeats`` (after one warm-up; calls faster than that are repeated for at
least a second, up to 30 times), which filters out noise from other processes.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from sciffusion.losses import DiffusionLoss
from sciffusion.parameterization import ModelDenoiser
from sciffusion.processes import make_process
from sciffusion.registry import make_domain
from sciffusion.space import GraphSpace
from sciffusion_domains.molecules.networks.inputs import molecule_edges

CONF = Path(__file__).resolve().parents[1] / "domains" / "molecules" / "conf"
DENSITY = 0.1  # atoms per cubic angstrom (liquid water: ~0.1)
SIZES = (10, 20, 50, 100, 200, 400)


def network_configs() -> dict[str, tuple[str, dict]]:
    """name -> (kind, options) read from the shipped configs."""
    base = OmegaConf.to_container(OmegaConf.load(CONF / "domain" / "qm9.yaml"))["network"]
    cpu = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / "qm9_cpu.yaml"))["network"]
    egnn, e3nn = dict(base["egnn"]), dict(base["e3nn"])
    return {f"EGNN {egnn['num_layers']}x{egnn['hidden']} (qm9.yaml, EDM)": ("egnn", egnn),
            f"EGNN {cpu['egnn']['num_layers']}x{cpu['egnn']['hidden']} (qm9_cpu)": ("egnn", {**egnn, **cpu["egnn"]}),
            f"e3nn {e3nn['num_layers']} layers, {e3nn['hidden_irreps']} (qm9.yaml)": ("e3nn", e3nn)}


def best_time(fn, repeats: int, *, min_total: float = 1.0, max_repeats: int = 30) -> float:
    """Best of at least ``repeats`` timed calls after a warm-up; fast calls are repeated until they
    have taken ``min_total`` seconds (at most ``max_repeats`` calls), which steadies the small sizes."""
    fn()  # warm-up
    times = []
    while len(times) < repeats or (sum(times) < min_total and len(times) < max_repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def throughput(domain, name: str, kind: str, options: dict, repeats: int, batch: int, sample_batch: int) -> dict:
    torch.manual_seed(0)
    process = make_process("vp_cosine")
    model = ModelDenoiser(domain.network(kind=kind, **{kind: options}), process, "eps")
    params = sum(p.numel() for p in model.parameters())
    loss_fn = DiffusionLoss(process)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    train = domain.dataset("train")
    g = torch.Generator().manual_seed(0)
    batches = [domain.collate(train.__getitems__(torch.randint(len(train), (batch,), generator=g).tolist()))
               for _ in range(repeats + 1)]
    state = iter(range(10**9))

    def step():
        b = batches[next(state) % len(batches)]
        loss = loss_fn(model, b.x, space=b.space, cond=b.cond).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train_s = best_time(step, repeats)
    x_like, space = domain.template(sample_batch, generator=g)
    x = space.randn_like(x_like, g)
    t = torch.full((sample_batch,), 0.5)

    @torch.no_grad()
    def forward():
        model(x, t, space, {})

    sample_s = best_time(forward, repeats)
    atoms = sum(int(b.space.counts.sum()) for b in batches) / len(batches)
    return {"name": name, "params": params, "train": batch / train_s, "sample": sample_batch / sample_s,
            "atoms": atoms / batch, "train_s": train_s, "sample_s": sample_s}


def joint_throughput(repeats: int, batch: int, sample_batch: int, experiment: str = "qm9_joint_cpu") -> dict:
    """The joint network of ``experiment`` (positions, atoms, charges, bonds): one AdamW step of the
    configured JointLoss, timed without and with self-conditioning (the config uses it on half the
    steps, so a step costs their mean), and one joint denoiser evaluation at t = 0.5."""
    from sciffusion.joint import JointLoss, JointModel, make_joint_process
    from sciffusion_domains.molecules.joint_domain import QM9JointDomain

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml"))
    net_options = {**OmegaConf.to_container(OmegaConf.load(CONF / "domain" / "qm9_joint.yaml"))["network"],
                   **cfg.get("network", {})}
    torch.manual_seed(0)
    domain = QM9JointDomain()
    process = make_joint_process(cfg["process"]["parts"])
    domain.prepare_process(process)
    model = JointModel(domain.network(**net_options), process)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    train = domain.dataset("train")
    g = torch.Generator().manual_seed(0)
    batches = [domain.collate([train[i] for i in torch.randint(len(train), (batch,), generator=g).tolist()])
               for _ in range(repeats + 1)]
    seconds = {}
    for p_self in (0.0, 1.0):
        loss_fn = JointLoss(process, weights=cfg["loss"]["weights"], weighting=cfg["loss"]["weighting"],
                            self_condition=p_self)
        state = iter(range(10**9))

        def step():
            b = batches[next(state) % len(batches)]
            loss = loss_fn(model, b.x, space=b.space, generator=g).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds[p_self] = best_time(step, repeats)
    train_s = 0.5 * (seconds[0.0] + seconds[1.0])
    x, space = domain.template(sample_batch, generator=g)
    t = torch.full((sample_batch,), 0.5)

    @torch.no_grad()
    def forward():
        model(x, t, space, {})

    sample_s = best_time(forward, repeats)
    name = f"joint {net_options['layers']}x{net_options['hidden']}, edges {net_options['edge_hidden']} ({experiment})"
    return {"name": name, "params": params, "train": batch / train_s, "sample": sample_batch / sample_s,
            "train_plain": batch / seconds[0.0]}


def liquid_molecule(n: int, g: torch.Generator, num_features: int) -> tuple[torch.Tensor, GraphSpace]:
    side = (n / DENSITY) ** (1 / 3)
    pos = torch.rand(n, 3, generator=g) * side
    types = torch.zeros(n, num_features)
    types[torch.arange(n), torch.randint(num_features - 1, (n,), generator=g)] = 0.25
    space = GraphSpace(torch.zeros(n, dtype=torch.long), 1, zero_mean=(0, 1, 2))
    return space.project(torch.cat([pos, types], 1)), space


def scaling(domain, name: str, kind: str, options: dict, radius: float, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    process = make_process("vp_cosine")
    nets = {r: ModelDenoiser(domain.network(kind=kind, **{kind: {**options, "radius": r}}), process, "eps")
            for r in (None, radius)}
    g = torch.Generator().manual_seed(1)
    rows = []
    for n in SIZES:
        x, space = liquid_molecule(n, g, domain.num_features)
        t = torch.full((1,), 0.5)
        row = {"n": n}
        for r, model in nets.items():
            with torch.no_grad():
                seconds = best_time(lambda: model(x, t, space, {}), repeats)
            edges = molecule_edges(x[:, :3], space.batch, radius=r, max_num_neighbors=None).shape[1]
            row["full" if r is None else "radius"] = (seconds, edges)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--radius", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sample-batch", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    domain = make_domain("qm9")
    configs = network_configs()
    print(f"torch {torch.__version__}, {args.threads} thread(s), best of >= {args.repeats} runs (fast calls: >= 1 s of them) after a warm-up\n")
    print(f"### (a) Throughput on QM9 (training batch {args.batch}, sampling batch {args.sample_batch}; "
          "fully connected)\n")
    print("| network | parameters | training (molecules/s) | one sampling evaluation (molecules/s) "
          "| 100-step sampling (molecules/s) |")
    print("|---|---|---|---|---|")
    atoms = []
    for name, (kind, options) in configs.items():
        r = throughput(domain, name, kind, options, args.repeats, args.batch, args.sample_batch)
        print(f"| {name} | {r['params'] / 1e6:.2f} M | {r['train']:.1f} | {r['sample']:.0f} | {r['sample'] / 100:.2f} |",
              flush=True)
        atoms.append(r["atoms"])
    r = joint_throughput(args.repeats, args.batch, args.sample_batch)
    print(f"| {r['name']} | {r['params'] / 1e6:.2f} M | {r['train']:.1f} ({r['train_plain']:.1f} without "
          f"self-conditioning) | {r['sample']:.0f} | {r['sample'] / 100:.2f} |", flush=True)
    print(f"\nTraining batches average {sum(atoms) / len(atoms):.1f} atoms a molecule (QM9 with hydrogens).")
    print(f"\n### (b) One forward pass on one molecule of n atoms ({DENSITY} atoms/A^3), "
          f"fully connected vs radius graph ({args.radius:g} A)\n")
    for name, (kind, options) in configs.items():
        if "EDM" in name:
            continue  # 9x256 EGNN: the same graph as the 4x64 one, ~20x the cost per edge
        print(f"{name}:\n")
        print("| atoms | full: ms | full: edges | radius: ms | radius: edges | full / radius time |")
        print("|---|---|---|---|---|---|")
        for row in scaling(domain, name, kind, options, args.radius, args.repeats):
            (tf, ef), (tr, er) = row["full"], row["radius"]
            print(f"| {row['n']} | {tf * 1e3:.1f} | {ef} | {tr * 1e3:.1f} | {er} | {tf / tr:.2f} |", flush=True)
        print()


if __name__ == "__main__":
    main()
