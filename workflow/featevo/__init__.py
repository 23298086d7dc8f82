"""featevo: watch what a CNN learns while it trains.

Each stage of the Snakemake workflow calls one module of this package through
its command line (``python -m featevo <stage>``, with the config parts the stage
declares in ``featevo.config.reads.READS`` as ``--settings``); the functions behind them
are importable and tested on their own.
"""

__version__ = "0.1.0"
