"""Finding domains through entry points, lazy imports, broken plugins, and the toy domain's contract."""
import subprocess
import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch

from sciffusion import registry
from sciffusion.domain import Batch, Domain
from sciffusion.losses import DROP
from sciffusion.space import DenseSpace
from sciffusion_domains.toy import ToyDomain


def test_builtin_toy_domain_registers_through_the_entry_point_group():
    assert "toy" in registry.available()
    assert registry.load_class("toy") is ToyDomain
    domain = registry.make_domain("toy", separation=3.0)
    assert isinstance(domain, ToyDomain) and domain.config_dir().joinpath("domain", "toy.yaml").is_file()


def test_unknown_domain_lists_the_available_ones():
    with pytest.raises(KeyError, match=r"unknown domain 'nope'; available domains: .*toy"):
        registry.make_domain("nope")


@pytest.fixture
def fake_plugins(monkeypatch):
    real = registry.entry_points_by_name()
    fakes = {
        "broken": EntryPoint("broken", "sciffusion_domains.no_such_module_xyz:Broken", registry.GROUP),
        "notadomain": EntryPoint("notadomain", "collections:OrderedDict", registry.GROUP),
    }
    monkeypatch.setattr(registry, "entry_points_by_name", lambda: {**real, **fakes})


def test_a_broken_plugin_warns_naming_the_extra_and_the_rest_still_load(fake_plugins):
    with pytest.warns(registry.DomainImportWarning) as caught:
        found = registry.loadable()
    messages = sorted(str(w.message) for w in caught)
    assert "pip install 'sciffusion[broken]'" in messages[0] and "must name a subclass" in messages[1]
    assert "toy" in found and not {"broken", "notadomain"} & set(found)
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        registry.load_class("broken")
    with pytest.raises(TypeError, match="must name a subclass of sciffusion.domain.Domain"):
        registry.load_class("notadomain")



def test_a_plugin_uninstalled_while_domains_are_listed_is_skipped_not_an_unknown_domain(monkeypatch):
    """Another process may uninstall a plugin between the listing and the import: the first listing of
    entry points lists it, later ones do not. loadable() imports what it listed, so the plugin is skipped
    with a warning (its module is gone), and never raises KeyError for a name it just listed itself."""
    real = registry.entry_points_by_name()
    vanishing = EntryPoint("vanishing", "sciffusion_vanished_plugin_xyz:Domain", registry.GROUP)
    listings = iter([{**real, "vanishing": vanishing}])
    monkeypatch.setattr(registry, "entry_points_by_name", lambda: next(listings, real))
    with pytest.warns(registry.DomainImportWarning, match="sciffusion_vanished_plugin_xyz"):
        found = registry.loadable()
    assert "toy" in found and "vanishing" not in found

def test_import_sciffusion_imports_no_domain_library():
    heavy = ["e3nn", "rdkit", "librosa", "xarray", "sciffusion_domains"]
    code = ("import sys, sciffusion, sciffusion.registry; sciffusion.registry.available(); "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_toy_domain_contract_end_to_end(tmp_path):
    domain = ToyDomain(train_size=64, test_size=600)
    data = domain.dataset("train")
    batch = domain.collate([data[i] for i in range(8)])
    assert isinstance(batch, Batch) and batch.x.shape == (8, 2) and batch.cond == {} and len(batch) == 8
    fast = domain.collate(data.__getitems__(list(range(8))))  # the DataLoader's batched fetch
    torch.testing.assert_close(fast.x, batch.x)
    x_like, space = domain.template(5)
    assert x_like.shape == (5, 2) and isinstance(space, DenseSpace)
    net = domain.network(hidden=8, depth=2)
    assert net(x_like, torch.rand(5), space, {}).shape == (5, 2)

    reference = domain.reference("test")
    files = domain.save(reference, tmp_path)
    assert [f.name for f in files] == ["samples.npy", "samples.csv"]
    np.testing.assert_allclose(np.loadtxt(files[1], delimiter=",", skiprows=1), np.load(files[0]))
    assert domain.figure(reference, tmp_path / "fig.png").stat().st_size > 1000
    exact = domain.metrics(domain.reference("val"), reference)
    assert exact["mean_error"] < 0.1 and exact["cov_error"] < 0.1 and exact["mode_weight_gap"] < 0.05
    shifted = domain.metrics([p + 1.0 for p in reference], reference)
    assert shifted["mean_error"] > 5 * exact["mean_error"]


def test_conditional_toy_labels_and_dropped_conditions():
    domain = ToyDomain(train_size=64, conditional=True)
    batch = domain.collate([domain.dataset("train")[i] for i in range(4)])
    assert set(batch.cond) == {"label"} and batch.cond["label"].dtype == torch.long
    assert domain.condition(3, label=2)["label"].tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="label must be a mixture component in 0..2, got 7"):
        domain.condition(3, label=7)
    with pytest.raises(ValueError, match="is unconditional"):
        ToyDomain().condition(3, label=1)
    net = domain.network(hidden=8, depth=1)
    x, t = torch.randn(3, 2), torch.rand(3)
    dropped = net(x, t, DenseSpace(), {"label": torch.tensor([0, 1, 2]), DROP: torch.ones(3, dtype=torch.bool)})
    torch.testing.assert_close(dropped, net(x, t, DenseSpace(), {}))  # dropped = unlabelled


def test_the_base_class_names_what_a_plugin_forgot():
    class Half(Domain):
        name = "half"

    with pytest.raises(NotImplementedError, match="domain 'half' does not provide a dataset"):
        Half().dataset("train")
    assert Half().condition(2) == {} and Half().config_dir() is None
