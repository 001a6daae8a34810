"""The composition root: settings, the `minyi` command line, wiring of the wings, the demo."""
