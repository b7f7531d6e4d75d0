"""Fragment-constrained generation (``guidance=fragment``): fixed atoms come back exactly at the
fragment's coordinates and elements, the rest is generated, and the whole stays equivariant."""
import pytest
import torch

from sciffusion.parameterization import ModelDenoiser
from sciffusion.processes import VPCosine
from sciffusion.samplers import prior_sample, sample
from sciffusion.testing import run_app
from sciffusion.timesteps import make_grid
from sciffusion_domains.molecules.data import MoleculeSet
from sciffusion_domains.molecules.domain import NUM_ATOMS, QM9Domain
from sciffusion_domains.molecules.fragment import FragmentInpainting, fragment
from sciffusion_domains.molecules.io import read_xyz, write_sdf, write_xyz

LIMIT = 300
SHIFT = torch.tensor([3.0, -2.0, 5.0])  # the fragment's file frame is far from the molecule's centre


def _domain() -> QM9Domain:
    return QM9Domain(limit=LIMIT, perceive_bonds=False)


@pytest.fixture(scope="module")
def frag_file(tmp_path_factory):
    """Atoms 0-3 of the first test molecule with more than 4 atoms, moved away from the origin."""
    molecules = _domain()._split("test")
    i = int(torch.nonzero(molecules.counts > 6)[0])
    mol = molecules[i]
    frag = MoleculeSet(mol.pos[:4] + SHIFT, mol.z[:4], torch.tensor([4]))
    path = tmp_path_factory.mktemp("frag") / "frag.xyz"
    write_xyz(frag, path)
    return path


def _denoiser(domain: QM9Domain, dtype=torch.float32) -> ModelDenoiser:
    torch.manual_seed(0)
    net = domain.network(kind="egnn", egnn={"hidden": 16, "num_layers": 3, "dtype": dtype})
    with torch.no_grad():  # make position updates large, not EDM's near-identity start
        for p in net.parameters():
            p.normal_(0, 0.3)
    return ModelDenoiser(net, VPCosine(), "eps")


def _draw(domain, guide, num, num_atoms, *, sampler="ddim", dtype=torch.float32, seed=0, rotate=None, **options):
    g = torch.Generator().manual_seed(seed)
    cond = {NUM_ATOMS: torch.full((num,), num_atoms)}
    x_like, space = domain.template(num, generator=g, cond=cond)
    z = prior_sample(guide.denoiser.process, x_like.to(dtype), space=space, generator=g)
    if rotate is not None:
        z = rotate(z)
    ts = make_grid("karras", guide.denoiser.process, 6)
    x = sample(sampler, guide, z, ts, process=guide.denoiser.process, space=space, cond=cond, generator=g,
               **options)
    return x, space


@pytest.mark.parametrize("sampler, num", [("ddim", 1), ("ddim", 5), ("ddpm", 7), ("heun", 3)])
def test_fixed_atoms_are_exactly_the_fragment(frag_file, sampler, num):
    domain = _domain()
    guide = fragment(_denoiser(domain), domain=domain, fragment=str(frag_file), num_atoms=9)
    frag, _ = read_xyz(frag_file)
    x, space = _draw(domain, guide, num, 9, sampler=sampler)
    # the sampler's output is a centred molecule holding the fragment up to one translation each
    torch.testing.assert_close(space.mean(x[:, :3]), torch.zeros(num, 3), atol=1e-5, rtol=0)
    fixed = x.reshape(num, 9, -1)[:, :4, :3]
    torch.testing.assert_close(fixed - fixed.mean(1, keepdim=True),
                               (frag.pos - frag.pos.mean(0)).expand(num, 4, 3), atol=1e-4, rtol=0)  # float32
    # rounding at the tens of angstroms this random network reaches; decoding pastes the exact values
    molecules = domain.decode(guide.restore(x, space), space)  # what the sampling loop does after sampling
    assert len(molecules) == num
    for mol in molecules:
        assert mol.pos.shape == (9, 3)
        torch.testing.assert_close(mol.pos[:4], frag.pos, atol=1e-5, rtol=0)
        assert mol.z[:4].tolist() == frag.z.tolist()
    free = torch.stack([mol.pos[4:] for mol in molecules])
    assert free.abs().max() > 0.1
    for a in range(num):
        for b in range(a):
            assert (free[a] - free[b]).norm(dim=1).max() > 0.1  # every sample generates its own atoms
    # restoring the frame moves every atom of a molecule, free ones included, by one translation
    moved = torch.stack([mol.pos for mol in molecules]) - x[:, :3].reshape(num, 9, 3)
    torch.testing.assert_close(moved, moved[:, :1].expand(num, 9, 3), atol=1e-4, rtol=0)


