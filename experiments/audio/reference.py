"""Real-data reference values for the audio results: the metrics of real held-out clips (val voices)
against the test reference, as spectrograms and after a Griffin-Lim round trip (what a listener
gets from a perfect model), at the sample count used for the model.

    python experiments/audio/reference.py --num 500 > experiments/audio/reference.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sciffusion_domains.audio.domain import AudioDomain, AudioSample


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    domain = AudioDomain()
    reference = domain.reference("test")
    real = domain.reference("val", limit=args.num)
    # the round trip: spectrogram -> Griffin-Lim waveform -> spectrogram again
    again = domain.spec.log_spectrogram(np.stack([s.waveform for s in real]))
    round_trip = [AudioSample(spec, domain.spec, domain.samples, s.label) for spec, s in zip(again, real)]
    print(json.dumps({"num": len(real), "reference": f"test split ({len(reference)} clips)",
                      "real_val": domain.metrics(real, reference),
                      "real_val_after_griffin_lim": domain.metrics(round_trip, reference)}, indent=2))


if __name__ == "__main__":
    main()
