"""The weather and climate domain: gridded fields held the way climate scientists hold them.

``data``     opens NetCDF or Zarr lazily with xarray and dask, puts coordinates in one convention
             (latitude south to north, longitude 0..360 or -180..180, a ``time`` axis), aligns
             the grids of several sources, normalises on the training period only and serves
             forecasting windows as a torch Dataset.
``grid``     area weights, periodic-longitude detection, the Nino 3.4 index, climatology and anomalies.
``scores``   area-weighted, mask-aware RMSE, standard, fair and Gaussian CRPS, spread/skill, rank
             histograms, anomaly correlation, and every baseline scored the same way.
``baselines`` damped anomaly persistence and a linear inverse model, fitted on the training years.
``io``       forecasts to CF-style NetCDF and back.
``store``    stores larger than memory: windows read in worker processes that open the store
             themselves, statistics computed once with dask and cached.
``synthetic`` a store in WeatherBench 2's layout, deterministic from a seed (tests, benchmark).
``wb2``      WeatherBench 2's headline scores (RMSE, ACC, fair CRPS, spread/skill) as an xarray Dataset.
``figures``  forecast maps and the Nino 3.4 plume.

Modules import xarray, dask and matplotlib themselves; importing this package stays cheap.
"""