def test_rotating_the_fragment_rotates_the_samples(frag_file):
    """Same seed, fragment and prior noise rotated (and reflected): the samples rotate with them."""
    domain = _domain()
    denoiser = _denoiser(domain, torch.float64)
    frag, _ = read_xyz(frag_file)
    g = torch.Generator().manual_seed(5)
    num, n = 4, 8
    outputs = []
    for q in range(3):
        r = torch.eye(3, dtype=torch.float64) if q == 0 else torch.linalg.qr(torch.randn(3, 3, generator=g,
                                                                                        dtype=torch.float64))[0]
        r = -r if q == 2 else r
        path = frag_file.with_name(f"rotated{q}.xyz")
        write_xyz(MoleculeSet((frag.pos.double() @ r.T).float(), frag.z, frag.counts), path)
        rotated_frag, _ = read_xyz(path)
        guide = fragment(denoiser, domain=domain, fragment=str(path), num_atoms=n)
        guide.known = guide.known.double()
        guide.known[:, :3] = frag.pos.double() @ r.T  # exact rotation, not rounded through the file
        rotate = lambda x: torch.cat([x[:, :3] @ r.T, x[:, 3:]], 1)
        x, space = _draw(domain, guide, num, n, sampler="heun", dtype=torch.float64, rotate=rotate)
        out = guide.restore(x, space)
        outputs.append((r, out))
        torch.testing.assert_close(out.reshape(num, n, -1)[:, :4, :3].float(),
                                   rotated_frag.pos.expand(num, 4, 3), atol=1e-5, rtol=0)
    _, base = outputs[0]
    for r, out in outputs[1:]:
        torch.testing.assert_close(out, torch.cat([base[:, :3] @ r.T, base[:, 3:]], 1), atol=1e-8, rtol=1e-8)
    assert (base[:, :3] - base[:, :3].mean(0)).abs().max() > 0.1


def test_bad_requests_raise(frag_file, tmp_path):
    domain = _domain()
    denoiser = _denoiser(domain)
    with pytest.raises(ValueError, match="num_atoms=4 leaves no atom"):
        fragment(denoiser, domain=domain, fragment=str(frag_file), num_atoms=4)
    with pytest.raises(ValueError, match="cond.num_atoms"):
        fragment(denoiser, domain=domain, fragment=str(frag_file))
    sulfur = tmp_path / "s.xyz"
    sulfur.write_text("2\nthiol\nS 0 0 0\nH 0 0 1.3\n")
    with pytest.raises(ValueError, match=r"elements \['S'\].*atom types"):
        fragment(denoiser, domain=domain, fragment=str(sulfur), num_atoms=9)
    heavy = QM9Domain(limit=LIMIT, remove_h=True)
    hydrogen = tmp_path / "ch.xyz"
    hydrogen.write_text("2\nCH\nC 0 0 0\nH 0 0 1.1\n")
    with pytest.raises(ValueError, match=r"elements \['H'\]"):
        fragment(denoiser, domain=heavy, fragment=str(hydrogen), num_atoms=9)
    with pytest.raises(FileNotFoundError):
        fragment(denoiser, domain=domain, fragment=str(tmp_path / "missing.xyz"), num_atoms=9)
    guide = FragmentInpainting(denoiser, torch.zeros(4, 3 + domain.num_features))
    with pytest.raises(ValueError, match="cannot hold a fragment of 4"):
        _draw(domain, guide, 2, 4)


