"""The GPU paths: bf16 autocast and torch.compile in training, samplers that agree with the CPU,
equivariance in float64 on the device, checkpoints that move between devices, and the shipped
models sampling there. Marked ``gpu`` and skipped without CUDA; run them on a GPU machine with
``pytest -m gpu``. Each test calls a ``check_*(device)`` function, so the same checks can be tried
on the CPU by hand before a (short, rare) GPU session."""
from functools import partial

import pytest
import torch

from sciffusion.losses import DiffusionLoss
from sciffusion.parameterization import ModelDenoiser
from sciffusion.processes import make_process
from sciffusion.samplers import prior_sample, sample
from sciffusion.space import DenseSpace
from sciffusion.timesteps import uniform_log_snr
from sciffusion.training import SamplingOptions, Trainer, TrainOptions, load_checkpoint, seed_everything
from sciffusion_domains.toy import ToyDomain

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def toy_trainer(run_dir, device, **options) -> Trainer:
    domain = ToyDomain(train_size=256, test_size=128)
    process = make_process("vp_cosine")
    seed_everything(0)
    model = ModelDenoiser(domain.network(hidden=32, depth=2), process, "v")
    defaults = dict(steps=60, batch_size=64, log_every=20, save_every=30, progress=False, tensorboard=False,
                    device=device, ema_decay=0.9)
    return Trainer(domain=domain, model=model, process=process, loss=DiffusionLoss(process),
                   optimizer=partial(torch.optim.AdamW, lr=1e-2), run_dir=run_dir,
                   options=TrainOptions(**{**defaults, **options}),
                   sampling=SamplingOptions(sampler="euler", steps=4, batch_size=32))


def held_out_loss(trainer: Trainer) -> float:
    data = trainer.domain.dataset("test")
    batch = trainer.domain.collate([data[i] for i in range(len(data))])
    with torch.no_grad():
        loss = trainer.loss_fn(trainer.model, batch.x.to(trainer.device), space=batch.space,
                               generator=torch.Generator(trainer.device).manual_seed(0))
    return float(loss.mean())


def check_bf16_compiled_training(tmp_path, device):
    trainer = toy_trainer(tmp_path, device, precision="bf16", compile=True)
    before = held_out_loss(trainer)
    trainer.fit()
    with trainer._autocast():  # the context the training step runs its forward pass in
        assert trainer.model.net.inp(torch.ones(4, trainer.model.net.inp.in_features, device=device)).dtype == torch.bfloat16
    assert all(p.device.type == torch.device(device).type and p.dtype == torch.float32
               for p in trainer.model.parameters())  # fp32 master weights on the device
    assert held_out_loss(trainer) < 0.8 * before
    # the checkpoint written on the device loads on the CPU with every tensor there
    state = load_checkpoint(trainer.last_path)
    assert state["step"] == 60
    assert all(v.device.type == "cpu" for v in state["model"].values())


def check_resume_on_another_device(tmp_path, device):
    """Train 30 steps on ``device``, resume to 60 on the CPU: as good as 60 steps on ``device`` (the
    data order is the same; device and CPU arithmetic and noise differ, so not bit for bit)."""
    toy_trainer(tmp_path / "a", device, steps=30).fit()
    resumed = toy_trainer(tmp_path / "a", "cpu", steps=60)
    resumed.fit()
    straight = toy_trainer(tmp_path / "b", device, steps=60)
    straight.fit()
    assert resumed.step == straight.step == 60
    assert all(p.device.type == "cpu" for p in resumed.model.parameters())
    assert held_out_loss(resumed) == pytest.approx(held_out_loss(straight), rel=0.05)


def check_samplers_agree_with_the_cpu(device):
    """Deterministic samplers give the same samples on the device as on the CPU (float64, same noise)."""
    domain = ToyDomain(train_size=8, test_size=8)
    process = make_process("vp_cosine")
    torch.manual_seed(0)
    cpu = ModelDenoiser(domain.network(hidden=32, depth=2), process, "v").double().eval()
    dev = ModelDenoiser(domain.network(hidden=32, depth=2), process, "v").double().eval()
    dev.load_state_dict(cpu.state_dict())
    dev = dev.to(device)
    ts = uniform_log_snr(process, 10)
    x = prior_sample(process, torch.zeros(64, 2, dtype=torch.float64), t=float(ts[0]), space=DenseSpace(),
                     generator=torch.Generator().manual_seed(0))
    for name in ("euler", "heun", "ddim", "dpmpp_2m", "unipc", "deis", "ipndm"):
        with torch.no_grad():
            on_cpu = sample(name, cpu, x, ts, process=process, space=DenseSpace())
            on_dev = sample(name, dev, x.to(device), ts.to(device), process=process, space=DenseSpace())
        assert on_dev.device.type == torch.device(device).type
        # float64 state; the toy network's time features are float32, so devices differ at ~1e-7
        error = float((on_dev.cpu() - on_cpu).abs().max())
        assert error < 1e-5, f"{name}: {error:.3g}"


def check_joint_network_is_equivariant(device):
    from sciffusion_domains.molecules.networks.joint import JointMoleculeNet
    from sciffusion.space import GraphSpace
    from sciffusion.state import EdgeSpace, PartsSpace

    sizes = [1, 2, 5, 9, 4]
    g = torch.Generator().manual_seed(0)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)).to(device)
    space = PartsSpace({"pos": GraphSpace(batch, len(sizes), zero_mean=(0, 1, 2)),
                        "atoms": GraphSpace(batch, len(sizes)), "charges": GraphSpace(batch, len(sizes)),
                        "bonds": EdgeSpace.fully_connected(batch, len(sizes))})
    n, e = batch.numel(), space["bonds"].index.shape[1]
    x = {"pos": space["pos"].project(1.5 * torch.randn(n, 3, generator=g, dtype=torch.float64).to(device)),
         "atoms": torch.randint(5, (n,), generator=g).to(device), "charges": torch.randint(3, (n,), generator=g).to(device),
         "bonds": torch.randint(5, (e,), generator=g).to(device)}
    t = torch.rand(len(sizes), generator=g, dtype=torch.float64).to(device)
    torch.manual_seed(0)
    net = JointMoleculeNet(num_atom_types=5, num_charges=3, num_bond_types=5, hidden=32, edge_hidden=16,
                           layers=3).double().to(device)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = (q * torch.sign(torch.diagonal(r))).to(device)
    with torch.no_grad():
        out = net(x, t, space, None)
        moved = net({**x, "pos": x["pos"] @ q.T}, t, space, None)
    assert torch.allclose(moved["pos"], out["pos"] @ q.T, atol=1e-9)
    for name in ("atoms", "charges", "bonds"):
        assert torch.allclose(moved[name], out[name], atol=1e-9), name


def check_shipped_models_sample(device, names=("digits", "qm9_joint")):
    import sciffusion

    for name in names:
        model = sciffusion.load(name, device=device)
        objects = model.sample(8, steps=20, progress=False, verbose=False)
        assert len(objects) == 8


def test_bf16_compiled_training(tmp_path):
    check_bf16_compiled_training(tmp_path, "cuda")


def test_resume_on_another_device(tmp_path):
    check_resume_on_another_device(tmp_path, "cuda")


def test_samplers_agree_with_the_cpu():
    check_samplers_agree_with_the_cpu("cuda")


def test_joint_network_is_equivariant_on_the_device():
    pytest.importorskip("torch_geometric")
    check_joint_network_is_equivariant("cuda")


def test_shipped_models_sample_on_the_device():
    pytest.importorskip("torch_geometric")
    check_shipped_models_sample("cuda")
