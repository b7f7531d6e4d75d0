"""The shipped 2-step spoken-digit model (``spoken_digits_2step``, progressive distillation of the
shipped model with its classifier-free guidance distilled in): it samples with its stored settings
(2 DDIM steps, no guidance) and says the digit asked for, judged by the shipped classifier."""
import pytest
import torch

import sciffusion
from sciffusion import shipped


@pytest.fixture(scope="module")
def model():
    if shipped.lookup("spoken_digits_2step").path() is None:
        pytest.skip("the spoken_digits_2step checkpoint or the audio plugin is not installed")
    return sciffusion.load("spoken_digits_2step")


def test_samples_with_its_stored_two_step_settings(model):
    best = shipped.lookup("spoken_digits_2step").best
    assert (best["sampler"], best["steps"], best["guidance"]) == ("ddim", 2, None)
    assert model.settings().steps == 2 and model.settings().sampler == "ddim"


def test_the_requested_digit_is_recognised(model):
    """95.8% of 500 samples are recognised (experiments/distillation/README.md); 20 samples, one seed,
    must reach 80% (the teacher at the same 2 evaluations reaches 60% on 500)."""
    labels = list(range(10)) * 2
    samples = model.sample(20, cond={"label": labels}, batch_size=20, progress=False, verbose=False)
    domain = model.domain
    x = domain.normalizer.encode(torch.stack([torch.from_numpy(s.log_spec) for s in samples]))[:, None]
    with torch.no_grad():
        predicted = domain.classifier()(x).argmax(1)
    assert [s.label for s in samples] == labels
    assert (predicted == torch.tensor(labels)).float().mean() >= 0.8
