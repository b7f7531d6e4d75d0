"""Audio domain: spoken digits and any folder of WAV/FLAC as log-mel spectrograms, back to sound.

Heavy libraries (librosa, soundfile) are imported inside functions, so importing this package is cheap.
"""
