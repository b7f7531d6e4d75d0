"""Why the fragment is pasted at the translation that matches the model's estimate: the same
sampling (shipped checkpoint, DDIM 100 steps on uniform t, seed 0, 100 molecules of N atoms) with
the fragment pasted (a) at that translation then re-centred (what ``Inpainting`` does), (b) at its
file coordinates then re-centred (plain replacement), and (c) at its file coordinates centred on
the origin then re-centred. Atom stability is split into fixed and generated atoms.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/molecules/fragment/variants.py [benzene|acetoxy] [N]
"""
import sys
from pathlib import Path

import torch

import sciffusion
from sciffusion.samplers import prior_sample, sample
from sciffusion.timesteps import make_grid
from sciffusion_domains.molecules import bonds
from sciffusion_domains.molecules.data import MoleculeSet
from sciffusion_domains.molecules.domain import NUM_ATOMS
from sciffusion_domains.molecules.fragment import FragmentInpainting, fragment
from sciffusion_domains.molecules.metrics import evaluate

HERE = Path(__file__).parent
name = sys.argv[1] if len(sys.argv) > 1 else "benzene"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 15
torch.set_num_threads(1)
parts = sciffusion.load("qm9")  # the shipped checkpoint: EMA weights, the domain with its state
model = parts.denoiser
guide = fragment(model, domain=parts.domain, fragment=str(HERE / f"{name}.xyz"), num_atoms=n)
k = guide.size


class Plain(FragmentInpainting):
    """Replacement at the given coordinates, then re-centring (no translation matching)."""

    def __call__(self, x, t, space, cond=None):
        x0_hat = self.denoiser(x, t, space, cond or {})
        known, mask = self.entries(x0_hat, space)
        return space.project(torch.where(mask, known, x0_hat))


centred = guide.known.clone()
centred[:, :3] -= centred[:, :3].mean(0)
variants = {"(a) matched translation (Inpainting)": guide, "(b) file coordinates": Plain(model, guide.known),
            "(c) fragment centred at the origin": Plain(model, centred)}
g0 = torch.Generator().manual_seed(0)
num = 100
cond = {NUM_ATOMS: torch.full((num,), n)}
x_like, space = parts.domain.template(num, generator=g0, cond=cond)
z = prior_sample(parts.process, x_like, space=space, generator=g0)
ts = make_grid("uniform_t", parts.process, 100)
print(f"{name}, {n} atoms, {num} molecules, DDIM 100 steps\n")
print("| paste | atom stab. (all) | fixed atoms stable | generated atoms stable | validity | connected |")
print("|---|---|---|---|---|---|")
for label, g in variants.items():
    with torch.no_grad():
        x = sample("ddim", g, z, ts, process=parts.process, space=space, cond=cond)
    x = guide.restore(x, space)
    mols = parts.domain.decode(x, space)
    packed = MoleculeSet.from_molecules(mols)
    atom_ok, _ = bonds.stability(packed.pos, packed.z, packed.counts)
    fixed = (torch.arange(len(atom_ok)) % n) < k
    m = evaluate(mols, perceive_bonds=False)
    print(f"| {label} | {100 * m.atom_stability:.0f} | {100 * atom_ok[fixed].float().mean():.0f} | "
          f"{100 * atom_ok[~fixed].float().mean():.0f} | {100 * m.validity:.0f} | {100 * m.connectivity:.0f} |",
          flush=True)
