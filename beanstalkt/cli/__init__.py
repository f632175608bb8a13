"""The command lines: ``beanstalkt`` (:mod:`beanstalkt.cli.main`), the worker's
(:mod:`beanstalkt.cli.worker`), and what they share (:mod:`beanstalkt.cli.options`,
:mod:`beanstalkt.cli.tls`). The operations tools' command lines (``top``,
``exporter``, ``web``) use the same pieces.
"""
