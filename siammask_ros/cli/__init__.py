"""Console scripts; each module has a ``main(argv=None) -> int``."""