@pytest.mark.slow
def test_fragment_generation_through_the_cli(tmp_path, frag_file):
    run = tmp_path / "run"
    run_app("train", "experiment=qm9_tiny", f"hydra.run.dir={run}", cwd=tmp_path)
    ckpt = run / "checkpoints" / "last.ckpt"
    out = tmp_path / "s"
    run_app("sample", f"checkpoint={ckpt}", "guidance=fragment", f"guidance.fragment={frag_file}",
            "cond.num_atoms=7", "num_samples=5", "batch_size=2", "steps=4", f"out_dir={out}", cwd=tmp_path)
    frag, _ = read_xyz(frag_file)
    samples, _ = read_xyz(out / "samples.xyz")
    assert samples.counts.tolist() == [7] * 5
    for k in range(5):
        mol = samples[k]
        torch.testing.assert_close(mol.pos[:4], frag.pos, atol=1e-5, rtol=0)
        assert mol.z[:4].tolist() == frag.z.tolist()
    assert (samples[0].pos[4:] - samples[1].pos[4:]).norm(dim=1).max() > 0.1
    written, _ = read_xyz(out / "fragment.xyz")
    torch.testing.assert_close(written.pos, frag.pos)
    for name in ("samples.sdf", "samples.csv", "figure.png"):
        assert (out / name).stat().st_size > 0, name
    failed = run_app("sample", f"checkpoint={ckpt}", "guidance=fragment", f"guidance.fragment={frag_file}",
                     "cond.num_atoms=3", "num_samples=2", f"out_dir={tmp_path / 'bad'}", cwd=tmp_path, check=False)
    assert failed.returncode != 0 and "leaves no atom" in failed.stdout + failed.stderr


def _sdf_with_a_corrupt_middle_record(path):
    """Three records: water, methane made unreadable (a broken atom block), ammonia."""
    water = MoleculeSet(torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), torch.tensor([8, 1, 1]),
                        torch.tensor([3]))
    methane = MoleculeSet(torch.tensor([[0.0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                                        [0.63, -0.63, -0.63]]), torch.tensor([6, 1, 1, 1, 1]), torch.tensor([5]))
    ammonia = MoleculeSet(torch.tensor([[0.0, 0, 0.1], [0.94, 0, -0.27], [-0.47, 0.81, -0.27], [-0.47, -0.81, -0.27]]),
                          torch.tensor([7, 1, 1, 1]), torch.tensor([4]))
    records = []
    for i, mol in enumerate((water, methane, ammonia)):
        write_sdf(mol, path)
        text = path.read_text()
        records.append(text.replace(" C ", " Qq ").replace("V2000", "V2000 garbage") if i == 1 else text)
    path.write_text("".join(records))
    return path


def test_the_record_is_the_position_in_the_file_and_an_unreadable_one_is_named(tmp_path):
    from sciffusion_domains.molecules.fragment import read_fragment

    path = _sdf_with_a_corrupt_middle_record(tmp_path / "three.sdf")
    atom_types = ("H", "C", "N", "O", "F")
    assert read_fragment(path, atom_types=atom_types, record=0).z.tolist() == [8, 1, 1]
    assert read_fragment(path, atom_types=atom_types, record=2).z.tolist() == [7, 1, 1, 1]  # not record 1
    with pytest.raises(ValueError, match=r"guidance.record=1: record 1 of .*three.sdf cannot be used: RDKit could not "
                                         r"parse the record; .*readable records: 0, 2"):
        read_fragment(path, atom_types=atom_types, record=1)
    with pytest.raises(ValueError, match=r"guidance.record=3: .*three.sdf holds 3 records.*readable records: 0, 2"):
        read_fragment(path, atom_types=atom_types, record=3)
