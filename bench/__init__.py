"""uploadsession's benchmark suite: ``make bench`` or ``python -m bench.run [--only NAME]``.

Every benchmark measures the app and a bare baseline doing the same storage work in the same
run on the same Azurite, and reports their ratio; see README.md § Performance.
"""
